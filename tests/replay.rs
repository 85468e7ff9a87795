//! `claimgate replay` on Apache Kafka (issue 13, item 3): dead letters whose line parses now go back to
//! the claims topic with a replay header, still-malformed ones back to the dead-letter topic with the new
//! reason, the rest counted; a dry run sends nothing; a replay interrupted mid-transaction and run again
//! loses nothing and sends nothing twice; a stream decides what was replayed.

mod util;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use util::{Env, reader_from_beginning};

/// One record as read back: key, value, headers.
struct Read {
    key: Option<String>,
    value: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Every committed record of `topic`, read until nothing more comes for two seconds.
fn read_all(env: &Env, topic: &str) -> Vec<Read> {
    let consumer = reader_from_beginning(&env.broker, &[env.topic(topic)]);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
            last = Instant::now();
        }
    }
    out
}

fn line(sn: usize, institution: &str, time: &str) -> String {
    format!(
        "{{\"feedetl_sn\":\"{sn}\",\"fixmedins_code\":\"{institution}\",\"mdtrt_id\":\"M{sn}\",\"psn_no\":\"P1\",\"med_type\":\"11\",\
         \"fee_ocur_time\":\"{time}\",\"bilg_dr_codg\":\"D110105000123\",\"det_item_fee_sumamt\":\"10.00\"}}"
    )
}

fn dead_letter(error: &str, field: Option<&str>, source: &str, raw: Option<&str>) -> String {
    serde_json::json!({"error": error, "field": field, "source": source, "raw": raw, "raw_base64": null,
                       "received_at": "2026-11-29 10:00:00.000"})
    .to_string()
}

