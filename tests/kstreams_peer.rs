//! The load test's Kafka Streams peer (`loadtest/peers/kafka-streams`, issue 14) against `claimgate
//! stream`, on the Apache Kafka that `scripts/test.sh` started: the same few thousand claim lines (a
//! generated day with 1% malformed lines, plus hand-written lines at the edges of records.md and of the
//! emergency chain of rules.md) go through both, each on its own topics; every line must get the same
//! output from both — the same topic, and for a decision the same verdict, reason, overridden, rule and
//! every other field but `table_epoch` and `decided_at`; for a dead letter the same field at fault —
//! and each output must carry its input's headers.
//!
//! The peer is built with Maven (`run.sh --build-only`: Java 17, Maven Central, cached in ~/.m2). The
//! test is skipped, saying so, only where `java` or `mvn` is not installed; the project's machines and
//! CI have both.

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use util::Env;
use util::oracle;

/// The header every line is sent with: its index in the test's claims file.
const LINE_HEADER: &str = "claimgate-test-line";
const OUTPUTS: Duration = Duration::from_secs(150);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Lines at the edges: numbers as numbers, padding, escapes, legacy codes, every emergency marker,
/// nested unknown fields; and lines that must be dead letters for one reason each. `base` is a
/// well-formed generated line to vary; `unknown` a practitioner code no table holds.
fn edge_lines(base: &serde_json::Map<String, serde_json::Value>, unknown: &str) -> Vec<Vec<u8>> {
    let text = serde_json::to_string(base).unwrap();
    let mut n = 0;
    let mut with = |edits: &[(&str, &str)]| {
        // Field values given as raw JSON text, so that numbers reach both parsers as written.
        n += 1;
        let mut m = base.clone();
        m.insert("feedetl_sn".into(), serde_json::Value::String(format!("EDGE{n:03}")));
        let mut parts: Vec<String> = m
            .iter()
            .filter(|(k, _)| !edits.iter().any(|(f, _)| f == k))
            .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
            .collect();
        for (f, v) in edits {
            if *v != "<absent>" {
                parts.push(format!("{}:{v}", serde_json::to_string(f).unwrap()));
            }
        }
        format!("{{{}}}", parts.join(",")).into_bytes()
    };
    let unknown_dr = format!("\"{unknown}\"");
    let mut lines = vec![
        // Emergencies by each marker, billed by an unknown practitioner (overridable in national-2024).
        with(&[("bilg_dr_codg", &unknown_dr), ("er_flag", "\"1\"")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("er_flag", "1")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("er_flag", "\"1.0\"")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("er_flag", "\"2\"")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("adm_way", "1")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("med_type", "13")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("med_type", "\"24.0\"")]),
        with(&[("bilg_dr_codg", &unknown_dr), ("med_type", "\"9914\"")]),
        // Well formed, written differently.
        with(&[("bilg_dr_codg", "\"0457\"")]),
        with(&[("det_item_fee_sumamt", "126.5")]),
        with(&[("det_item_fee_sumamt", "\"-0.00\"")]),
        with(&[("det_item_fee_sumamt", "\"+007.1\"")]),
        with(&[("fee_ocur_time", "\"2026-04-02\"")]),
        with(&[("fixmedins_code", &format!("\"\\t{}\\t\"", base["fixmedins_code"].as_str().unwrap()))]),
        with(&[("bilg_dept_codg", "\"\"")]),
        with(&[("bilg_dept_codg", "null")]),
        with(&[("mdtrt_id", "\"就诊-01\"")]),
        with(&[("extra", "{\"a\":[1,2.5e3,{\"b\":null}],\"c\":true}")]),
        // One reason each to be a dead letter.
        with(&[("psn_no", "<absent>")]),
        with(&[("psn_no", "\"  \"")]),
        with(&[("bilg_dept_codg", "true")]),
        with(&[("med_type", "\"13a\"")]),
        with(&[("det_item_fee_sumamt", "\"1.234\"")]),
        with(&[("fee_ocur_time", "\"2026-02-30 10:00:00\"")]),
        with(&[("fee_ocur_time", "\"2026-04-02T10:00:00\"")]),
        with(&[("bilg_dr_codg", "\"D1234567890123456789012345678901\"")]),
        with(&[("fixmedins_code", "\"h11010500001\"")]),
        with(&[("mdtrt_id", &format!("\"{}\"", "M".repeat(65)))]),
        with(&[("mdtrt_id", "\"M\\u0001\"")]),
        with(&[("extra", "1e400")]),
    ];
    // Duplicate field, a byte-order mark, trailing text, not an object.
    let dup = text.replacen("{", "{\"med_type\":\"11\",", 1);
    lines.push(dup.into_bytes());
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(text.as_bytes());
    lines.push(bom);
    lines.push(format!("{text} x").into_bytes());
    lines.push(b"[1,2,3]".to_vec());
    // An escaped member name is the same name.
    lines.push(text.replacen("\"psn_no\"", "\"psn\\u005fno\"", 1).into_bytes());
    lines
}

