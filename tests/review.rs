//! `claimgate review` through the binary: inputs, outputs, the report, `--previous`, errors.

mod util;

use util::oracle;

use std::io::Write;
use std::process::{Command, Stdio};

use util::{bin, claimgate, identity, read_jsonl};

fn world(dir: &std::path::Path, claims: u64) {
    claimgate(&[
        "gen",
        "--out-dir",
        &dir.display().to_string(),
        "--practitioners",
        "3000",
        "--claims",
        &claims.to_string(),
        "--malformed-rate",
        "0.01",
        "--quiet",
    ]);
}

fn review(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let p = dir.join("practitioners.jsonl").display().to_string();
    let i = dir.join("institutions.jsonl").display().to_string();
    let mut args = vec!["review", "--practitioners", &p, "--institutions", &i];
    args.extend_from_slice(extra);
    Command::new(bin()).args(&args).output().expect("run review")
}

/// A generated world of `claims` lines, reviewed once: (the claims file, the decisions file).
fn decided_once(dir: &std::path::Path, claims: u64) -> (String, std::path::PathBuf) {
    world(dir, claims);
    let path = dir.join("claims.jsonl").display().to_string();
    let first = dir.join("first.jsonl");
    let r = review(dir, &["--claims", &path, "--out", &first.display().to_string(), "--quiet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    (path, first)
}

/// A report with what differs from run to run (times, durations) blanked.
fn steady(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.contains(" s ") && !l.contains("seconds") && !l.contains("started") && !l.contains("lines/s"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn inline_decisions_past_their_memory_are_joined_through_files_to_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    // More lines than 1 MiB holds in memory (32 bytes a decision: 32 768).
    let (claims, first) = decided_once(dir.path(), 45_000);
    // The inline decisions: every rejection accepted (money to recover), every 7th accepted line
    // rejected (money to pay), every 10th line missing, and one line twice with the later reason
    // counting.
    let mut inline: Vec<String> = Vec::new();
    for (n, mut v) in read_jsonl(&first).into_iter().enumerate() {
        if n % 10 == 3 {
            continue;
        }
        if v["verdict"] == "reject" {
            v["verdict"] = "accept".into();
            v["reason"] = "OK".into();
        } else if n % 7 == 0 {
            v["verdict"] = "reject".into();
            v["reason"] = "PRACTITIONER_SUSPENDED".into();
        }
        if n == 5 {
            let mut earlier = v.clone();
            earlier["verdict"] = "reject".into();
            earlier["reason"] = "PRACTITIONER_TERMINATED".into();
            inline.push(earlier.to_string());
        }
        inline.push(v.to_string());
    }
    assert!(inline.len() > 32_768, "{} inline decisions", inline.len());
    let prev = dir.path().join("inline.jsonl");
    std::fs::write(&prev, inline.join("\n") + "\n").unwrap();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    // A review against the inline decisions: (its report, what it said on standard error), or its
    // error.
    let run = |name: &str, extra: &[&str]| {
        let report = dir.path().join(name);
        let report_arg = report.display().to_string();
        let mut args = vec!["--claims", &claims, "--previous", prev.to_str().unwrap(), "--threads", "2"];
        args.extend_from_slice(&["--report", &report_arg]);
        args.extend_from_slice(extra);
        let r = review(dir.path(), &args);
        let said = String::from_utf8_lossy(&r.stderr).into_owned();
        if r.status.success() { Ok((std::fs::read_to_string(&report).unwrap(), said)) } else { Err(said) }
    };
    let (in_memory, said) = run("memory.md", &[]).unwrap();
    assert!(!said.contains("partition by partition"), "{said}");
    let (spilled, said) =
        run("spilled.md", &["--previous-memory", "1", "--spill-dir", spill.to_str().unwrap()]).unwrap();
    assert!(said.contains("joined partition by partition through files in"), "{said}");
    // Something to compare: lines to recover, to pay, and absent from the inline decisions.
    for row in ["**to recover**", "absent from the inline decisions"] {
        assert!(in_memory.contains(row), "{row} not in:\n{in_memory}");
    }
    let (a, b) = (steady(&spilled), steady(&in_memory));
    if a != b {
        let at = a.lines().zip(b.lines()).position(|(x, y)| x != y);
        let line = |t: &str| at.and_then(|n| t.lines().nth(n)).unwrap_or_default().to_owned();
        panic!(
            "the spilled join's report differs at line {at:?} ({} and {} lines):\n  spilled:   {}\n  in memory: {}",
            a.lines().count(),
            b.lines().count(),
            line(&a),
            line(&b)
        );
    }
    // The partition files are gone.
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    // A spill directory that cannot be written names the setting.
    let bad = dir.path().join("no-such-dir");
    let e = run("bad.md", &["--previous-memory", "1", "--spill-dir", bad.to_str().unwrap(), "--quiet"])
        .expect_err("a review with an unusable --spill-dir succeeded");
    assert!(e.contains("--spill-dir") && e.contains("no-such-dir"), "{e}");
    // The inline decisions are read while the tables load: a run whose tables fail leaves no partition
    // files (they hold personal data). Here the tables fail before the reading has spilled anything,
    // so this passes without the guard that waits for the reading too (tried: 3 runs of 3); the race
    // itself is `cmd::review::tests::a_reading_dropped_unjoined_waits_for_its_thread`.
    let e = run(
        "failed.md",
        &["--previous-memory", "1", "--spill-dir", spill.to_str().unwrap(), "--mappings", "no-such.jsonl"],
    )
    .expect_err("a review with an unreadable --mappings succeeded");
    assert!(e.contains("no-such.jsonl"), "{e}");
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0, "partition files left after a failed run");
}

#[test]
fn decisions_come_out_in_input_order_across_files_and_compressions() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), 4_000);
    // Bytes, not text: the generated day has lines that are not UTF-8.
    let data = std::fs::read(dir.path().join("claims.jsonl")).unwrap();
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let (a, b) = lines.split_at(1_500);
    let join = |part: &[&[u8]]| part.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect::<Vec<u8>>();
    std::fs::write(dir.path().join("a.jsonl"), join(a)).unwrap();
    let mut enc = zstd::Encoder::new(std::fs::File::create(dir.path().join("b.jsonl.zst")).unwrap(), 3).unwrap();
    enc.write_all(&join(b)).unwrap();
    enc.finish().unwrap();
    let out = dir.path().join("out.jsonl.gz");
    let dl = dir.path().join("dl.jsonl");
    let r = review(
        dir.path(),
        &[
            "--claims",
            &dir.path().join("a.jsonl").display().to_string(),
            "--claims",
            &dir.path().join("b.jsonl.zst").display().to_string(),
            "--out",
            &out.display().to_string(),
            "--dead-letters",
            &dl.display().to_string(),
            "--threads",
            "2",
            "--quiet",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let mut decoded = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()), &mut decoded)
        .unwrap();
    let decisions: Vec<serde_json::Value> = decoded.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let dead = read_jsonl(&dl);
    assert_eq!(decisions.len() + dead.len(), lines.len());
    // Input order: the decisions' identities follow the input lines that parsed.
    // Which lines parse, judged by the tests' own reading of records.md, not by the parser under test.
    let expected: Vec<_> = lines
        .iter()
        .filter_map(|l| oracle::read(l).ok())
        .map(|c| (c.fixmedins_code, c.mdtrt_id, c.feedetl_sn))
        .collect();
    let got: Vec<_> = decisions.iter().map(identity).collect();
    assert_eq!(got, expected);
    // Dead letters name their file and line.
    assert!(dead.iter().all(|d| d["source"].as_str().unwrap().contains(".jsonl")));
}

