//! The Kafka edge on Apache Kafka (issue 9): each test shows a behaviour that the memory-only test broker
//! could not, and each failed before the fix it names.
//!
//! - readiness is exact: a status topic written in transactions (commit and abort markers take offsets
//!   no record is delivered for), and steady status traffic (no quiet moment ever comes);
//! - topics that do not exist yet: not ready while they are missing, deciding within seconds once they
//!   appear, or created when configured to;
//! - errors retrying cannot fix: an output the broker refuses as too large is replaced by a dead letter
//!   (the partition goes on, headers kept); a deleted output topic stops the stream with the cause;
//! - exactly once across a crash: the restarted instance fences its predecessor at once;
//! - offsets: resets are logged and counted;
//! - an output that waits past `limits.max_unacked_age_s` fails `/healthz`;
//! - a claims partition held with nothing taken from it past `limits.max_stalled_s` fails `/healthz`
//!   (issue 11: seen on the cluster after a healed cut of the group's coordinator).

mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use claimgate::synth::Line;
use util::broker::{OwnBroker, Proxy};
use util::load::{Load, Reader, expected_keys, tally};
use util::{Env, broker, claimgate, free_port};

const READY: Duration = Duration::from_secs(90);

fn practitioner(code: &str, version: u64) -> String {
    format!(
        r#"{{"code":"{code}","kind":"doctor","registrations":[{{"institution":"H11010500001","from":"2020-01-01","until":null}}],"periods":[],"version":{version}}}"#
    )
}

fn claim(sn: usize, code: &str) -> String {
    format!(
        r#"{{"feedetl_sn":"F{sn}","fixmedins_code":"H11010500001","mdtrt_id":"M{sn}","psn_no":"P1","med_type":"11","fee_ocur_time":"2026-05-10 09:00:00","bilg_dr_codg":"{code}","det_item_fee_sumamt":"10.00"}}"#
    )
}

fn producer(broker: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker).set("enable.idempotence", "true").set("linger.ms", "1");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn send(p: &BaseProducer, topic: &str, key: &str, value: &[u8], headers: Option<OwnedHeaders>) {
    let mut r = BaseRecord::to(topic).key(key).payload(value);
    if let Some(h) = headers {
        r = r.headers(h);
    }
    p.send(r).map_err(|(e, _)| e).expect("queue a record");
}

