//! The worked examples of `docs/scoring.md`: `claimgate score` on each region's ledger under
//! `examples/ledgers/`, then `claimgate review` on its full output (`--out-all`), checked claim by claim;
//! and the records and reports, byte for byte, against those of the whole-file implementation before
//! issue 10 (`tests/score_before/`, written by commit 75335b0). Seeds: Huai'an =
//! 000_a49834594c269b75.txt, Qinghai (national-2024) = 001_70455349a9435e17.txt, Lanzhou =
//! 002_0d8737387619c9dd.txt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_claimgate");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers")
}

fn claimgate(args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(examples()).output().expect("claimgate runs")
}

fn ok(args: &[&str]) -> String {
    let out = claimgate(args);
    assert!(out.status.success(), "claimgate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

struct Run {
    _dir: tempfile::TempDir,
    /// Every record (`--out-all`).
    records: String,
    /// The changed records (`--out`).
    changed: String,
    report: String,
    /// `feedetl_sn` → (verdict, reason).
    verdicts: BTreeMap<String, (String, String)>,
}

/// `score` the region's ledger over the shared practitioner records, then `review` its claims.
fn score_and_review(profile: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("practitioners.scored.jsonl");
    let changed = dir.path().join("practitioners.changed.jsonl");
    let report = dir.path().join("score.md");
    let decisions = dir.path().join("decisions.jsonl");
    let (ledger, claims) = (format!("{profile}.jsonl"), format!("{profile}.claims.jsonl"));
    let summary = ok(&[
        "score",
        "--profile",
        profile,
        "--ledger",
        &ledger,
        "--practitioners",
        "practitioners.jsonl",
        "--out-all",
        out.to_str().unwrap(),
        "--out",
        changed.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(summary.starts_with("scored "), "{summary}");
    ok(&[
        "review",
        "--claims",
        &claims,
        "--practitioners",
        out.to_str().unwrap(),
        "--profile",
        profile,
        "--out",
        decisions.to_str().unwrap(),
        "--quiet",
    ]);
    let verdicts = std::fs::read_to_string(&decisions)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("feedetl_sn"), (s("verdict"), s("reason")))
        })
        .collect();
    Run {
        records: std::fs::read_to_string(&out).unwrap(),
        changed: std::fs::read_to_string(&changed).unwrap(),
        report: std::fs::read_to_string(&report).unwrap(),
        verdicts,
        _dir: dir,
    }
}

fn expect(run: &Run, want: &[(&str, &str, &str)]) {
    assert_eq!(run.verdicts.len(), want.len());
    for (sn, verdict, reason) in want {
        let got = &run.verdicts[*sn];
        assert_eq!((got.0.as_str(), got.1.as_str()), (*verdict, *reason), "claim {sn}");
    }
}

#[test]
fn worked_example_national_2024() {
    let run = score_and_review("national-2024");
    expect(
        &run,
        &[
            ("QH-01", "accept", "OK"),                      // before the suspension
            ("QH-02", "reject", "PRACTITIONER_SUSPENDED"),  // 9 points: Art. 11(2)
            ("QH-03", "accept", "EMERGENCY_OVERRIDE"),      // emergency: Art. 9(6)2
            ("QH-04", "reject", "PRACTITIONER_SUSPENDED"),  // at the other site too: Art. 9(6)5
            ("QH-05", "reject", "PRACTITIONER_SUSPENDED"),  // planned end passed, no restore yet
            ("QH-06", "accept", "OK"),                      // restored: Art. 18
            ("QH-07", "accept", "OK"),                      // before the termination
            ("QH-08", "reject", "PRACTITIONER_TERMINATED"), // one case of 13 points: Art. 11(3)
            ("QH-09", "reject", "PRACTITIONER_TERMINATED"), // no emergency exception: Art. 9(6)3
            ("QH-10", "reject", "PRACTITIONER_SUSPENDED"),  // responsible for the institution: Art. 9(6)6
            ("QH-11", "accept", "OK"),                      // the institution's period is over
            ("QH-12", "accept", "OK"),                      // not responsible: normal
            ("QH-13", "accept", "OK"),                      // the finding was revoked: Art. 15
            ("QH-14", "accept", "OK"),                      // never named
        ],
    );
    assert!(run.records.contains(r#""basis":"national-2024 Art. 11(2): 9 points in 2026","decision_id":"F-QH-02""#));
    // Fields records.md does not define are passed on.
    assert!(run.records.lines().next().unwrap().ends_with(r#","version":5,"title":"主治医师"}"#), "{}", run.records);
    assert!(run.report.contains("cannot be repaired"));
}

#[test]
fn worked_example_huaian_2020() {
    let run = score_and_review("huaian-2020");
    expect(
        &run,
        &[
            ("HA-01", "accept", "OK"),                     // within the 15 working days' notice: Art. 22(4)
            ("HA-02", "reject", "PRACTITIONER_SUSPENDED"), // 9 points, 3 months: Art. 22(3)
            ("HA-03", "reject", "PRACTITIONER_SUSPENDED"), // no emergency exception: Art. 11
            ("HA-04", "reject", "PRACTITIONER_SUSPENDED"),
            ("HA-05", "accept", "OK"), // restored before the planned end: Art. 25
            ("HA-06", "accept", "OK"), // notice across 中秋 and 国庆 with make-up days
            ("HA-07", "reject", "PRACTITIONER_SUSPENDED"),
            ("HA-08", "reject", "PRACTITIONER_SUSPENDED"), // planned end passed, restore came later
            ("HA-09", "accept", "OK"),
            ("HA-10", "reject", "PRACTITIONER_SUSPENDED"), // 12 points, 1 year: Art. 22(4)
            ("HA-11", "accept", "OK"),                     // cleared: Art. 31
            ("HA-12", "reject", "PRACTITIONER_SUSPENDED"), // the institution suspended: Art. 27(5)
            ("HA-13", "reject", "PRACTITIONER_SUSPENDED"),
            ("HA-14", "accept", "OK"),
        ],
    );
    assert!(run.report.contains("| 2 | F-HA-02 | finding | 2026-02-10 | **ignored** |"));
    assert!(run.report.contains("annual assessment failed"));
}

#[test]
fn worked_example_lanzhou_2014() {
    let run = score_and_review("lanzhou-2014");
    expect(
        &run,
        &[
            ("LZ-01", "accept", "OK"),
            ("LZ-02", "reject", "PRACTITIONER_SUSPENDED"), // 6 points, 3 months: Art. 17
            ("LZ-03", "accept", "OK"),                     // resumes without a restore
            ("LZ-04", "reject", "PRACTITIONER_SUSPENDED"), // 8 points, 6 months
            ("LZ-05", "reject", "PRACTITIONER_SUSPENDED"), // no emergency exception: Art. 9
            ("LZ-06", "accept", "OK"),
            ("LZ-07", "accept", "OK"),
            ("LZ-08", "reject", "PRACTITIONER_TERMINATED"), // 10 points: disqualified
            ("LZ-09", "reject", "PRACTITIONER_TERMINATED"), // registered again during the ban: Art. 18
            ("LZ-10", "accept", "OK"),                      // 5 + 5 in two agreement periods
        ],
    );
    assert!(run.report.contains("the agreement period 2023-03-01 to 2025-03-01 | 5 |"));
}

#[test]
fn scoring_is_deterministic_and_scoring_its_output_again_changes_nothing() {
    let a = score_and_review("national-2024");
    let b = score_and_review("national-2024");
    assert_eq!(a.records, b.records);
    assert_eq!(a.report, b.report);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, &a.records).unwrap();
    let (again, changes) = (dir.path().join("again.jsonl"), dir.path().join("changes.jsonl"));
    let args = ["score", "--profile", "national-2024", "--ledger", "national-2024.jsonl", "--quiet"];
    let outs = ["--out-all", again.to_str().unwrap(), "--out", changes.to_str().unwrap()];
    ok(&[&args[..], &["--practitioners", first.to_str().unwrap()], &outs].concat());
    assert_eq!(std::fs::read_to_string(&again).unwrap(), a.records);
    assert_eq!(std::fs::read_to_string(&changes).unwrap(), "", "nothing changed, nothing to publish");
}

/// Issue 10, item 6: `score` streams the practitioner file and writes only what changed, yet the
/// records of the people it touches are the whole-file implementation's, byte for byte; `--out-all`
/// and the report are too (the report's "Written" line says what was written).
#[test]
fn the_records_and_reports_are_those_of_the_whole_file_implementation_before_issue_10() {
    let held: BTreeMap<String, u64> = std::fs::read_to_string(examples().join("practitioners.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["code"].as_str().unwrap().to_owned(), v["version"].as_u64().unwrap())
        })
        .collect();
    let before = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/score_before");
    for profile in ["national-2024", "huaian-2020", "lanzhou-2014"] {
        let run = score_and_review(profile);
        let records = std::fs::read_to_string(before.join(format!("{profile}.jsonl"))).unwrap();
        let report = std::fs::read_to_string(before.join(format!("{profile}.md"))).unwrap();
        assert_eq!(run.records, records, "{profile}: --out-all");
        assert_eq!(run.report, report, "{profile}: the report");
        // The changed records: those whose version the run raised (or new codes), in the same order.
        let changed: String = records
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                held.get(v["code"].as_str().unwrap()) != v["version"].as_u64().as_ref()
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!changed.is_empty());
        assert_eq!(run.changed, changed, "{profile}: --out");
        // Written alone, the changed records say so in the report; everything else is the same.
        let dir = tempfile::tempdir().unwrap();
        let (out, md) = (dir.path().join("changes.jsonl"), dir.path().join("changes.md"));
        let (ledger, o, m) = (format!("{profile}.jsonl"), out.to_str().unwrap(), md.to_str().unwrap());
        let summary = ok(&[
            "score",
            "--profile",
            profile,
            "--ledger",
            &ledger,
            "--practitioners",
            "practitioners.jsonl",
            "--out",
            o,
            "--report",
            m,
        ]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), changed, "{profile}: --out alone");
        let n = changed.lines().count();
        assert!(summary.contains(&format!(": {n} of 5 records changed (0 new), written to {o};")), "{summary}");
        let written = |r: &str| r.lines().find(|l| l.starts_with("- Written:")).unwrap().to_owned();
        let md = std::fs::read_to_string(&md).unwrap();
        assert_eq!(
            written(&md),
            format!(
                "- Written: the {n} changed records (version raised), 0 of them new; {} unchanged not written",
                5 - n
            )
        );
        assert_eq!(md.replace(&written(&md), &written(&report)), report, "{profile}");
    }
}

#[test]
fn a_bad_ledger_line_stops_the_run_names_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(examples().join("national-2024.jsonl")).unwrap();
    let bad = good.replacen("national-2024/10.4.2.1", "national-2024/10.4.2.9", 1);
    std::fs::write(&ledger, bad).unwrap();
    let out = dir.path().join("out.jsonl");
    let report = dir.path().join("report.md");
    let run = claimgate(&[
        "score",
        "--ledger",
        ledger.to_str().unwrap(),
        "--practitioners",
        "practitioners.jsonl",
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains(
            "line 2, event F-QH-02: unknown item `national-2024/10.4.2.9`: not in the national-2024 catalogue"
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the ledger is there");
}

/// A Huai'an finding decided on 2026-12-21: its 15-working-day notice ends in 2027.
const LATE_FINDING: &str = r#"{"id": "F-HA-late", "type": "finding", "code": "D320803000101", "case_id": "C-late", "item": "huaian-2020/15.1", "decided_at": "2026-12-21"}"#;

fn score_late(dir: &Path, extra: &[&str]) -> (Output, String, String) {
    let ledger = dir.join("late.jsonl");
    std::fs::write(&ledger, format!("{LATE_FINDING}\n")).unwrap();
    let (out, report) = (dir.join("out.jsonl"), dir.join("report.md"));
    let args = [
        "score",
        "--profile",
        "huaian-2020",
        "--ledger",
        ledger.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let run = claimgate(&[&args[..], extra].concat());
    let records = std::fs::read_to_string(&out).unwrap_or_default();
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    (run, records, report)
}

#[test]
fn a_notice_into_a_year_without_a_holiday_list_is_provisional_and_the_run_succeeds_huaian_22_4() {
    let dir = tempfile::tempdir().unwrap();
    let (run, records, report) = score_late(dir.path(), &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("warning: 1 period is PROVISIONAL") && err.contains("2027"), "{err}");
    assert!(records.contains(r#""from":"2027-01-11""#) && records.contains("PROVISIONAL"), "{records}");
    assert!(report.contains("## Provisional periods"), "{report}");
}

#[test]
fn a_calendar_loaded_at_run_time_replaces_the_provisional_count_huaian_22_4() {
    let dir = tempfile::tempdir().unwrap();
    // Test data in the shipped format (not the State Council's 2027 notice): a holiday on 01-04 and 01-05.
    let cals = dir.path().join("calendars");
    std::fs::create_dir(&cals).unwrap();
    std::fs::write(
        cals.join("2027.toml"),
        "[[year]]\nyear = 2027\nsource = \"test\"\nholidays = [\"2027-01-01\", \"2027-01-04\", \"2027-01-05\"]\nmakeup_workdays = []\n",
    )
    .unwrap();
    std::fs::write(cals.join("README.txt"), "not a calendar: ignored").unwrap();
    // First without it (provisional), then again over the records written, as an agency would.
    let (_, provisional, _) = score_late(dir.path(), &[]);
    assert!(provisional.contains("PROVISIONAL"));
    let held = dir.path().join("held.jsonl");
    std::fs::write(&held, &provisional).unwrap();
    let args = ["--calendar", cals.to_str().unwrap(), "--practitioners", held.to_str().unwrap()];
    let (run, records, report) = score_late(dir.path(), &args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(!err.contains("PROVISIONAL"), "{err}");
    assert!(records.contains(r#""from":"2027-01-14""#) && !records.contains("PROVISIONAL"), "{records}");
    assert!(records.contains(r#""version":2"#), "the replaced record's version is raised: {records}");
    assert!(!report.contains("Provisional"), "{report}");
}

#[test]
fn a_bad_calendar_file_is_refused_with_its_name_and_the_date() {
    let dir = tempfile::tempdir().unwrap();
    let cal = dir.path().join("2027.toml");
    std::fs::write(&cal, "[[year]]\nyear = 2027\nholidays = [\"2027-02-08\", \"2027-02-08\"]\nmakeup_workdays = []\n")
        .unwrap();
    let (run, records, _) = score_late(dir.path(), &["--calendar", cal.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("2027.toml") && err.contains("2027-02-08 is listed twice in year 2027"), "{err}");
    assert!(records.is_empty(), "nothing written");
}