/// An institution whose department `EDGE.DEPT` is suspended from 2000 on, open-ended.
const EDGE_INSTITUTION: &str = "H99999900002";

/// `yyyy-MM-dd[ HH:mm:ss]` as 19 characters, so that text order is time order.
fn full_time(t: &str) -> String {
    if t.len() == 10 { format!("{t} 00:00:00") } else { t.to_owned() }
}

fn covers(period: &serde_json::Value, at: &str) -> bool {
    let from = full_time(period["from"].as_str().unwrap_or_default());
    let until = period["until"].as_str().map_or_else(|| "9999".to_owned(), full_time);
    from.as_str() <= at && at < until.as_str()
}

/// Lines that meet the status records of the generated tables at `base`'s service time, plain and as
/// emergencies: each institution status in force (whole or one department), and practitioners
/// terminated or suspended then, billing where they are registered and where they are not (checks
/// 6-7 run even after 4-5 failed: a terminated person never passes as merely not registered here).
fn status_lines(
    base: &serde_json::Map<String, serde_json::Value>,
    practitioners: &Path,
    institutions: &Path,
) -> Vec<Vec<u8>> {
    let at = full_time(base["fee_ocur_time"].as_str().unwrap());
    let mut out = vec![];
    let mut line = |edits: Vec<(&str, serde_json::Value)>, tag: String| {
        let mut m = base.clone();
        m.insert("feedetl_sn".into(), serde_json::Value::String(tag));
        for (k, v) in edits {
            m.insert(k.into(), v);
        }
        out.push(serde_json::to_vec(&m).unwrap());
    };
    let s = |t: &str| serde_json::Value::String(t.to_owned());
    let mut kinds_done = std::collections::HashSet::new();
    for rec in util::read_jsonl(institutions) {
        let code = rec["code"].as_str().unwrap_or_default().to_owned();
        for p in rec["periods"].as_array().into_iter().flatten().filter(|p| covers(p, &at)) {
            let dept = p["departments"].as_array().and_then(|d| d.first()).and_then(|d| d.as_str());
            let kind = format!("{}-{}", p["status"], dept.is_some());
            if !kinds_done.insert(kind.clone()) {
                continue;
            }
            for er in ["0", "1"] {
                let mut e = vec![("fixmedins_code", s(&code)), ("er_flag", s(er))];
                if let Some(d) = dept {
                    e.push(("bilg_dept_codg", s(d)));
                }
                line(e, format!("INST-{kind}-{er}"));
            }
        }
    }
    // A department stopped since 2000 at an institution of the test's own (see the test's tables).
    for (dept, er) in [("EDGE.DEPT", "0"), ("EDGE.DEPT", "1"), ("OTHER", "0")] {
        let e = vec![("fixmedins_code", s(EDGE_INSTITUTION)), ("bilg_dept_codg", s(dept)), ("er_flag", s(er))];
        line(e, format!("DEPT-{dept}-{er}"));
    }
    let mut persons = 0;
    for rec in util::read_jsonl(practitioners) {
        let Some(status) = rec["periods"].as_array().into_iter().flatten().find(|p| covers(p, &at)) else { continue };
        let Some(reg) = rec["registrations"].as_array().and_then(|r| r.first()) else { continue };
        let code = rec["code"].as_str().unwrap_or_default();
        for (where_, inst) in [("here", reg["institution"].as_str().unwrap_or_default()), ("elsewhere", "H99999900001")]
        {
            for er in ["0", "1"] {
                let e = vec![("bilg_dr_codg", s(code)), ("fixmedins_code", s(inst)), ("er_flag", s(er))];
                line(e, format!("PERSON-{}-{where_}-{er}-{persons}", status["status"].as_str().unwrap_or_default()));
            }
        }
        persons += 1;
        if persons >= 12 {
            break;
        }
    }
    out
}

