//! `claimgate score` over a generated registry (issue 10, item 6): the practitioner file is streamed,
//! never held, and yet the records written — the changed ones (`--out`), every one (`--out-all`) —
//! and the report are byte for byte those of the whole-registry scoring the library still does in
//! one call (`claimgate::score::score`, the implementation before issue 10), under every profile, with
//! stale versions, unknown fields, blank lines and a compressed file.

use std::path::Path;
use std::process::Command;

use claimgate::profile::Profile;
use claimgate::record::PractitionerText;
use claimgate::score::{Ledger, Scoring, Sources, Written, markdown, score};
use claimgate::synth::{GenConfig, World};
use serde_json::{Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_claimgate");
const KNOWN: [&str; 6] = ["code", "name", "kind", "registrations", "periods", "version"];

/// A registry of generated records, with stale and newer versions of some codes (touched by the
/// ledger or not), unknown fields on some lines and a blank line; and a generated ledger over it.
fn registry(rules: &Scoring) -> (Vec<String>, Vec<Value>) {
    let w = World::new(GenConfig { practitioners: 10_000, seed: 11, ..GenConfig::default() });
    let events = w.ledger(rules, 500);
    let named: Vec<&str> = events.iter().filter_map(|e| e["code"].as_str()).collect();
    let mut lines: Vec<String> = Vec::new();
    for i in 0..10_000u64 {
        let mut v = serde_json::to_value(w.practitioner(i)).unwrap();
        if i % 41 == 0 {
            v["title"] = "主治医师".into();
            v["a_note"] = serde_json::json!({"b": [1, 2], "a": null});
        }
        lines.push(v.to_string());
    }
    // Stale versions before or after the current one, a newer one with fewer registrations, an equal one.
    for (k, i) in (0..10_000usize).step_by(47).enumerate() {
        let mut t: PractitionerText = serde_json::from_str(&lines[i]).unwrap();
        match k % 3 {
            0 => t.version = t.version.saturating_sub(1),
            1 => {
                t.version += 1;
                t.registrations.truncate(1);
            }
            _ => t.name = Some("同名".into()),
        }
        lines.insert((i * 13) % lines.len(), serde_json::to_string(&t).unwrap());
    }
    for code in named.iter().step_by(29) {
        let Some(line) = lines.iter().find(|l| l.contains(&format!("\"code\":\"{code}\""))) else { continue };
        let mut t: PractitionerText = serde_json::from_str(line).unwrap();
        t.version += if code.len() % 2 == 0 { 1 } else { 0 };
        t.periods.clear();
        lines.push(serde_json::to_string(&t).unwrap());
    }
    // Codes the ledger does not name, one of whose records carries a period the ledger decided (it is
    // derived again, so dropped): every record of such a code must be scored together, wherever it is.
    let finding = events.iter().find(|e| e["type"] == "finding").unwrap()["id"].as_str().unwrap().to_owned();
    for (k, i) in (5..10_000usize).step_by(1_001).enumerate() {
        let mut t: PractitionerText = serde_json::from_str(&lines[i]).unwrap();
        if named.contains(&t.code.as_str()) {
            continue;
        }
        t.version += if k % 2 == 0 { 1 } else { 0 };
        t.periods.push(claimgate::record::PeriodText {
            status: claimgate::record::Status::Suspended,
            from: "2025-06-01".into(),
            until: Some("2025-07-01".into()),
            basis: Some("an earlier run".into()),
            decision_id: Some(finding.clone()),
        });
        let at = if k % 2 == 0 { lines.len() } else { 0 };
        lines.insert(at, serde_json::to_string(&t).unwrap());
    }
    lines.insert(7, String::new());
    (lines, events)
}

/// The record as the whole-file implementation wrote it: the record, then its unknown fields in key
/// order.
fn encode(record: &PractitionerText, line: Option<&str>) -> String {
    let mut value = serde_json::to_string(record).unwrap();
    let mut extra: Map<String, Value> = line.map(|l| serde_json::from_str(l).unwrap()).unwrap_or_default();
    extra.retain(|k, _| !KNOWN.contains(&k.as_str()));
    if !extra.is_empty() {
        value.pop();
        for (k, v) in &extra {
            value.push_str(&format!(",{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string(v).unwrap()));
        }
        value.push('}');
    }
    value
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("claimgate runs")
}

#[test]
fn streamed_scoring_writes_what_whole_registry_scoring_writes_under_every_profile() {
    for profile in ["national-2024", "huaian-2020", "lanzhou-2014"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let shipped = Profile::shipped(profile).unwrap();
        let rules = Scoring::from_profile(&shipped).unwrap();
        let (lines, events) = registry(&rules);
        let text = lines.join("\n") + "\n";
        let plain = d.join("practitioners.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let zst = d.join("practitioners.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        let ledger_path = d.join("ledger.jsonl");
        let ledger_text: String = events.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(&ledger_path, &ledger_text).unwrap();

        // The reference: the whole registry in memory, scored in one call.
        let kept: Vec<&str> = lines.iter().map(String::as_str).filter(|l| !l.trim().is_empty()).collect();
        let all: Vec<PractitionerText> =
            kept.iter().map(|l| PractitionerText::from_json(l.as_bytes()).unwrap()).collect();
        let ledger =
            Ledger::parse(ledger_text.lines().enumerate().map(|(n, l)| (n as u64 + 1, l.as_bytes())), &rules).unwrap();
        let whole = score(&rules, &ledger, &all).unwrap();
        let encoded: Vec<(String, bool)> =
            whole.records.iter().map(|r| (encode(&r.record, r.input.map(|i| kept[i])), r.changed)).collect();
        let want_all: String = encoded.iter().map(|(v, _)| format!("{v}\n")).collect();
        let want_changed: String = encoded.iter().filter(|(_, c)| *c).map(|(v, _)| format!("{v}\n")).collect();
        assert!(whole.report.stale > 0 && whole.report.changed > 50, "{profile}: {:?}", whole.report.changed);
        assert!(!whole.report.institutions.is_empty(), "{profile}: no ratio rows");

        for input in [&plain, &zst] {
            let (all_out, changed_out, md) = (d.join("all.jsonl"), d.join("changed.jsonl"), d.join("report.md"));
            let (i, l) = (input.display().to_string(), ledger_path.display().to_string());
            let r = run(&[
                "score",
                "--profile",
                profile,
                "--ledger",
                &l,
                "--practitioners",
                &i,
                "--out",
                changed_out.to_str().unwrap(),
                "--out-all",
                all_out.to_str().unwrap(),
                "--report",
                md.to_str().unwrap(),
                "--quiet",
            ]);
            assert!(r.status.success(), "{profile}: {}", String::from_utf8_lossy(&r.stderr));
            assert!(std::fs::read_to_string(&changed_out).unwrap() == want_changed, "{profile} {i}: --out differs");
            assert!(std::fs::read_to_string(&all_out).unwrap() == want_all, "{profile} {i}: --out-all differs");
            let sources = Sources {
                profile: format!("{} — {}", shipped.name, shipped.title),
                ledger: l.clone(),
                practitioners: Some(i.clone()),
                written: Written::All,
            };
            assert_eq!(std::fs::read_to_string(&md).unwrap(), markdown(&whole.report, &sources), "{profile} {i}");
        }
    }
}

#[test]
fn a_bad_line_after_the_touched_records_stops_the_run_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    let mut held = std::fs::read_to_string(examples.join("practitioners.jsonl")).unwrap();
    held.push_str("{\"code\":\"D110105000077\",\"registrations\":[{\"institution\":\"H1\",\"from\":\"2020-01-01\"}],\"version\":1}\n");
    let p = d.join("held.jsonl");
    std::fs::write(&p, held).unwrap();
    let (out, all) = (d.join("out.jsonl"), d.join("all.jsonl"));
    let ledger = examples.join("national-2024.jsonl");
    let r = run(&[
        "score",
        "--ledger",
        ledger.to_str().unwrap(),
        "--practitioners",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--out-all",
        all.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("held.jsonl:6:") && err.contains("registrations[0].institution"), "{err}");
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 1, "only the input is there");
}

#[test]
fn practitioners_from_standard_input_are_refused_and_one_output_is_required() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    let ledger = examples.join("national-2024.jsonl");
    let r = run(&["score", "--ledger", ledger.to_str().unwrap(), "--practitioners", "-", "--out", "/dev/null"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("give a file, not standard input"));
    let r = run(&["score", "--ledger", ledger.to_str().unwrap()]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--out") && err.contains("--out-all"), "{err}");
    // Without held records every code is new: --out and --out-all agree.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let r = run(&[
        "score",
        "--ledger",
        ledger.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
        "--out-all",
        b.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let a = std::fs::read_to_string(a).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, std::fs::read_to_string(b).unwrap());
}