/// `/v1/practitioners/{code}`'s `status` field.
fn status_of(s: &util::Stream, code: &str) -> String {
    let (code_http, body) = s.get(&format!("/v1/practitioners/{code}?at=2026-05-10%2009:00:00")).expect("status query");
    // 404 with a body that says `unregistered` for a code the table does not hold.
    assert!(matches!(code_http, 200 | 404), "{code_http}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["status"].as_str().unwrap_or_default().to_owned()
}

/// `/healthz`'s body once it answers 503, within `wait`.
fn wait_unhealthy(s: &util::Stream, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some((503, body)) = s.get("/healthz") {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Waits (up to `wait`) until `/healthz` answers 200.
fn wait_healthz_ok(s: &util::Stream, wait: Duration) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && s.get("/healthz").map(|r| r.0) != Some(200) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_status_topic_written_in_transactions_is_read_to_its_end_and_ready() {
    let env = Env::new("txn-status");
    let p = producer(&env.broker, &[("transactional.id", &format!("{}writer", env.prefix))]);
    p.init_transactions(Duration::from_secs(30)).expect("init transactions");
    let topic = env.topic("practitioners");
    p.begin_transaction().unwrap();
    for code in ["D110105000001", "D110105000002", "D110105000003"] {
        send(&p, &topic, code, practitioner(code, 1).as_bytes(), None);
    }
    p.commit_transaction(Duration::from_secs(30)).expect("commit");
    // The last offsets of the partition: an aborted record and the abort marker. No record is ever
    // delivered for them to a read-committed reader.
    p.begin_transaction().unwrap();
    send(&p, &topic, "D110105000004", practitioner("D110105000004", 1).as_bytes(), None);
    p.flush(Duration::from_secs(30)).unwrap();
    p.abort_transaction(Duration::from_secs(30)).expect("abort");

    // The institutions topic stays empty: an empty partition is read too.
    let mut s = env.stream("g", &[]);
    s.wait_ready(Duration::from_secs(30));
    assert_eq!(status_of(&s, "D110105000002"), "normal");
    assert_eq!(status_of(&s, "D110105000004"), "unregistered", "an aborted record reached the table");
    let loaded = util::events(&s.log_text(), "status_loaded");
    assert_eq!(loaded.len(), 1, "{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn readiness_arrives_while_status_records_keep_coming() {
    let env = Env::new("steady-status");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    // 50 status records a second, for as long as the test runs: a nightly publish in progress.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, broker, topic) = (Arc::clone(&stop), env.broker.clone(), env.topic("practitioners"));
        std::thread::spawn(move || {
            let p = producer(&broker, &[]);
            let mut version = 1;
            while !stop.load(Ordering::Relaxed) {
                send(&p, &topic, "D110105000099", practitioner("D110105000099", version).as_bytes(), None);
                p.poll(Duration::ZERO);
                version += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            p.flush(Duration::from_secs(30)).unwrap();
            version
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let mut s = env.stream("g", &[]);
    s.wait_ready(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 50, "the status traffic was not steady ({written} records)");
    assert_eq!(status_of(&s, "D110105000099"), "normal");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn started_before_its_topics_exist_it_is_not_ready_and_decides_within_seconds_once_they_do() {
    let env = Env::without_topics(&broker(), "late-topics");
    env.generate(500, 300, 5);
    // A table is there (the status topics exist); the claims and output topics do not.
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    let s = env.stream("g", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bodies = Vec::new();
    while Instant::now() < deadline {
        if let Some((code, body)) = s.get("/readyz") {
            assert_eq!(code, 503, "ready while its input topic does not exist: {body}\n{}", s.log_text());
            bodies.push(body);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let last = bodies.last().expect("the operations port answered");
    assert!(last.contains("waiting for topics to exist") && last.contains(&env.topic("claims")), "{last}");
    let log = s.log_text();
    assert_eq!(util::events(&log, "status_loaded").len(), 1, "the table loaded; only the topics are missing:\n{log}");
    assert!(!util::events(&log, "topic_missing").is_empty(), "{log}");

    // The operator creates them (the status topics exist already and are left alone).
    claimgate(&["topics", "create", "--brokers", &env.broker, "--prefix", &env.prefix, "--partitions", "4"]);
    let created = Instant::now();
    env.send(&env.path("claims.jsonl"));
    let lines: Vec<Vec<u8>> = std::fs::read(env.path("claims.jsonl"))
        .unwrap()
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let expected: HashSet<_> = lines.iter().map(|l| util::load::expected_key(l)).collect();
    let mut reader = Reader::new(&env.broker, &output_topics(&env));
    assert!(reader.until_answered(&expected, Duration::from_secs(30)), "{}", s.log_text());
    let took = created.elapsed();
    assert!(took < Duration::from_secs(20), "decided {took:?} after the topics appeared");
    assert_eq!(s.get("/readyz").map(|r| r.0), Some(200));
}

#[test]
fn with_create_missing_it_creates_its_topics_and_decides() {
    let env = Env::without_topics(&broker(), "create-missing");
    env.generate(500, 100, 6);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    let mut s = env.stream_env("g", &[], &[("CLAIMGATE_TOPICS__CREATE_MISSING", "true")]);
    s.wait_ready(READY);
    assert_eq!(util::events(&s.log_text(), "topics_created").len(), 1, "{}", s.log_text());
    env.send(&env.path("claims.jsonl"));
    let outputs = env.outputs(100, Duration::from_secs(60));
    assert_eq!(outputs.len(), 100, "{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

fn output_topics(env: &Env) -> Vec<String> {
    vec![env.topic("claims.accepted"), env.topic("claims.rejected"), env.topic("claims.dlq")]
}

#[test]
fn an_output_the_broker_refuses_as_too_large_is_replaced_by_a_dead_letter_and_the_partition_goes_on() {
    let env = Env::new("too-large");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    // The dead-letter topic takes records up to 3000 bytes; a 2500-byte line that is not UTF-8 becomes a
    // dead letter of about 3400 bytes (base64) that the broker refuses.
    util::alter_topic_config(&env.broker, &env.topic("claims.dlq"), &[("max.message.bytes", "3000")]);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let p = producer(&env.broker, &[]);
    // One key: every line on one partition, so a stalled partition would hold them all.
    let key = "H11010500001|M1";
    let topic = env.topic("claims");
    for i in 0..50 {
        send(&p, &topic, key, claim(i, "D110105000001").as_bytes(), None);
    }
    // Bytes that do not compress (the producer compresses batches, and the broker checks the compressed
    // size), and are not UTF-8.
    let mut x = 0x2545F4914F6CDD1Du64;
    let mut big: Vec<u8> = (0..2500)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    big[0] = b'{';
    big[1] = 0xFF;
    let headers = OwnedHeaders::new().insert(Header { key: "trace-id", value: Some("T-too-large") });
    send(&p, &topic, key, &big, Some(headers));
    for i in 50..100 {
        send(&p, &topic, key, claim(i, "D110105000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();

    let outputs = env.outputs(101, Duration::from_secs(60));
    assert_eq!(outputs.len(), 101, "{}", s.log_text());
    let dead: Vec<_> = outputs.iter().filter(|o| o.topic.ends_with("dlq")).collect();
    assert_eq!(dead.len(), 1);
    let error = dead[0].value["error"].as_str().unwrap_or_default();
    assert!(error.contains("the broker refused the output") && error.contains("too large"), "{error}");
    assert!(dead[0].value["source"].as_str().is_some_and(|x| x.ends_with("@50")), "{:?}", dead[0].value);
    assert!(dead[0].value["raw"].is_null() && dead[0].value["raw_base64"].is_null());
    // Its headers: the input's, and the mark.
    let reader = util::reader_from_beginning(&env.broker, &[env.topic("claims.dlq")]);
    let m = loop {
        if let Some(Ok(m)) = reader.poll(Duration::from_secs(5)) {
            break m;
        }
    };
    let h = m.headers().expect("headers");
    let names: Vec<&str> = h.iter().map(|x| x.key).collect();
    assert!(names.contains(&"trace-id") && names.contains(&"claimgate-refused-output"), "{names:?}");
    assert_eq!(s.metric("claimgate_refused_outputs_total"), 1.0);
    // Nothing is left in flight: a clean shutdown, every offset committed.
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
    assert_eq!(util::committed_total(&env.broker, &format!("{}g", env.prefix), &topic), 101);
}

#[test]
fn a_deleted_output_topic_stops_the_stream_with_the_cause() {
    let env = Env::new("deleted-output");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let p = producer(&env.broker, &[]);
    let topic = env.topic("claims");
    // An unregistered code: every decision goes to the rejected topic.
    for i in 0..20 {
        send(&p, &topic, &format!("k{i}"), claim(i, "D999999000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(env.outputs(20, Duration::from_secs(60)).len(), 20, "{}", s.log_text());
    util::delete_topics(&env.broker, &[env.topic("claims.rejected")]);
    for i in 20..40 {
        send(&p, &topic, &format!("k{i}"), claim(i, "D999999000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            break Some(st);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = s.log_text();
    let status = status.unwrap_or_else(|| panic!("the stream went on without its output topic:\n{log}"));
    assert_eq!(status.code(), Some(1), "{log}");
    let stopped = util::events(&log, "stopped");
    let why = stopped.last().map(|v| v["error"].to_string()).unwrap_or_default();
    assert!(why.contains(&env.topic("claims.rejected")) && why.contains("does not exist"), "{why}\n{log}");
    // Nothing after the last commit was lost: the claims wait at their offsets.
    assert!(util::committed_total(&env.broker, &format!("{}g", env.prefix), &topic) < 40);
}

#[test]
fn exactly_once_a_restarted_instance_fences_its_crashed_predecessor_at_once() {
    let env = Env::new("eos-fence");
    env.generate(1_000, 10, 9);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    let world = claimgate::synth::World::new(claimgate::synth::GenConfig {
        seed: 99,
        practitioners: 1_000,
        claims: u64::MAX / 2,
        malformed_rate: 0.0,
        ..claimgate::synth::GenConfig::default()
    });
    let port = free_port();
    let mut first = env.stream_on("g", port, &["--exactly-once"], &[]);
    first.wait_ready(READY);
    let mut lines = world.claims();
    // Steady input, so that a transaction is open when the instance dies.
    let load = Load::start(
        &env.broker,
        &env.topic("claims"),
        lines.by_ref().take(3_000).collect::<Vec<_>>().into_iter(),
        1_000,
    );
    std::thread::sleep(Duration::from_secs(2));
    first.kill();
    let before: Vec<Line> = load.finish();
    // The same slot (same host, same operations port): the same transactional id.
    let mut second = env.stream_on("g", port, &["--exactly-once"], &[]);
    second.wait_ready(READY);
    let restarted = Instant::now();
    let after: Vec<Line> = lines.take(200).collect();
    let mut f = std::fs::File::create(env.path("after.jsonl")).unwrap();
    for l in &after {
        use std::io::Write;
        f.write_all(&l.bytes).unwrap();
        f.write_all(b"\n").unwrap();
    }
    drop(f);
    env.send(&env.path("after.jsonl"));
    let mut reader = Reader::new(&env.broker, &output_topics(&env));
    let all: Vec<Line> = before.iter().chain(&after).cloned().collect();
    let answered = reader.until_answered(&expected_keys(&all), Duration::from_secs(120));
    let took = restarted.elapsed();
    assert!(answered, "{}", second.log_text());
    // A predecessor left unfenced keeps its open transaction until transaction.timeout.ms (60 s), and
    // read-committed readers see nothing past it meanwhile.
    assert!(took < Duration::from_secs(30), "read-committed readers waited {took:?} after the restart");
    reader.drain(Duration::from_secs(2));
    let t = tally(&all, &reader.records);
    assert!(t.clean() && t.duplicates == 0, "{t:?}");
    assert_eq!(second.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn offset_resets_are_logged_and_counted() {
    let env = Env::new("resets");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    let p = producer(&env.broker, &[]);
    let topic = env.topic("claims");
    for i in 0..40 {
        send(&p, &topic, &format!("k{i}"), claim(i, "D110105000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    // A new group: every partition starts without a committed offset.
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    assert_eq!(env.outputs(40, Duration::from_secs(60)).len(), 40);
    let resets = util::events(&s.log_text(), "offset_reset");
    assert_eq!(resets.len(), 4, "{}", s.log_text());
    assert_eq!(s.metric("claimgate_offset_resets_total"), 4.0);
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));

    // More lines arrive while it is down, then retention deletes them and the committed ones: the
    // committed offsets point before the log's start.
    for i in 40..80 {
        send(&p, &topic, &format!("k{i}"), claim(i, "D110105000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    util::delete_all_records(&env.broker, &topic);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && s.metric("claimgate_offset_resets_total") < 1.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.log_text();
    let out_of_range: Vec<_> =
        util::events(&log, "offset_reset").into_iter().filter(|v| v["reason"] == "out_of_range").collect();
    assert!(!out_of_range.is_empty(), "{log}");
    assert!(s.metric("claimgate_offset_resets_total") >= 1.0);
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn an_output_waiting_past_the_limit_fails_healthz_until_the_broker_answers() {
    let (proxy, listener) = Proxy::listen();
    let own = OwnBroker::start_advertising(Some(proxy.port));
    proxy.forward_to(listener, own.addr.clone());
    let env = Env::on(&format!("127.0.0.1:{}", proxy.port), "unacked");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    std::fs::write(env.path("age.toml"), "[limits]\nmax_unacked_age_s = 3\n").unwrap();
    let mut s = env.stream("g", &["--config", &env.path("age.toml").display().to_string()]);
    s.wait_ready(READY);
    assert_eq!(s.get("/healthz").map(|r| r.0), Some(200));
    let lines: Vec<Line> =
        (0..2_000).map(|i| Line { key: format!("k{i}"), bytes: claim(i, "D110105000001").into_bytes() }).collect();
    let load = Load::start(&own.addr, &env.topic("claims"), lines.into_iter(), 100);
    // Outputs stop being acknowledged: every request naming an output topic goes unanswered.
    for t in output_topics(&env) {
        proxy.block(&t);
    }
    let unhealthy = wait_unhealthy(&s, Duration::from_secs(60));
    let body = unhealthy.unwrap_or_else(|| panic!("/healthz stayed 200:\n{}", s.log_text()));
    assert!(body.contains("waited") && body.contains("max_unacked_age_s"), "{body}");
    assert!(s.metric("claimgate_oldest_unacked_seconds") > 3.0);
    proxy.unblock_all();
    wait_healthz_ok(&s, Duration::from_secs(120));
    assert_eq!(s.get("/healthz").map(|r| r.0), Some(200), "{}", s.log_text());
    let sent = load.finish();
    let mut reader = Reader::new(&own.addr, &output_topics(&env));
    assert!(reader.until_answered(&expected_keys(&sent), Duration::from_secs(120)), "{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
    reader.drain(Duration::from_secs(2));
    assert!(tally(&sent, &reader.records).clean());
}

/// The group gives a second instance two partitions whose committed offsets it cannot read (every
/// OffsetFetch request is dropped): it holds them and takes nothing from them — the stall seen on the
/// cluster after a healed cut of the group's coordinator (RELIABILITY.md), where nothing showed it. Past
/// `limits.max_stalled_s` its `/healthz` fails naming the partition and its fetch state, the log says
/// `claims_stalled`, the gauge says how long; once the offsets can be read it is taken from again
/// (`claims_flowing`, `/healthz` 200), and nothing is lost. The first instance, which kept its two
/// partitions, stays healthy throughout.
#[test]
fn a_claims_partition_held_but_never_taken_from_fails_healthz_until_it_moves() {
    const OFFSET_FETCH: i16 = 9;
    let (proxy, listener) = Proxy::listen();
    let own = OwnBroker::start_advertising(Some(proxy.port));
    proxy.forward_to(listener, own.addr.clone());
    let env = Env::on(&format!("127.0.0.1:{}", proxy.port), "stalled");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    std::fs::write(env.path("stall.toml"), "[limits]\nmax_stalled_s = 5\n").unwrap();
    let config = env.path("stall.toml").display().to_string();
    // A dropped request is given up (and sent again) after socket.timeout.ms: 10 s rather than 60.
    let args = ["--config", config.as_str(), "-X", "socket.timeout.ms=10000"];
    let mut a = env.stream("g", &args);
    a.wait_ready(READY);
    let lines: Vec<Line> =
        (0..4_000).map(|i| Line { key: format!("k{i}"), bytes: claim(i, "D110105000001").into_bytes() }).collect();
    let load = Load::start(&own.addr, &env.topic("claims"), lines.into_iter(), 100);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && a.try_metric("claimgate_claims_total").unwrap_or(0.0) < 50.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.block_api(OFFSET_FETCH);
    let mut b = env.stream("g", &args);
    let unhealthy = wait_unhealthy(&b, Duration::from_secs(90));
    let body = unhealthy.unwrap_or_else(|| panic!("/healthz of the stalled instance stayed 200:\n{}", b.log_text()));
    assert!(body.contains("claims partition") && body.contains("max_stalled_s"), "{body}");
    assert!(b.metric("claimgate_claims_stalled_seconds") >= 5.0, "{}", b.log_text());
    assert_eq!(b.metric("claimgate_claims_partitions"), 2.0, "the stalled instance should hold two partitions");
    assert!(!util::events(&b.log_text(), "claims_stalled").is_empty(), "{}", b.log_text());
    assert_eq!(a.get("/healthz").map(|r| r.0), Some(200), "the instance that kept its partitions: {}", a.log_text());
    let decided_by_b = b.metric("claimgate_claims_total");
    proxy.unblock_all();
    wait_healthz_ok(&b, Duration::from_secs(90));
    assert_eq!(b.get("/healthz").map(|r| r.0), Some(200), "{}", b.log_text());
    assert!(!util::events(&b.log_text(), "claims_flowing").is_empty(), "{}", b.log_text());
    let sent = load.finish();
    let mut reader = Reader::new(&own.addr, &output_topics(&env));
    assert!(reader.until_answered(&expected_keys(&sent), Duration::from_secs(120)), "{}", b.log_text());
    assert!(b.metric("claimgate_claims_total") > decided_by_b, "the stalled instance never decided again");
    assert_eq!(a.terminate(Duration::from_secs(40)), Some(0));
    assert_eq!(b.terminate(Duration::from_secs(40)), Some(0));
    reader.drain(Duration::from_secs(2));
    assert!(tally(&sent, &reader.records).clean());
}

/// No false stall: a claims topic written in transactions ends in a commit marker (an offset no claim is
/// delivered for), and a transaction left open upstream holds back what a read-committed consumer may
/// read. Idle three times `limits.max_stalled_s` in both states, the instance stays healthy and says
/// nothing of a stall; once the open transaction commits, its claims are decided.
#[test]
fn a_claims_topic_written_in_transactions_and_idle_is_not_a_stall() {
    let env = Env::new("txn-claims");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    std::fs::write(env.path("stall.toml"), "[limits]\nmax_stalled_s = 5\n").unwrap();
    let mut s = env.stream("g", &["--config", &env.path("stall.toml").display().to_string()]);
    s.wait_ready(READY);
    let p = producer(&env.broker, &[("transactional.id", &format!("{}claims-writer", env.prefix))]);
    p.init_transactions(Duration::from_secs(30)).expect("init transactions");
    let claims = env.topic("claims");
    p.begin_transaction().unwrap();
    for i in 0..40 {
        send(&p, &claims, &format!("k{i}"), claim(i, "D110105000001").as_bytes(), None);
    }
    p.commit_transaction(Duration::from_secs(30)).expect("commit");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && s.try_metric("claimgate_claims_total").unwrap_or(0.0) < 40.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.metric("claimgate_claims_total"), 40.0, "{}", s.log_text());
    let healthy_for = |s: &util::Stream, how_long: Duration| {
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            let h = s.get("/healthz");
            assert_eq!(h.as_ref().map(|r| r.0), Some(200), "{h:?}\n{}", s.log_text());
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Idle behind the commit markers (each partition's last offset).
    healthy_for(&s, Duration::from_secs(16));
    // A transaction left open: its claims are past the high watermark, not the last stable offset.
    p.begin_transaction().unwrap();
    for i in 40..60 {
        send(&p, &claims, &format!("k{i}"), claim(i, "D110105000001").as_bytes(), None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    healthy_for(&s, Duration::from_secs(16));
    assert_eq!(s.metric("claimgate_claims_stalled_seconds"), 0.0);
    assert!(util::events(&s.log_text(), "claims_stalled").is_empty(), "{}", s.log_text());
    p.commit_transaction(Duration::from_secs(30)).expect("commit");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && s.try_metric("claimgate_claims_total").unwrap_or(0.0) < 60.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.metric("claimgate_claims_total"), 60.0, "{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

/// Partitions paused for back-pressure, lost with the group session, and given back: librdkafka keeps a
/// partition's pause through its revocation and a later assignment (confluentinc/librdkafka#1849), while
/// the pipeline resumed only what it held — nothing, at that moment — so the partitions came back paused
/// and were never fetched again: all four held, nothing decided, until a restart (the cluster soak of
/// 2026-12-07, the leader cut off from its peers, cuts 6 and 7; RELIABILITY.md). Here the outputs are
/// held at a proxy until the in-flight bound pauses consumption, the heartbeats are dropped until the
/// session is lost, then both are let through: every line must be answered.
#[test]
fn partitions_lost_while_paused_are_taken_from_again_when_given_back() {
    const HEARTBEAT: i16 = 12;
    let (proxy, listener) = Proxy::listen();
    let own = OwnBroker::start_advertising(Some(proxy.port));
    proxy.forward_to(listener, own.addr.clone());
    let env = Env::on(&format!("127.0.0.1:{}", proxy.port), "paused-lost");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ledgers");
    env.publish_tables(&dir.join("practitioners.jsonl"), None);
    std::fs::write(env.path("paused.toml"), "[limits]\nmax_in_flight = 200\nbatch_size = 20\nmax_stalled_s = 10\n")
        .unwrap();
    let mut s = env.stream("g", &["--config", &env.path("paused.toml").display().to_string()]);
    s.wait_ready(READY);
    let lines: Vec<Line> =
        (0..3_000).map(|i| Line { key: format!("k{i}"), bytes: claim(i, "D110105000001").into_bytes() }).collect();
    let load = Load::start(&own.addr, &env.topic("claims"), lines.into_iter(), 100);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && s.try_metric("claimgate_claims_total").unwrap_or(0.0) < 50.0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Outputs held: the in-flight bound is reached and consumption pauses.
    for t in output_topics(&env) {
        proxy.block(&t);
    }
    let paused = util::faults::wait_metric(&s, "claimgate_consumption_paused", Duration::from_secs(60), |v| v == 1.0);
    assert!(paused.is_some(), "consumption never paused:\n{}", s.log_text());
    // Heartbeats dropped: the session is lost with the partitions paused.
    proxy.block_api(HEARTBEAT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && util::events(&s.log_text(), "partitions_lost").is_empty() {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !util::events(&s.log_text(), "partitions_lost").is_empty(),
        "the session was never lost:\n{}",
        s.log_text()
    );
    proxy.unblock_all();
    let sent = load.finish();
    let mut reader = Reader::new(&own.addr, &output_topics(&env));
    assert!(
        reader.until_answered(&expected_keys(&sent), Duration::from_secs(120)),
        "not every line was answered after the partitions came back:\n{}",
        s.log_text()
    );
    // Held outputs stall the partitions too (the in-flight bound) until the producer's dropped requests
    // time out and go again: that may be reported, but nothing may stay stalled.
    wait_healthz_ok(&s, Duration::from_secs(30));
    assert_eq!(s.get("/healthz").map(|r| r.0), Some(200), "{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
    reader.drain(Duration::from_secs(2));
    assert!(tally(&sent, &reader.records).clean());
}