/// Sends every line to `topic` with its index as a header, keyed `fixmedins_code|mdtrt_id` where the
/// tests' own reading of the line finds them (as `claimgate send` keys them).
fn send(broker: &str, topic: &str, lines: &[Vec<u8>]) {
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (i, line) in lines.iter().enumerate() {
        let key = oracle::read(line).ok().map(|c| format!("{}|{}", c.fixmedins_code, c.mdtrt_id));
        let index = i.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: LINE_HEADER, value: Some(index.as_bytes()) });
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(line).headers(headers);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        producer.send(record).map_err(|(e, _)| e).expect("queue a line");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// One output: its topic's kind, its value, and the line index its header names.
#[derive(Clone, Debug)]
struct Out {
    kind: &'static str,
    value: serde_json::Value,
}

/// Reads the three output topics until every line index has an output and nothing more came for a
/// second; returns the outputs by line index. Panics if an output has no line header or `wait` passes.
fn outputs(env: &Env, lines: usize, wait: Duration, log: &dyn Fn() -> String) -> HashMap<usize, Vec<Out>> {
    let topics = [env.topic("claims.accepted"), env.topic("claims.rejected"), env.topic("claims.dlq")];
    let consumer: BaseConsumer = util::reader_from_beginning(&env.broker, &topics);
    let mut by_line: HashMap<usize, Vec<Out>> = HashMap::new();
    let deadline = Instant::now() + wait;
    let mut quiet_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let index = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == LINE_HEADER))
                    .and_then(|h| h.value)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
                    .unwrap_or_else(|| {
                        panic!("an output on {} without the line header: headers not passed on", m.topic())
                    });
                let kind = if m.topic().ends_with("accepted") {
                    "accepted"
                } else if m.topic().ends_with("rejected") {
                    "rejected"
                } else {
                    "dlq"
                };
                let value = serde_json::from_slice(m.payload().unwrap_or_default()).expect("an output is JSON");
                by_line.entry(index).or_default().push(Out { kind, value });
            }
            Some(Err(_)) => std::thread::sleep(Duration::from_millis(50)),
            None => {}
        }
        if by_line.len() >= lines && quiet_since.elapsed() > Duration::from_secs(1) {
            return by_line;
        }
        if Instant::now() > deadline {
            panic!("{} of {lines} lines have an output after {wait:?}:\n{}", by_line.len(), log());
        }
    }
}

/// The fields two systems must agree on: all but the clock reading and claimgate's snapshot number.
fn comparable(o: &Out) -> serde_json::Value {
    let mut v = o.value.clone();
    if let Some(m) = v.as_object_mut() {
        for f in ["decided_at", "received_at", "table_epoch", "error", "source"] {
            m.remove(f);
        }
    }
    serde_json::json!({ "topic": o.kind, "value": v })
}

/// The only output of a line (identical duplicates allowed: at least once).
fn one(line: usize, outs: &[Out], who: &str) -> serde_json::Value {
    let first = comparable(&outs[0]);
    for o in &outs[1..] {
        assert_eq!(comparable(o), first, "{who}: line {line} has two different outputs");
    }
    first
}

struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_peer(env: &Env, guarantee: &str) -> Peer {
    let log = env.path("peer.log");
    let args: Vec<String> = vec![
        "--brokers".into(),
        env.broker.clone(),
        "--group".into(),
        env.topic("peer"),
        "--claims-topic".into(),
        env.topic("claims"),
        "--accepted-topic".into(),
        env.topic("claims.accepted"),
        "--rejected-topic".into(),
        env.topic("claims.rejected"),
        "--dlq-topic".into(),
        env.topic("claims.dlq"),
        "--practitioners-topic".into(),
        env.topic("practitioners"),
        "--institutions-topic".into(),
        env.topic("institutions"),
        "--guarantee".into(),
        guarantee.into(),
        "--state-dir".into(),
        env.path("peer-state").display().to_string(),
        "--consumer-config".into(),
        "session.timeout.ms=6000".into(),
    ];
    let child = Command::new(repo().join("loadtest/peers/kafka-streams/run.sh"))
        .args(&args)
        .env("KSTREAMS_HEAP", "384m")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("peer log"))
        .spawn()
        .expect("start the peer");
    Peer { child, log }
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).expect("claims file");
    for l in lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

