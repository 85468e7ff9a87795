//! `claimgate stream` against Apache Kafka (started by `scripts/test.sh`): each test creates its own
//! topics and consumer group. Outputs are counted by identity, never by number: at least once allows
//! identical duplicates, and every line must have its decision or dead letter.

mod util;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use util::{Env, Output, by_topic, claimgate, identity, read_jsonl, without_time};

const READY: Duration = Duration::from_secs(90);
const OUTPUTS: Duration = Duration::from_secs(120);

/// Every input line has exactly one output identity; duplicates (allowed by at-least-once) must be
/// byte-identical except `decided_at`. Returns outputs by identity.
fn one_per_line(outputs: &[Output]) -> HashMap<(String, String, String), serde_json::Value> {
    let mut seen: HashMap<(String, String, String), serde_json::Value> = HashMap::new();
    for o in outputs.iter().filter(|o| !o.topic.ends_with("dlq")) {
        let v = without_time(&o.value);
        if let Some(prev) = seen.insert(identity(&o.value), v.clone()) {
            assert_eq!(prev, v, "a duplicate decision differs");
        }
    }
    seen
}

#[test]
fn end_to_end_decisions_match_review() {
    let env = Env::new("e2e");
    env.generate(2_000, 3_000, 11);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    env.send(&env.path("claims.jsonl"));
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(READY);
    let outputs = env.answered(&env.path("claims.jsonl"), OUTPUTS, &|| stream.log_text());
    money_in_metrics_is_the_decisions_money(&stream, &outputs);
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0), "{}", stream.log_text());

    let out = env.path("review.jsonl");
    let dead = env.path("review-dead.jsonl");
    // The review reads what the topics hold: the same records, with the versions the writer gave them.
    let (tp, ti) = env.dump_tables();
    claimgate(&[
        "review",
        "--claims",
        &env.path("claims.jsonl").display().to_string(),
        "--practitioners",
        &tp.display().to_string(),
        "--institutions",
        &ti.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--dead-letters",
        &dead.display().to_string(),
        "--quiet",
    ]);
    let review: HashMap<_, _> = read_jsonl(&out).iter().map(|v| (identity(v), without_time(v))).collect();
    let streamed = one_per_line(&outputs);
    assert_eq!(streamed.len(), review.len());
    for (id, v) in &streamed {
        assert_eq!(Some(v), review.get(id), "stream and review differ for {id:?}");
    }
    // Decisions go to the topic of their verdict, keyed like the input (records.md).
    for o in outputs.iter().filter(|o| !o.topic.ends_with("dlq")) {
        let verdict = o.value["verdict"].as_str().unwrap();
        assert!(o.topic.ends_with(if verdict == "accept" { "accepted" } else { "rejected" }));
        let key = format!("{}|{}", o.value["fixmedins_code"].as_str().unwrap(), o.value["mdtrt_id"].as_str().unwrap());
        assert_eq!(o.key.as_deref(), Some(key.as_bytes()));
    }
    // The same lines are dead letters in both, with the same reasons.
    let reviewed_dead: Vec<(String, String)> =
        read_jsonl(&dead).iter().map(|v| (v["raw"].to_string(), v["error"].to_string())).collect();
    let mut streamed_dead: Vec<(String, String)> = outputs
        .iter()
        .filter(|o| o.topic.ends_with("dlq"))
        .map(|o| (o.value["raw"].to_string(), o.value["error"].to_string()))
        .collect();
    let mut reviewed_dead = reviewed_dead;
    // As sets: at least once may repeat a dead letter, and the day may hold the same bad line twice.
    reviewed_dead.sort();
    reviewed_dead.dedup();
    streamed_dead.sort();
    streamed_dead.dedup();
    assert!(!streamed_dead.is_empty(), "the generated day has malformed lines");
    assert_eq!(streamed_dead, reviewed_dead);
}