#[test]
fn the_report_sums_exactly_and_previous_lists_the_money_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (claims, first) = decided_once(dir.path(), 3_000);
    // Pretend the inline filter accepted everything (a stale table): every rejection now is money to
    // recover.
    let inline: Vec<String> = read_jsonl(&first)
        .into_iter()
        .map(|mut v| {
            v["verdict"] = "accept".into();
            v["reason"] = "OK".into();
            v.to_string()
        })
        .collect();
    let prev = dir.path().join("inline.jsonl");
    std::fs::write(&prev, inline.join("\n") + "\n").unwrap();
    let report = dir.path().join("report.md");
    let r = review(
        dir.path(),
        &["--claims", &claims, "--previous", &prev.display().to_string(), "--report", &report.display().to_string()],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let md = std::fs::read_to_string(&report).unwrap();
    let rejected: Vec<serde_json::Value> =
        read_jsonl(&first).into_iter().filter(|v| v["verdict"] == "reject").collect();
    // The money, summed from the input lines by the tests' own reading of the amounts (not `Amount`).
    let rejected_ids: std::collections::HashSet<_> = rejected.iter().map(identity).collect();
    let fen: i64 = std::fs::read(&claims)
        .unwrap()
        .split(|c| *c == b'\n')
        .filter_map(|l| oracle::read(l).ok())
        .filter(|c| rejected_ids.contains(&(c.fixmedins_code.clone(), c.mdtrt_id.clone(), c.feedetl_sn.clone())))
        .map(|c| c.amount_fen)
        .sum();
    let total = format!("{}.{:02}", fen / 100, fen % 100);
    let row = md.lines().find(|l| l.contains("**to recover**")).expect("a to-recover row");
    assert!(row.contains(&format!("| {} |", rejected.len())), "{row}");
    let digits: String = row.split('|').nth(3).unwrap().trim().replace(',', "");
    assert_eq!(digits, total, "{row}");
    // Every changed line is listed.
    let listed = ["| OK | PRACTITIONER_", "| OK | INSTITUTION_", "| OK | DEPARTMENT_"]
        .iter()
        .map(|p| md.matches(p).count())
        .sum::<usize>();
    assert_eq!(listed, rejected.len());
    // The summary on standard output says the same.
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.contains("to recover"), "{stdout}");
}