#[test]
fn kafka_streams_peer_decides_every_line_as_claimgate() {
    if !installed("java") || !installed("mvn") {
        eprintln!(
            "SKIPPED kafka_streams_peer_decides_every_line_as_claimgate: `java` (17+) and `mvn` are needed to build the \
             Kafka Streams peer, and {} is missing here",
            if installed("java") { "mvn" } else { "java" }
        );
        return;
    }
    let t0 = Instant::now();
    let build = Command::new(repo().join("loadtest/peers/kafka-streams/run.sh"))
        .arg("--build-only")
        .output()
        .expect("run.sh --build-only");
    assert!(
        build.status.success(),
        "the peer did not build:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    eprintln!("kstreams_peer: peer built in {:.0} s", t0.elapsed().as_secs_f64());

    let cg = Env::new("ks-claimgate");
    let peer_env = Env::new("ks-peer");
    cg.generate(2_000, 3_000, 14);
    let mut lines: Vec<Vec<u8>> = std::fs::read(cg.path("claims.jsonl"))
        .unwrap()
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let base = lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|v| v.as_object().cloned())
        .find(|m| m.get("med_type").and_then(|v| v.as_str()) == Some("11") && !m.contains_key("er_flag"))
        .expect("a plain generated line");
    lines.extend(edge_lines(&base, "D999999999999"));
    lines.extend(status_lines(&base, &cg.path("practitioners.jsonl"), &cg.path("institutions.jsonl")));
    write_lines(&cg.path("all-claims.jsonl"), &lines);

    let mut institutions = std::fs::read(cg.path("institutions.jsonl")).unwrap();
    institutions.extend_from_slice(
        format!(
            "{{\"code\":\"{EDGE_INSTITUTION}\",\"periods\":[{{\"status\":\"suspended\",\"from\":\"2000-01-01\",\"until\":null,\"departments\":[\"EDGE.DEPT\"]}}],\"version\":1}}\n"
        )
        .as_bytes(),
    );
    std::fs::write(cg.path("all-institutions.jsonl"), institutions).unwrap();
    for env in [&cg, &peer_env] {
        env.publish_tables(&cg.path("practitioners.jsonl"), Some(&cg.path("all-institutions.jsonl")));
        send(&env.broker, &env.topic("claims"), &lines);
    }
    let mut stream = cg.stream("g", &[]);
    // The peer in exactly-once: its outputs are read committed, so a transaction that never commits
    // shows as missing lines.
    let peer = start_peer(&peer_env, "exactly_once_v2");
    stream.wait_ready(Duration::from_secs(90));
    let ours = outputs(&cg, lines.len(), OUTPUTS, &|| stream.log_text());
    let theirs = outputs(&peer_env, lines.len(), OUTPUTS, &|| peer.log_text());
    assert_eq!(stream.terminate(Duration::from_secs(40)), Some(0), "{}", stream.log_text());

    let mut counts: HashMap<String, usize> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let a = one(i, ours.get(&i).unwrap_or_else(|| panic!("claimgate: line {i} has no output")), "claimgate");
        let b = one(i, theirs.get(&i).unwrap_or_else(|| panic!("peer: line {i} has no output")), "peer");
        assert_eq!(a, b, "line {i} ({}) decided differently", String::from_utf8_lossy(line));
        let v = &a["value"];
        let label = match a["topic"].as_str() {
            Some("dlq") => format!("dead letter {}", v["field"]),
            _ => format!("{} {} {}", v["verdict"], v["reason"], v["overridden"]),
        };
        *counts.entry(label).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    eprintln!(
        "kstreams_peer: {} lines, the same output from both in {:.0} s:",
        lines.len(),
        t0.elapsed().as_secs_f64()
    );
    for (label, n) in &counts {
        eprintln!("  {n:5}  {label}");
    }
    // The comparison is only as good as the paths the lines took: each must have been taken.
    let has = |s: &str| counts.iter().any(|(l, _)| l.contains(s));
    for path in [
        "\"OK\"",
        "EMERGENCY_OVERRIDE",
        "PRACTITIONER_UNREGISTERED",
        "PRACTITIONER_NOT_REGISTERED_HERE",
        "PRACTITIONER_SUSPENDED",
        "PRACTITIONER_TERMINATED",
        "INSTITUTION_SUSPENDED",
        "DEPARTMENT_SUSPENDED",
        "dead letter",
    ] {
        assert!(has(path), "no line took the path {path}: {counts:?}");
    }
}