/// `/metrics` counts the money of the decisions, exactly in fen, by verdict and reason, by the reason an
/// emergency override passed, and by the warned reason; refund lines apart. Every decision produced is
/// counted once (a duplicate output was decided twice, and counted twice), so the sums over the outputs
/// read back are the counters' values.
fn money_in_metrics_is_the_decisions_money(stream: &util::Stream, outputs: &[Output]) {
    // (metric, labels) → fen
    let mut expected: HashMap<(&str, String), i64> = HashMap::new();
    for o in outputs.iter().filter(|o| !o.topic.ends_with("dlq")) {
        let v = &o.value;
        let amount = util::fen(v["det_item_fee_sumamt"].as_str().expect("an amount"));
        let (charge, refund) = if amount >= 0 { (amount, 0) } else { (0, -amount) };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let mut add = |name: &'static str, refund_name: &'static str, labels: String| {
            *expected.entry((name, labels.clone())).or_default() += charge;
            *expected.entry((refund_name, labels)).or_default() += refund;
        };
        add(
            "claimgate_claims_fen_total",
            "claimgate_claims_refund_fen_total",
            format!(r#"verdict="{}",reason="{}""#, s("verdict"), s("reason")),
        );
        if v["overridden"].is_string() {
            add(
                "claimgate_emergency_overrides_fen_total",
                "claimgate_emergency_overrides_refund_fen_total",
                format!(r#"overridden="{}""#, s("overridden")),
            );
        }
        if v["would_reject"].is_string() {
            add(
                "claimgate_would_reject_fen_total",
                "claimgate_would_reject_refund_fen_total",
                format!(r#"would_reject="{}""#, s("would_reject")),
            );
        }
    }
    let rejected: i64 = expected
        .iter()
        .filter(|((name, labels), _)| {
            *name == "claimgate_claims_fen_total" && labels.starts_with(r#"verdict="reject""#)
        })
        .map(|(_, f)| f)
        .sum();
    assert!(rejected > 0, "the generated day has rejected lines");
    // A batch adds its counts once its lines are queued: its last outputs may be read a moment before.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = stream.scrape();
        let wrong: Vec<String> = expected
            .iter()
            .filter(|((name, labels), fen)| scrape.series(name, labels) != Some(**fen as f64))
            .map(|((name, labels), fen)| {
                format!("{name}{{{labels}}} = {:?}, the outputs say {fen}", scrape.series(name, labels))
            })
            .collect();
        if wrong.is_empty() {
            // Nothing counted that no output shows: the totals agree too.
            for name in ["claimgate_claims_fen_total", "claimgate_claims_refund_fen_total"] {
                let sum: i64 = expected.iter().filter(|((n, _), _)| *n == name).map(|(_, f)| f).sum();
                assert_eq!(scrape.value(name), sum as f64, "{name}");
            }
            return;
        }
        assert!(std::time::Instant::now() < deadline, "/metrics disagrees with the decisions:\n{}", wrong.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn practitioner_line(version: u64, suspended: Option<(&str, &str)>) -> String {
    let periods = match suspended {
        Some((from, until)) => format!(
            r#"[{{"status":"suspended","from":"{from}","until":"{until}","basis":"test","decision_id":"T-1"}}]"#
        ),
        None => "[]".into(),
    };
    format!(
        r#"{{"code":"D110105000123","registrations":[{{"institution":"H11010500001","from":"2020-01-01"}}],"periods":{periods},"version":{version}}}"#
    )
}

fn claim_lines(visit: &str, time: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"feedetl_sn":"{i}","fixmedins_code":"H11010500001","mdtrt_id":"{visit}","psn_no":"P1","med_type":"11","fee_ocur_time":"{time}","bilg_dr_codg":"D110105000123","det_item_fee_sumamt":"10.00"}}"#
            ) + "\n"
        })
        .collect()
}

#[test]
fn a_status_change_mid_stream_applies_by_service_time() {
    let env = Env::new("status");
    std::fs::write(env.path("p1.jsonl"), practitioner_line(1, None) + "\n").unwrap();
    env.publish_tables(&env.path("p1.jsonl"), None);
    std::fs::write(env.path("a.jsonl"), claim_lines("MA", "2026-05-10 09:00:00", 10)).unwrap();
    env.send(&env.path("a.jsonl"));
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(READY);
    let first = env.answered(&env.path("a.jsonl"), OUTPUTS, &|| stream.log_text());
    assert!(first.iter().all(|o| o.value["reason"] == "OK"));

    // A suspension for May is recorded; it applies to lines served in May whenever they arrive.
    std::fs::write(env.path("p2.jsonl"), practitioner_line(2, Some(("2026-05-01", "2026-06-01"))) + "\n").unwrap();
    env.publish_tables(&env.path("p2.jsonl"), None);
    let mut seen = false;
    for _ in 0..100 {
        let body = stream.get("/v1/practitioners/D110105000123?at=2026-05-10").map(|r| r.1).unwrap_or_default();
        if body.contains("\"status\":\"suspended\"") {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "the suspension never reached the table:\n{}", stream.log_text());
    let mut b = claim_lines("MB", "2026-05-20 09:00:00", 10);
    b += &claim_lines("MC", "2026-06-01 00:00:00", 10);
    std::fs::write(env.path("b.jsonl"), b).unwrap();
    env.send(&env.path("b.jsonl"));
    std::fs::write(
        env.path("all.jsonl"),
        claim_lines("MA", "2026-05-10 09:00:00", 10) + &std::fs::read_to_string(env.path("b.jsonl")).unwrap(),
    )
    .unwrap();
    let all = env.answered(&env.path("all.jsonl"), OUTPUTS, &|| stream.log_text());
    for o in &all {
        let v = &o.value;
        match v["mdtrt_id"].as_str().unwrap() {
            "MA" => assert_eq!((v["reason"].as_str(), v["practitioner_version"].as_u64()), (Some("OK"), Some(1))),
            "MB" => {
                assert_eq!(v["reason"], "PRACTITIONER_SUSPENDED");
                assert_eq!(v["practitioner_version"], 2);
                assert!(o.topic.ends_with("rejected"));
            }
            // Half-open: the first instant after the period is normal again.
            "MC" => assert_eq!((v["reason"].as_str(), v["practitioner_version"].as_u64()), (Some("OK"), Some(2))),
            other => panic!("unexpected visit {other}"),
        }
    }
    let epochs: HashSet<u64> = all.iter().map(|o| o.value["table_epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs.len(), 2, "decisions name the table that made them");
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0));
}

/// A line sent once the status query shows a change is decided on the table with the change, every
/// time: the batch takes its view once its first line is in hand (it took it before waiting up to
/// 100 ms for lines, and a line sent meanwhile was decided on the table before the change: 2 runs in
/// about 15 of the test above failed that way).
#[test]
fn a_line_sent_after_a_status_change_is_visible_is_decided_with_it() {
    line_after_a_status_change(&[]);
}

/// The same with `--exactly-once`: a transaction takes its view with its first line.
#[test]
fn a_line_sent_after_a_status_change_is_visible_is_decided_with_it_exactly_once() {
    line_after_a_status_change(&["--exactly-once"]);
}

fn line_after_a_status_change(mode: &[&str]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let env = Env::new(if mode.is_empty() { "status-race" } else { "status-race-eos" });
    std::fs::write(env.path("p1.jsonl"), practitioner_line(1, None) + "\n").unwrap();
    env.publish_tables(&env.path("p1.jsonl"), None);
    let mut stream = env.stream("g", mode);
    stream.wait_ready(READY);
    let p: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &env.broker)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let claims = env.topic("claims");
    let mut sent = String::new();
    for version in 2..=9u64 {
        let suspended = version % 2 == 0;
        let file = env.path(&format!("p{version}.jsonl"));
        std::fs::write(&file, practitioner_line(version, suspended.then_some(("2026-05-01", "2026-06-01"))) + "\n")
            .unwrap();
        env.publish_tables(&file, None);
        let want = if suspended { "\"status\":\"suspended\"" } else { "\"status\":\"normal\"" };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !stream.get("/v1/practitioners/D110105000123?at=2026-05-10").is_some_and(|r| r.1.contains(want)) {
            assert!(std::time::Instant::now() < deadline, "version {version} never reached the table");
            std::thread::sleep(Duration::from_millis(1));
        }
        let line = claim_lines(&format!("R{version}"), "2026-05-10 09:00:00", 1);
        p.send(BaseRecord::to(&claims).key(&format!("H11010500001|R{version}")).payload(line.trim_end()))
            .map_err(|(e, _)| e)
            .unwrap();
        p.flush(Duration::from_secs(10)).unwrap();
        sent += &line;
    }
    std::fs::write(env.path("sent.jsonl"), &sent).unwrap();
    let out = env.answered(&env.path("sent.jsonl"), OUTPUTS, &|| stream.log_text());
    let mut wrong = Vec::new();
    for o in &out {
        let visit = o.value["mdtrt_id"].as_str().unwrap();
        let version: u64 = visit[1..].parse().unwrap();
        if o.value["practitioner_version"].as_u64() != Some(version) {
            wrong.push(format!("{visit}: decided on version {}", o.value["practitioner_version"]));
        }
    }
    assert!(wrong.is_empty(), "lines decided on a table older than the one the query showed: {wrong:?}");
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn malformed_lines_land_in_the_dead_letter_topic() {
    let env = Env::new("dlq");
    std::fs::write(env.path("p.jsonl"), practitioner_line(1, None) + "\n").unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    let good = claim_lines("M1", "2026-05-10 09:00:00", 1);
    let mut lines: Vec<Vec<u8>> = vec![
        b"this is not json".to_vec(),
        good.replace("\"bilg_dr_codg\":\"D110105000123\",", "").trim().as_bytes().to_vec(),
        good.replace("2026-05-10 09:00:00", "2026-02-30 09:00:00").trim().as_bytes().to_vec(),
        good.replace("\"10.00\"", "\"10.005\"").trim().as_bytes().to_vec(),
        good.replace("\"P1\"", "\"P\u{00e9}\"").replace("\"M1\"", "\"M\\u0000\"").trim().as_bytes().to_vec(),
        good.replace("H11010500001", "X1").trim().as_bytes().to_vec(),
        format!("{{\"pad\":\"{}\",{}", "x".repeat(3000), &good.trim()[1..]).into_bytes(),
    ];
    let mut bad_utf8 = good.trim().as_bytes().to_vec();
    bad_utf8.insert(20, 0xff);
    lines.push(bad_utf8);
    lines.push(good.trim().as_bytes().to_vec());
    let mut file = std::fs::File::create(env.path("c.jsonl")).unwrap();
    for l in &lines {
        file.write_all(l).unwrap();
        file.write_all(b"\n").unwrap();
    }
    drop(file);
    std::fs::write(env.path("limits.toml"), "[limits]\nmax_message_bytes = 2048\n").unwrap();
    env.send(&env.path("c.jsonl"));
    let mut stream = env.stream("g", &["--config", &env.path("limits.toml").display().to_string()]);
    stream.wait_ready(READY);
    let outputs = env.answered_lines(&lines, OUTPUTS, &|| stream.log_text());
    assert_eq!(outputs.len(), lines.len(), "a duplicate, with no fault to cause it: {outputs:#?}");
    let counts = by_topic(&outputs);
    assert_eq!(counts.get("dlq"), Some(&(lines.len() - 1)), "{outputs:#?}");
    assert_eq!(counts.get("accepted"), Some(&1));
    let mut fields = Vec::new();
    for o in outputs.iter().filter(|o| o.topic.ends_with("dlq")) {
        let v = &o.value;
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(v["source"].as_str().unwrap().starts_with(&env.topic("claims/")));
        assert!(v["received_at"].as_str().is_some());
        // The original bytes are kept: as text, or base64 when they are not UTF-8.
        let raw: Vec<u8> = match (&v["raw"], &v["raw_base64"]) {
            (serde_json::Value::String(s), _) => s.as_bytes().to_vec(),
            (_, serde_json::Value::String(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).unwrap()
            }
            _ => panic!("no raw bytes in {v}"),
        };
        let whole = lines.contains(&raw);
        let truncated = v["error"].as_str().unwrap().contains("max_message_bytes") && raw.len() == 2048;
        assert!(whole || truncated, "raw bytes not kept: {v}");
        fields.push(v["field"].as_str().unwrap_or("-").to_owned());
    }
    fields.sort();
    assert_eq!(
        fields,
        ["-", "-", "-", "bilg_dr_codg", "det_item_fee_sumamt", "fee_ocur_time", "fixmedins_code", "mdtrt_id"],
        "{outputs:#?}"
    );
    assert!(stream.metric("claimgate_dead_letters_total") >= 8.0);
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn a_restarted_processor_resumes_with_no_line_lost() {
    let env = Env::new("restart");
    env.generate(1_000, 20_000, 21);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    env.send(&env.path("claims.jsonl"));
    // A small in-flight bound (each batch waits for the broker's acknowledgements), so that the first
    // run is stopped part-way.
    std::fs::write(env.path("slow.toml"), "[limits]\nbatch_size = 10\nmax_in_flight = 20\n").unwrap();
    let slow = env.path("slow.toml").display().to_string();
    let mut first = env.stream("g", &["--config", &slow]);
    first.wait_ready(READY);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline && first.metric("claimgate_claims_total") < 100.0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(first.terminate(Duration::from_secs(40)), Some(0), "{}", first.log_text());
    // What the first run finished, as the group's committed offsets say (not as a reader happened to
    // see in a few seconds).
    let group = format!("{}g", env.prefix);
    let committed = util::committed_total(&env.broker, &group, &env.topic("claims"));
    assert!(committed > 0 && committed < 20_000, "the restart was not tested: {committed} committed before it");

    let mut second = env.stream("g", &[]);
    second.wait_ready(READY);
    let outputs = env.answered(&env.path("claims.jsonl"), OUTPUTS, &|| second.log_text());
    one_per_line(&outputs);
    assert_eq!(second.terminate(Duration::from_secs(40)), Some(0));
    assert_eq!(util::committed_total(&env.broker, &group, &env.topic("claims")), 20_000);
}

/// The partitions the instance holds after its last rebalance, as its log says (`assignment`: the whole
/// of it; with cooperative rebalancing an event's `partitions` are only those that moved).
fn assigned(log: &str) -> Option<Vec<i64>> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| {
            ["partitions_assigned", "partitions_revoked", "partitions_lost"]
                .contains(&v["event"].as_str().unwrap_or(""))
        })
        .and_then(|v| {
            let text = v["assignment"].as_str()?.trim_matches(['[', ']']).to_owned();
            Some(text.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        })
}

#[test]
fn two_instances_in_one_group_split_the_partitions_and_decide_every_line_once() {
    let env = Env::new("group");
    env.generate(1_000, 4_000, 31);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    let mut a = env.stream("g", &[]);
    let mut b = env.stream("g", &[]);
    a.wait_ready(READY);
    b.wait_ready(READY);
    // Wait for a settled assignment that covers the four partitions between the two.
    let mut split = false;
    for _ in 0..600 {
        if let (Some(pa), Some(pb)) = (assigned(&a.log_text()), assigned(&b.log_text())) {
            let all: HashSet<i64> = pa.iter().chain(&pb).copied().collect();
            if !pa.is_empty() && !pb.is_empty() && all.len() == 4 && pa.len() + pb.len() == 4 {
                split = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(split, "the group never split the partitions:\nA:\n{}\nB:\n{}", a.log_text(), b.log_text());
    env.send(&env.path("claims.jsonl"));
    let outputs =
        env.answered(&env.path("claims.jsonl"), OUTPUTS, &|| format!("A:\n{}\nB:\n{}", a.log_text(), b.log_text()));
    one_per_line(&outputs);
    let by_a = a.metric("claimgate_claims_total") + a.metric("claimgate_dead_letters_total");
    let by_b = b.metric("claimgate_claims_total") + b.metric("claimgate_dead_letters_total");
    assert!(by_a > 0.0 && by_b > 0.0, "one instance did all the work: A {by_a}, B {by_b}");
    // At least once: a rebalance may have both decide a few lines; every line was decided.
    assert!(by_a + by_b >= 4_000.0, "A {by_a} + B {by_b}");
    assert_eq!(a.terminate(Duration::from_secs(40)), Some(0));
    assert_eq!(b.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn scored_records_published_to_the_topic_change_stream_decisions_like_review() {
    let env = Env::new("score");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    let held = root.join("practitioners.jsonl");
    env.publish_tables(&held, None);
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(READY);
    let scored = env.path("scored.jsonl");
    claimgate(&[
        "score",
        "--profile",
        "national-2024",
        "--ledger",
        &root.join("national-2024.jsonl").display().to_string(),
        "--practitioners",
        &held.display().to_string(),
        "--out-all",
        &scored.display().to_string(),
        "--publish",
        "--brokers",
        &util::broker(),
        "--topic-practitioners",
        &env.topic("practitioners"),
        "--quiet",
    ]);
    let mut suspended = false;
    for _ in 0..100 {
        let body = stream.get("/v1/practitioners/D110105000001?at=2026-03-20").map(|r| r.1).unwrap_or_default();
        if body.contains("\"status\":\"suspended\"") {
            suspended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(suspended, "the scored suspension never reached the stream:\n{}", stream.log_text());
    let claims = root.join("national-2024.claims.jsonl");
    env.send(&claims);
    let outputs = env.answered(&claims, OUTPUTS, &|| stream.log_text());
    let out = env.path("review.jsonl");
    // What `score --publish` wrote is on the topic: review reads the topic's records.
    let (tp, _) = env.dump_tables();
    claimgate(&[
        "review",
        "--claims",
        &claims.display().to_string(),
        "--practitioners",
        &tp.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--quiet",
    ]);
    let review: HashMap<_, _> = read_jsonl(&out).iter().map(|v| (identity(v), without_time(v))).collect();
    let streamed = one_per_line(&outputs);
    assert!(streamed.values().any(|v| v["reason"] == "PRACTITIONER_SUSPENDED"));
    // Same records on both sides, so even the epochs agree.
    for (id, v) in &streamed {
        assert_eq!(Some(v), review.get(id), "stream and review differ for {id:?}");
    }
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0));
}

/// Also issue 14: with `limits.batch_size` unset, a transaction is bounded by time
/// (`limits.transaction_ms`), not by 1 000 claims — a commit per 1 000 claims capped an instance near
/// 9 500 claims/s. The claims wait on the topic before the stream starts, and the time bound is raised
/// to 5 s here, so that the count is the only bound a debug build on a slow machine could meet.
#[test]
fn exactly_once_decides_every_line_once_in_transactions() {
    const LINES: u64 = 5_000;
    let env = Env::new("eos");
    env.generate(1_000, LINES, 41);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    env.send(&env.path("claims.jsonl"));
    let mut stream = env.stream_env("g", &["--exactly-once"], &[("CLAIMGATE_LIMITS__TRANSACTION_MS", "5000")]);
    stream.wait_ready(READY);
    let outputs = env.answered(&env.path("claims.jsonl"), OUTPUTS, &|| stream.log_text());
    // Read committed: no duplicate, not even an identical one.
    assert_eq!(outputs.len() as u64, LINES, "duplicates under exactly once");
    let scrape = stream.scrape();
    assert!(scrape.value("claimgate_transactions_total") >= 1.0, "{}", stream.log_text());
    let committed = scrape.value("claimgate_transaction_claims_count");
    let small = scrape.series("claimgate_transaction_claims_bucket", "le=\"1000\"").expect("the bucket le=1000");
    assert_eq!(scrape.value("claimgate_transaction_claims_sum"), LINES as f64);
    assert!(small < committed, "every one of {committed} transactions held at most 1 000 claims:\n{}", scrape.0);
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0), "{}", stream.log_text());
}

/// Issue 12, "Done means": under a routing table with three regions and a rule change in the middle of
/// the day, `stream` and `review` give identical decisions for the same lines — with the persons,
/// local ids and warn-only reasons of the profile that takes over at noon.
#[test]
fn routed_decisions_match_review_across_three_regions_and_a_midday_rule_change() {
    let env = Env::new("routing");
    env.generate(2_000, 3_000, 51);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/routing/qinghai-2026.example.toml");
    // Huai'an (3208) on its own rules until noon, then the default; Lanzhou (6201) on its own; Qinghai
    // (63) on the national rules until noon, then on qinghai-2026 (rescue, every person, local ids,
    // warn-first).
    let routing = env.path("routing.toml");
    std::fs::write(
        &routing,
        format!(
            r#"default = "national-2024"
[profiles]
"qinghai-2026" = "{}"
[[route]]
area = "3208"
profile = "huaian-2020"
until = "2026-04-02 12:00:00"
[[route]]
area = "6201"
profile = "lanzhou-2014"
[[route]]
area = "63"
profile = "qinghai-2026"
from = "2026-04-02 12:00:00"
"#,
            example.display()
        ),
    )
    .unwrap();

    // A practitioner registered at an institution in Qinghai with no status history, from the generated
    // tables.
    let with_history: HashSet<String> = read_jsonl(&env.path("institutions.jsonl"))
        .iter()
        .map(|i| i["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (code, inst) = read_jsonl(&env.path("practitioners.jsonl"))
        .iter()
        .find_map(|p| {
            let reg = p["registrations"].as_array()?.iter().find(|r| {
                r["institution"].as_str().is_some_and(|i| i.starts_with("H63") && !with_history.contains(i))
                    && r["until"].is_null()
            })?;
            let normal = p["periods"].as_array().is_none_or(|a| a.is_empty());
            normal.then(|| (p["code"].as_str().unwrap().to_owned(), reg["institution"].as_str().unwrap().to_owned()))
        })
        .expect("a practitioner registered in Qinghai");
    let mappings = env.path("mappings.jsonl");
    std::fs::write(
        &mappings,
        format!(
            r#"{{"institution":"{inst}","local_id":"L-2","periods":[{{"code":"{code}","from":"2020-01-01"}}],"version":1}}"#
        ) + "\n",
    )
    .unwrap();
    // Hand-written lines that exercise the noon change (R1-R7), appended to the generated day.
    let line = |sn: &str, time: &str, extra: &str, dr: &str| {
        format!(
            r#"{{"feedetl_sn":"{sn}","fixmedins_code":"{inst}","mdtrt_id":"ROUTE","psn_no":"P1","med_type":"11","fee_ocur_time":"2026-04-02 {time}","bilg_dr_codg":"{dr}","det_item_fee_sumamt":"10.00"{extra}}}"#
        ) + "\n"
    };
    let hand = [
        line("R1", "13:00:00", "", "L-2"), // a mapped local id
        line("R2", "13:00:00", "", "L-9"), // unmapped: warned
        line("R3", "13:00:00", r#","orders_dr_code":"D630102999999""#, &code), // the order's person unknown
        line("R4", "11:00:00", r#","orders_dr_code":"D630102999999""#, &code), // before noon: not checked
        line("R5", "13:00:00", r#","orders_dr_code":"张三""#, &code), // malformed once checked
        line("R6", "11:00:00", r#","orders_dr_code":"张三""#, &code), // before noon: not read
        line("R7", "11:00:00", "", "L-9"), // before noon: looked up
    ];
    let mut all = std::fs::read(env.path("claims.jsonl")).unwrap();
    for h in &hand {
        all.extend_from_slice(h.as_bytes());
    }
    std::fs::write(env.path("claims.jsonl"), &all).unwrap();
    let total = all.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();

    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    claimgate(&[
        "tables",
        "publish",
        "--brokers",
        &env.broker,
        "--mappings",
        &mappings.display().to_string(),
        "--topic-mappings",
        &env.topic("practitioner-mappings"),
    ]);
    env.send(&env.path("claims.jsonl"));
    let mut stream = env.stream(
        "g",
        &["--routing", &routing.display().to_string(), "--topic-mappings", &env.topic("practitioner-mappings")],
    );
    stream.wait_ready(READY);
    // Counted, not read by identity: which person fields a line must carry well formed depends on the
    // profile its area routes to, which the tests' claim-line oracle does not know; the comparison with
    // `review` below checks every line.
    let outputs = env.outputs(total, OUTPUTS);
    assert_eq!(outputs.len(), total, "not every line was answered:\n{}", stream.log_text());

    let out = env.path("review.jsonl");
    let dead = env.path("review-dead.jsonl");
    let (tp, ti) = env.dump_tables();
    claimgate(&[
        "review",
        "--claims",
        &env.path("claims.jsonl").display().to_string(),
        "--practitioners",
        &tp.display().to_string(),
        "--institutions",
        &ti.display().to_string(),
        "--mappings",
        &mappings.display().to_string(),
        "--routing",
        &routing.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--dead-letters",
        &dead.display().to_string(),
        "--quiet",
    ]);
    let review: HashMap<_, _> = read_jsonl(&out).iter().map(|v| (identity(v), without_time(v))).collect();
    let streamed = one_per_line(&outputs);
    assert_eq!(streamed.len(), review.len());
    for (id, v) in &streamed {
        assert_eq!(Some(v), review.get(id), "stream and review differ for {id:?}");
    }
    let mut reviewed_dead: Vec<String> = read_jsonl(&dead).iter().map(|v| v["raw"].to_string()).collect();
    let mut streamed_dead: Vec<String> =
        outputs.iter().filter(|o| o.topic.ends_with("dlq")).map(|o| o.value["raw"].to_string()).collect();
    reviewed_dead.sort();
    streamed_dead.sort();
    assert_eq!(streamed_dead, reviewed_dead);

    // The routing did what the table says: each region's profile, and the change at noon.
    let by_area_and_half = |area: &str, afternoon: bool| -> HashSet<String> {
        streamed
            .values()
            .filter(|v| v["fixmedins_code"].as_str().is_some_and(|c| c[1..].starts_with(area)))
            .filter(|v| (v["fee_ocur_time"].as_str().unwrap_or_default()[11..] >= *"12:00:00") == afternoon)
            .map(|v| v["profile"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(by_area_and_half("3208", false), HashSet::from(["huaian-2020".to_owned()]));
    assert_eq!(by_area_and_half("3208", true), HashSet::from(["national-2024".to_owned()]));
    assert_eq!(by_area_and_half("6201", true), HashSet::from(["lanzhou-2014".to_owned()]));
    assert_eq!(by_area_and_half("63", false), HashSet::from(["national-2024".to_owned()]));
    assert_eq!(by_area_and_half("63", true), HashSet::from(["qinghai-2026".to_owned()]));
    assert_eq!(by_area_and_half("11", true), HashSet::from(["national-2024".to_owned()]));

    let hand_decision = |sn: &str| streamed.get(&(inst.clone(), "ROUTE".to_owned(), sn.to_owned()));
    let r1 = hand_decision("R1").expect("R1");
    assert_eq!((r1["reason"].as_str(), r1["profile"].as_str()), (Some("OK"), Some("qinghai-2026")), "{r1}");
    let r2 = hand_decision("R2").expect("R2");
    assert_eq!(
        (r2["verdict"].as_str(), r2["would_reject"].as_str(), r2["role"].as_str()),
        (Some("accept"), Some("PRACTITIONER_CODE_UNMAPPED"), Some("bilg_dr_codg")),
        "{r2}"
    );
    let r3 = hand_decision("R3").expect("R3");
    assert_eq!(
        (r3["reason"].as_str(), r3["role"].as_str()),
        (Some("PRACTITIONER_UNREGISTERED"), Some("orders_dr_code"))
    );
    assert!(r3["would_reject"].is_null() && r3["verdict"] == "reject");
    assert_eq!(hand_decision("R4").expect("R4")["reason"], "OK");
    assert!(hand_decision("R5").is_none(), "a malformed person field the profile checks is a dead letter");
    assert!(streamed_dead.iter().any(|raw| raw.contains("R5")));
    assert_eq!(hand_decision("R6").expect("R6")["role"], serde_json::Value::Null);
    assert_eq!(hand_decision("R7").expect("R7")["reason"], "PRACTITIONER_UNREGISTERED");
    // Warned lines are counted in /metrics.
    assert!(stream.metric("claimgate_would_reject_total") >= 1.0, "{}", stream.log_text());
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0), "{}", stream.log_text());
}