fn replay(env: &Env, extra: &[&str]) -> (bool, String) {
    let out = Command::new(util::bin())
        .args(["replay", "--brokers", &env.broker, "--from", &env.topic("claims.dlq"), "--to", &env.topic("claims")])
        .args(["--where", "fixmedins_code=H11010500001"])
        .args(extra)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The count a replay's report gives for `what`.
fn count(report: &str, what: &str) -> u64 {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(what))
        .and_then(|l| l[l.find(what).unwrap() + what.len()..].split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{what}` in:\n{report}"))
}

#[test]
fn an_interrupted_replay_run_again_sends_every_fixed_line_once() {
    let env = Env::new("replay");
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &env.broker).create().unwrap();
    let dlq = env.topic("claims.dlq");
    let put = |key: Option<&str>, value: Option<&str>, trace: &str| {
        let headers = OwnedHeaders::new().insert(Header { key: "trace-id", value: Some(trace) });
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(&dlq).headers(headers);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(v) = value {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    };
    // 12 lines that parse now (dead-lettered under an older rule), 3 still malformed, 2 with nothing to
    // send, 2 of another institution (not selected), 1 record that is not a dead letter.
    let fixed: Vec<String> = (0..12).map(|i| line(i, "H11010500001", "2026-05-10 09:00:00")).collect();
    for (i, l) in fixed.iter().enumerate() {
        let dl = dead_letter("field `med_type`: unknown code", Some("med_type"), &format!("claims/0@{i}"), Some(l));
        put(Some(&format!("H11010500001|M{i}")), Some(&dl), &format!("t{i}"));
    }
    for i in 20..23 {
        let bad = line(i, "H11010500001", "2026-05-10 9 o'clock");
        let dl = dead_letter("field `fee_ocur_time`: old", Some("fee_ocur_time"), &format!("claims/1@{i}"), Some(&bad));
        put(Some(&format!("H11010500001|M{i}")), Some(&dl), &format!("t{i}"));
    }
    put(None, Some(&dead_letter("empty message (null value)", None, "claims/2@1", None)), "t-null");
    let big = line(30, "H11010500001", "2026-05-10 09:00:00");
    let oversized = dead_letter(
        "message of 70000 bytes exceeds limits.max_message_bytes (65536); raw holds its first 65536 bytes",
        None,
        "claims/2@2",
        Some(&big[..40]),
    );
    put(Some("H11010500001|M30"), Some(&oversized), "t-big");
    for i in 40..42 {
        let l = line(i, "H11010500002", "2026-05-10 09:00:00");
        let dl = dead_letter("field `med_type`: unknown code", Some("med_type"), &format!("claims/3@{i}"), Some(&l));
        put(Some(&format!("H11010500002|M{i}")), Some(&dl), "t-other");
    }
    put(Some("junk"), Some("not a dead letter"), "t-junk");
    producer.flush(Duration::from_secs(30)).unwrap();
    let originals = read_all(&env, "claims.dlq").len();
    assert_eq!(originals, 20);

    // A dry run counts and sends nothing, and moves no position.
    let (ok, report) = replay(&env, &["--dry-run"]);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "would replay"), 12, "{report}");
    assert_eq!(count(&report, "still malformed"), 3, "{report}");
    assert_eq!(count(&report, "not replayable"), 2, "{report}");
    assert_eq!(count(&report, "not selected by --where"), 2, "{report}");
    assert_eq!(count(&report, "not dead letters"), 1, "{report}");
    assert!(read_all(&env, "claims").is_empty());
    assert_eq!(read_all(&env, "claims.dlq").len(), originals);

    // Interrupted: the process aborts after its 8th record, inside the second transaction of 5 dead
    // letters each.
    let (ok, report) = replay(&env, &["--batch", "5", "--crash-after", "8"]);
    assert!(!ok, "the replay was meant to crash:\n{report}");
    let after_crash = read_all(&env, "claims").len();
    assert!(after_crash < 12, "the interrupted replay finished: {after_crash}");
    eprintln!("{after_crash} lines replayed before the interruption");
    // Run again: resumes after the last committed batch.
    let (ok, report) = replay(&env, &["--batch", "5"]);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "replayed") as usize + after_crash, 12, "{report}");

    let claims = read_all(&env, "claims");
    let mut by_line: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in &claims {
        *by_line.entry(r.value.clone()).or_default() += 1;
        let here = &r.headers["claimgate-replay"];
        assert!(here.starts_with(&format!("{dlq}/")), "{here}");
        assert!(r.headers["claimgate-replay-source"].starts_with("claims/0@"));
        assert!(r.headers["trace-id"].starts_with('t'), "the dead letter's headers are kept");
        let sn: String = String::from_utf8_lossy(&r.value).split('"').nth(3).unwrap().to_owned();
        assert_eq!(r.key.as_deref(), Some(format!("H11010500001|M{sn}").as_str()), "the key is kept");
    }
    assert_eq!(claims.len(), 12, "every fixed line once, nothing twice");
    for l in &fixed {
        assert_eq!(by_line.get(l.as_bytes()), Some(&1), "{l}");
    }
    // The still-malformed lines are back in the dead-letter topic once each, with the new reason.
    let dead = read_all(&env, "claims.dlq");
    let again: Vec<&Read> = dead.iter().filter(|r| r.headers.contains_key("claimgate-replay")).collect();
    assert_eq!(again.len(), 3, "{}", again.iter().map(|r| String::from_utf8_lossy(&r.value)).collect::<String>());
    for r in &again {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["field"], "fee_ocur_time");
        assert_ne!(v["error"], "field `fee_ocur_time`: old", "the new reason, not the old one");
        assert!(v["source"].as_str().unwrap().starts_with(&format!("{dlq}/")), "{v}");
        assert!(v["raw"].as_str().unwrap().contains("9 o'clock"));
    }
    assert_eq!(dead.len(), originals + 3);

    // The same replay again: nothing new to send; the still-malformed copies say what parsing says now,
    // so they stay as they are.
    let (ok, report) = replay(&env, &[]);
    assert!(ok, "{report}");
    assert_eq!(count(&report, "replayed"), 0, "{report}");
    assert_eq!(count(&report, "still malformed"), 0, "{report}");
    // (Copies the interrupted run committed were already read, and left, by the run after it.)
    assert!((1..=3).contains(&count(&report, "unchanged")), "{report}");
    assert_eq!(read_all(&env, "claims").len(), 12);
    assert_eq!(read_all(&env, "claims.dlq").len(), originals + 3);

    // A stream decides the replayed lines like any others.
    std::fs::write(
        env.path("p.jsonl"),
        "{\"code\":\"D110105000123\",\"registrations\":[{\"institution\":\"H11010500001\",\"from\":\"2020-01-01\"}],\"periods\":[],\"version\":1}\n",
    )
    .unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    let mut s = env.stream("g", &[]);
    s.wait_ready(Duration::from_secs(90));
    let lines: Vec<Vec<u8>> = fixed.iter().map(|l| l.as_bytes().to_vec()).collect();
    let outputs = env.answered_lines(&lines, Duration::from_secs(120), &|| s.log_text());
    let accepted = outputs.iter().filter(|o| o.topic.ends_with("accepted")).count();
    assert!(accepted >= 12, "{accepted}");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
}
