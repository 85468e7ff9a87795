//! UTF-8 byte-order marks (issue 10, item 7): exports saved by spreadsheet programs start with one.
//! A mark at the start of any input file — claims (plain, `.gz`, `.zst`, standard input), practitioner
//! and institution records, ledgers, CSV exports, profiles and calendars — is skipped; anywhere else it
//! is a byte of the line like any other, so a line that starts with one mid-file is still refused.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use util::{bin, claimgate, read_jsonl, without_time};

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(bytes: &[u8]) -> Vec<u8> {
    [BOM, bytes].concat()
}

/// Writes `bytes` (plus a BOM in front when `bom`) to `dir/name`, compressed by the name's ending.
fn write(dir: &Path, name: &str, bytes: &[u8], bom: bool) -> PathBuf {
    let bytes = if bom { with_bom(bytes) } else { bytes.to_vec() };
    let path = dir.join(name);
    let data = if name.ends_with(".zst") {
        zstd::encode_all(bytes.as_slice(), 3).unwrap()
    } else if name.ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap()
    } else {
        bytes
    };
    std::fs::write(&path, data).unwrap();
    path
}

/// A generated world without malformed lines, so that every dead letter comes from a mark.
fn world(dir: &Path) {
    let d = dir.display().to_string();
    claimgate(&[
        "gen",
        "--out-dir",
        &d,
        "--practitioners",
        "2000",
        "--claims",
        "300",
        "--malformed-rate",
        "0",
        "--quiet",
    ]);
}

/// `review` of `claims` (a path, or `-` with `stdin`): decisions without their times, and dead letters.
fn review(
    dir: &Path,
    claims: &str,
    practitioners: &Path,
    institutions: &Path,
    stdin: Option<&[u8]>,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let out = dir.join("decisions.jsonl");
    let dl = dir.join("dead.jsonl");
    let _ = std::fs::remove_file(&dl);
    let mut child = Command::new(bin())
        .args(["review", "--claims", claims, "--quiet"])
        .args(["--practitioners", &practitioners.display().to_string()])
        .args(["--institutions", &institutions.display().to_string()])
        .args(["--out", &out.display().to_string(), "--dead-letters", &dl.display().to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "review {claims}: {}", String::from_utf8_lossy(&run.stderr));
    let decisions = read_jsonl(&out).iter().map(without_time).collect();
    let dead = if dl.exists() { read_jsonl(&dl) } else { Vec::new() };
    (decisions, dead)
}

#[test]
fn claims_with_a_bom_are_decided_plain_gz_zst_and_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    world(d);
    let claims = std::fs::read(d.join("claims.jsonl")).unwrap();
    let (p, i) = (d.join("practitioners.jsonl"), d.join("institutions.jsonl"));
    let (want, dead) = review(d, &d.join("claims.jsonl").display().to_string(), &p, &i, None);
    assert_eq!((want.len(), dead.len()), (300, 0));
    for name in ["bom.jsonl", "bom.jsonl.gz", "bom.jsonl.zst"] {
        let path = write(d, name, &claims, true);
        let (got, dead) = review(d, &path.display().to_string(), &p, &i, None);
        assert!(dead.is_empty(), "{name}: the mark made a dead letter: {}", dead[0]);
        assert_eq!(got, want, "{name}");
    }
    let (got, dead) = review(d, "-", &p, &i, Some(&with_bom(&claims)));
    assert!(dead.is_empty(), "standard input: the mark made a dead letter: {}", dead[0]);
    assert_eq!(got, want, "standard input");
}

#[test]
fn a_bom_inside_a_claims_file_is_still_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    world(d);
    let claims = std::fs::read(d.join("claims.jsonl")).unwrap();
    let (p, i) = (d.join("practitioners.jsonl"), d.join("institutions.jsonl"));
    // A mark at the start of the file and another at the start of line 3.
    let mut lines: Vec<Vec<u8>> = claims.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines[2] = with_bom(&lines[2]);
    let text = lines.join(&b'\n');
    for name in ["mid.jsonl", "mid.jsonl.zst"] {
        let path = write(d, name, &text, true);
        let (got, dead) = review(d, &path.display().to_string(), &p, &i, None);
        assert_eq!((got.len(), dead.len()), (299, 1), "{name}");
        assert!(dead[0]["source"].as_str().unwrap().ends_with(":3"), "{name}: {}", dead[0]);
        assert!(dead[0]["raw"].as_str().unwrap().starts_with('\u{feff}'), "{name}: {}", dead[0]);
    }
    // Two concatenated gzip members: the second one's mark is in the middle of the file.
    let mut gz = std::fs::read(write(d, "a.gz", &claims, true)).unwrap();
    gz.extend(std::fs::read(write(d, "b.gz", &claims, true)).unwrap());
    std::fs::write(d.join("two.jsonl.gz"), gz).unwrap();
    let (got, dead) = review(d, &d.join("two.jsonl.gz").display().to_string(), &p, &i, None);
    assert_eq!((got.len(), dead.len()), (599, 1));
    assert!(dead[0]["source"].as_str().unwrap().ends_with(":301"), "{}", dead[0]);
}

