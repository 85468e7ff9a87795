//! Issue 13, closing the loop between inline and nightly, on Apache Kafka: `review` from a topic
//! between two times, late status changes published to `status.retro` and re-reviewed by
//! `review --retro`, dead letters replayed, the help desk's HTTP queries with scoped tokens.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use util::{Env, bin, claimgate, read_jsonl, without_time};

/// Now in Beijing time, `yyyy-MM-dd HH:mm:ss`, shifted by `delta_s` seconds.
fn bj_now(delta_s: i64) -> String {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    claimgate::record::BjTime::from_secs(unix + 8 * 3600 + delta_s).to_string()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().expect("run claimgate")
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A JSON Lines file's lines as they are (bytes: generated days hold lines that are not UTF-8).
fn raw_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    std::fs::write(path, data).unwrap();
}

/// Decisions without `decided_at`, sorted: what must be equal between two reviews of the same lines.
fn decisions(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = read_jsonl(path).iter().map(|d| without_time(d).to_string()).collect();
    v.sort();
    v
}

/// The report from its totals on: everything but the run's own description (inputs, times).
fn report_body(path: &Path) -> String {
    let md = std::fs::read_to_string(path).unwrap();
    md[md.find("## Totals by verdict").expect("totals section")..].to_owned()
}

#[test]
fn review_from_a_topic_between_two_times_decides_exactly_as_from_files() {
    let env = Env::new("rtopic");
    env.generate(2_000, 3_000, 13);
    let all = raw_lines(&env.path("claims.jsonl"));
    let (before, rest) = all.split_at(200);
    let (inside, after) = rest.split_at(2_500);
    for (name, part) in [("before", before), ("inside", inside), ("after", after)] {
        write_lines(&env.path(&format!("{name}.jsonl")), part);
    }
    // Lines sent before the window, in it, and after it: timestamps are the producer's (CreateTime).
    env.send(&env.path("before.jsonl"));
    std::thread::sleep(Duration::from_millis(2_100));
    let from = bj_now(0);
    std::thread::sleep(Duration::from_millis(1_100));
    env.send(&env.path("inside.jsonl"));
    std::thread::sleep(Duration::from_millis(1_100));
    let until = bj_now(0);
    std::thread::sleep(Duration::from_millis(1_100));
    env.send(&env.path("after.jsonl"));

    let p = env.path("practitioners.jsonl").display().to_string();
    let i = env.path("institutions.jsonl").display().to_string();
    let path = |n: &str| env.path(n).display().to_string();
    let topic = env.topic("claims");
    let from_topic = run(&[
        "review",
        "--brokers",
        &env.broker,
        "--claims-topic",
        &topic,
        "--from",
        &from,
        "--until",
        &until,
        "--practitioners",
        &p,
        "--institutions",
        &i,
        "--out",
        &path("topic.jsonl"),
        "--dead-letters",
        &path("topic.dl.jsonl"),
        "--report",
        &path("topic.md"),
    ]);
    assert!(from_topic.status.success(), "{}", text(&from_topic));
    claimgate(&[
        "review",
        "--claims",
        &path("inside.jsonl"),
        "--practitioners",
        &p,
        "--institutions",
        &i,
        "--out",
        &path("file.jsonl"),
        "--dead-letters",
        &path("file.dl.jsonl"),
        "--report",
        &path("file.md"),
        "--quiet",
    ]);
    let (t, f) = (decisions(&env.path("topic.jsonl")), decisions(&env.path("file.jsonl")));
    assert!(t.len() > 2_000, "{} decisions", t.len());
    assert_eq!(t, f, "the same lines give the same decisions from the topic as from the file");
    // The same dead letters, each named by its place on the topic as the stream names it.
    let (td, fd) = (read_jsonl(&env.path("topic.dl.jsonl")), read_jsonl(&env.path("file.dl.jsonl")));
    assert!(!fd.is_empty());
    let raw = |v: &[serde_json::Value]| {
        let mut r: Vec<String> = v.iter().map(|d| format!("{}{}", d["raw"], d["raw_base64"])).collect();
        r.sort();
        r
    };
    assert_eq!(raw(&td), raw(&fd));
    assert!(td.iter().all(|d| d["source"].as_str().unwrap().starts_with(&format!("{topic}/"))), "{td:?}");
    assert_eq!(report_body(&env.path("topic.md")), report_body(&env.path("file.md")));
    let md = std::fs::read_to_string(env.path("topic.md")).unwrap();
    assert!(md.contains(&format!("topic `{topic}`")), "{md}");

    // The review joined no consumer group and committed nothing.
    assert_eq!(util::committed_total(&env.broker, "claimgate-review-reader", &topic), 0);

    // The tables as the status topics hold them: the same verdicts (versions are the topic's own).
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    claimgate(&[
        "review",
        "--brokers",
        &env.broker,
        "--claims-topic",
        &topic,
        "--from",
        &from,
        "--until",
        &until,
        "--tables-from-topics",
        "--topic-practitioners",
        &env.topic("practitioners"),
        "--topic-institutions",
        &env.topic("institutions"),
        "--out",
        &path("held.jsonl"),
        "--quiet",
    ]);
    let verdicts = |p: &Path| {
        let mut v: Vec<String> = read_jsonl(p)
            .iter()
            .map(|d| format!("{}|{}|{}|{}", d["mdtrt_id"], d["feedetl_sn"], d["verdict"], d["reason"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(verdicts(&env.path("held.jsonl")), verdicts(&env.path("file.jsonl")));

    // Retention deleted the lines: a window that reaches before what the topic holds is refused, not
    // silently cut; --allow-partial reviews what is left and says what may be missing.
    util::delete_all_records(&env.broker, &topic);
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "review",
            "--brokers",
            &env.broker,
            "--claims-topic",
            &topic,
            "--from",
            &from,
            "--until",
            &until,
            "--practitioners",
            &p,
            "--report",
            &path("partial.md"),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let refused = Command::new(bin()).args(args(&[])).output().unwrap();
    assert!(!refused.status.success());
    let why = text(&refused);
    assert!(why.contains("retention") && why.contains("--allow-partial"), "{why}");
    let partial = Command::new(bin()).args(args(&["--allow-partial"])).output().unwrap();
    assert!(partial.status.success(), "{}", text(&partial));
    let md = std::fs::read_to_string(env.path("partial.md")).unwrap();
    assert!(md.contains("**Warning:** lines of the window may be missing: partition"), "{md}");
}