#[test]
fn an_html_report_has_charts() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), 2_000);
    let claims = dir.path().join("claims.jsonl").display().to_string();
    let html = dir.path().join("report.html");
    let r = review(dir.path(), &["--claims", &claims, "--report", &html.display().to_string(), "--quiet"]);
    assert!(r.status.success());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.matches("<svg").count() == 2 && page.contains("<rect"));
    assert!(page.contains("<table>") && page.contains("PRACTITIONER_UNREGISTERED"));
}

#[test]
fn standard_input_works_and_unreadable_inputs_fail_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), 500);
    let mut child = Command::new(bin())
        .args([
            "review",
            "--claims",
            "-",
            "--practitioners",
            &dir.path().join("practitioners.jsonl").display().to_string(),
            "--out",
            "-",
            "--quiet",
            "--dead-letters",
            &dir.path().join("dl.jsonl").display().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(dir.path().join("claims.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let decided = String::from_utf8_lossy(&out.stdout).lines().count();
    let dead = read_jsonl(&dir.path().join("dl.jsonl")).len();
    assert_eq!(decided + dead, 500);

    let r = review(dir.path(), &["--claims", "/no/such/claims.jsonl"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("/no/such/claims.jsonl"));
    let bad = dir.path().join("bad-practitioners.jsonl");
    std::fs::write(&bad, "{\"code\":\"D110105000001\",\"version\":1}\n{not json}\n").unwrap();
    let r = Command::new(bin())
        .args(["review", "--claims", &dir.path().join("claims.jsonl").display().to_string()])
        .args(["--practitioners", &bad.display().to_string()])
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("bad-practitioners.jsonl:2"), "{err}");
}

/// docs/rules.md: `--routing` with the shipped example table; the report names the routing table and lists
/// the warned lines; a bad table stops the run naming the setting; `--routing` and `--profile` exclude
/// each other.
#[test]
fn routing_and_mappings_from_the_shipped_example_and_refusals_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/routing/example.toml");
    let xining = "H63010200001";
    std::fs::write(
        p.join("practitioners.jsonl"),
        format!(
            r#"{{"code":"D630102000001","version":1,"registrations":[{{"institution":"{xining}","from":"2020-01-01"}}]}}"#
        ) + "\n",
    )
    .unwrap();
    std::fs::write(
        p.join("mappings.jsonl"),
        format!(
            r#"{{"institution":"{xining}","local_id":"0457","version":1,"periods":[{{"code":"D630102000001","from":"2020-01-01"}}]}}"#
        ) + "\n",
    )
    .unwrap();
    let line = |sn: &str, time: &str, code: &str| {
        format!(
            r#"{{"feedetl_sn":"{sn}","fixmedins_code":"{xining}","mdtrt_id":"M1","psn_no":"P1","med_type":"11","fee_ocur_time":"{time}","bilg_dr_codg":"{code}","det_item_fee_sumamt":"12.50"}}"#
        ) + "\n"
    };
    let claims = [
        line("1", "2026-06-30 23:59:59", "0457"), // national-2024, legacy codes looked up: unknown
        line("2", "2026-07-01 00:00:00", "0457"), // qinghai-2026: mapped to D630102000001
        line("3", "2026-07-01 00:00:00", "0999"), // qinghai-2026: unmapped, warned
    ]
    .concat();
    std::fs::write(p.join("claims.jsonl"), claims).unwrap();
    let (out, report) = (p.join("out.jsonl"), p.join("report.md"));
    let r = Command::new(bin())
        .args(["review", "--claims", &p.join("claims.jsonl").display().to_string()])
        .args(["--practitioners", &p.join("practitioners.jsonl").display().to_string()])
        .args(["--mappings", &p.join("mappings.jsonl").display().to_string()])
        .args(["--routing", &example.display().to_string()])
        .args(["--out", &out.display().to_string(), "--report", &report.display().to_string(), "--quiet"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got: Vec<(String, String, String)> = read_jsonl(&out)
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("null").to_owned();
            (s("profile"), s("reason"), s("would_reject"))
        })
        .collect();
    let want = [
        ("national-2024", "PRACTITIONER_UNREGISTERED", "null"),
        ("qinghai-2026", "OK", "null"),
        ("qinghai-2026", "OK", "PRACTITIONER_CODE_UNMAPPED"),
    ];
    assert_eq!(got, want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("routing table") && md.contains("qinghai-2026"), "{md}");
    assert!(md.contains("| `0999` | `bilg_dr_codg` | 1 | 12.50 | PRACTITIONER_CODE_UNMAPPED |"), "{md}");

    // A bad table names its setting; --profile and --routing exclude each other.
    let bad = p.join("bad.toml");
    std::fs::write(&bad, "default = \"national-2024\"\n[[route]]\narea = \"32x\"\nprofile = \"huaian-2020\"\n")
        .unwrap();
    let run = |extra: &[&str]| {
        Command::new(bin())
            .args(["review", "--claims", &p.join("claims.jsonl").display().to_string()])
            .args(["--practitioners", &p.join("practitioners.jsonl").display().to_string(), "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let r = run(&["--routing", &bad.display().to_string()]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("route[0].area") && err.contains("bad.toml"), "{err}");
    let r = run(&["--routing", &example.display().to_string(), "--profile", "lanzhou-2014"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--profile"), "{}", String::from_utf8_lossy(&r.stderr));
}

/// `--out /dev/null` once put the dead letters, personal data included, in `/dev/null.dead-letters.jsonl`
/// (issue 15): a default path beside `--out` must not be derived from a device or standard output.
#[test]
fn output_to_a_device_puts_default_dead_letters_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), 500);
    let r = Command::new(bin())
        .current_dir(dir.path())
        .args(["review", "--claims", "claims.jsonl", "--practitioners", "practitioners.jsonl"])
        .args(["--out", "/dev/null", "--quiet"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let beside_device = std::path::Path::new("/dev/null.dead-letters.jsonl");
    let leaked = beside_device.exists();
    if leaked {
        let _ = std::fs::remove_file(beside_device);
    }
    assert!(!leaked, "dead letters were written inside /dev");
    assert!(!read_jsonl(&dir.path().join("dead-letters.jsonl")).is_empty());
}

/// A `.zst` day as claimgate writes it (line-aligned frames, decompressed by the workers in
/// parallel) gives the same decisions and the same dead letters, line numbers included, as the same
/// day in plain text; a `.zst` output reads back with any zstd decoder.
#[test]
fn framed_zstd_input_is_decided_like_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), 30_000);
    claimgate(&[
        "gen",
        "--out-dir",
        &dir.path().join("z").display().to_string(),
        "--practitioners",
        "3000",
        "--claims",
        "30000",
        "--malformed-rate",
        "0.01",
        "--compress",
        "zst",
        "--quiet",
    ]);
    let framed = std::fs::read(dir.path().join("z/claims.jsonl.zst")).unwrap();
    assert_eq!(zstd::decode_all(&framed[..]).unwrap(), std::fs::read(dir.path().join("claims.jsonl")).unwrap());
    let run = |claims: &str, out: &str, dl: &str| {
        let r =
            review(dir.path(), &["--claims", claims, "--out", out, "--dead-letters", dl, "--threads", "2", "--quiet"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let d = |name: &str| dir.path().join(name).display().to_string();
    run(&d("claims.jsonl"), &d("plain.jsonl"), &d("plain-dl.jsonl"));
    run(&d("z/claims.jsonl.zst"), &d("framed.jsonl.zst"), &d("framed-dl.jsonl"));
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("decided_at");
                o.remove("received_at");
                if let Some(s) = o.get("source").and_then(|s| s.as_str()) {
                    let line = s.rsplit(':').next().unwrap().to_owned();
                    o.insert("source".into(), line.into());
                }
                r
            })
            .collect()
    };
    let plain = read_jsonl(&dir.path().join("plain.jsonl"));
    let text = zstd::decode_all(std::fs::File::open(dir.path().join("framed.jsonl.zst")).unwrap()).unwrap();
    let framed: Vec<serde_json::Value> =
        String::from_utf8(text).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(plain.len() > 29_000);
    assert_eq!(strip(framed), strip(plain));
    let dead_plain = strip(read_jsonl(&dir.path().join("plain-dl.jsonl")));
    assert!(!dead_plain.is_empty());
    assert_eq!(strip(read_jsonl(&dir.path().join("framed-dl.jsonl"))), dead_plain);
}