#[test]
fn status_files_with_a_bom_load_for_review_and_tables_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    world(d);
    let claims = d.join("claims.jsonl").display().to_string();
    let (p, i) = (d.join("practitioners.jsonl"), d.join("institutions.jsonl"));
    let (want, _) = review(d, &claims, &p, &i, None);
    let pb = write(d, "p.jsonl", &std::fs::read(&p).unwrap(), true);
    let pz = write(d, "p.jsonl.zst", &std::fs::read(&p).unwrap(), true);
    let ib = write(d, "i.jsonl", &std::fs::read(&i).unwrap(), true);
    for practitioners in [&pb, &pz] {
        let (got, dead) = review(d, &claims, practitioners, &ib, None);
        assert!(dead.is_empty());
        assert_eq!(got, want, "{}", practitioners.display());
    }
    let snap = d.join("snap.bin");
    let (ps, is) = (pb.display().to_string(), ib.display().to_string());
    claimgate(&[
        "tables",
        "build",
        "--practitioners",
        &ps,
        "--institutions",
        &is,
        "--out",
        &snap.display().to_string(),
    ]);
    let info = claimgate(&["tables", "inspect", &snap.display().to_string()]);
    assert!(info.contains("practitioners 2000"), "{info}");

    // Only the start of the file is special: a mark before line 2 is a bad line 2.
    let text = std::fs::read_to_string(&p).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let mid = write(d, "mid.jsonl", format!("{first}\n\u{feff}{rest}").as_bytes(), true);
    let run = Command::new(bin())
        .args(["tables", "build", "--practitioners", &mid.display().to_string(), "--out", "/dev/null"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("mid.jsonl:2:"), "{err}");
}

#[test]
fn score_reads_a_ledger_and_practitioner_records_with_a_bom() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    let ledger = examples.join("national-2024.jsonl");
    let held = examples.join("practitioners.jsonl");
    let score = |ledger: &Path, held: &Path, out: &str| {
        let out = d.join(out);
        claimgate(&[
            "score",
            "--profile",
            "national-2024",
            "--ledger",
            &ledger.display().to_string(),
            "--practitioners",
            &held.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--quiet",
        ]);
        std::fs::read_to_string(out).unwrap()
    };
    let want = score(&ledger, &held, "want.jsonl");
    let ledger_bom = write(d, "ledger.jsonl", &std::fs::read(&ledger).unwrap(), true);
    let held_bom = write(d, "held.jsonl.gz", &std::fs::read(&held).unwrap(), true);
    assert_eq!(score(&ledger_bom, &held_bom, "got.jsonl"), want);

    // A ledger read from standard input, with its mark.
    let out = d.join("stdin.jsonl");
    let mut child = Command::new(bin())
        .args(["score", "--profile", "national-2024", "--ledger", "-", "--quiet"])
        .args(["--practitioners", &held.display().to_string(), "--out", &out.display().to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&with_bom(&std::fs::read(&ledger).unwrap())).unwrap();
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(out).unwrap(), want);

    // A mark before the second line is a bad line 2.
    let text = std::fs::read_to_string(&ledger).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let mid = write(d, "mid.jsonl", format!("{first}\n\u{feff}{rest}").as_bytes(), true);
    let run = Command::new(bin())
        .args(["score", "--profile", "national-2024", "--ledger", &mid.display().to_string()])
        .args(["--out", &d.join("mid-out.jsonl").display().to_string()])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn tables_import_reads_csv_exports_with_a_bom() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = "code,institution,from,until,name\n\tD110105000123,\tH11010500001,2021-03-01,,张三\n";
    let path = write(d, "registrations.csv", csv.as_bytes(), true);
    let out = d.join("p.jsonl");
    claimgate(&[
        "tables",
        "import",
        "--registrations",
        &path.display().to_string(),
        "--out-practitioners",
        &out.display().to_string(),
    ]);
    let records = read_jsonl(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["code"], "D110105000123");
}

#[test]
fn profiles_and_calendars_saved_with_a_bom_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/national-2024.toml");
    let profile = write(d, "national.toml", &std::fs::read(&shipped).unwrap(), true);
    let calendar = write(
        d,
        "2027.toml",
        b"[[year]]\nyear = 2027\nsource = \"test\"\nholidays = [\"2027-01-01\"]\nmakeup_workdays = []\n",
        true,
    );
    let ledger = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers/national-2024.jsonl");
    let out = d.join("out.jsonl");
    claimgate(&[
        "score",
        "--profile",
        &profile.display().to_string(),
        "--ledger",
        &ledger.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--quiet",
    ]);
    let huaian = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers/huaian-2020.jsonl");
    claimgate(&[
        "score",
        "--profile",
        "huaian-2020",
        "--calendar",
        &calendar.display().to_string(),
        "--ledger",
        &huaian.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--quiet",
    ]);
}
