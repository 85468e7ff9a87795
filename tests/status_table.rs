//! The status table's truth on Apache Kafka (issue 10): the nightly registry sync, versions that cannot
//! go backwards whatever the writer, two writers racing, batches seen whole, invalid status records,
//! and restarts from a checkpoint.

mod util;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use util::{Env, Stream, bin, claimgate};

const READY: Duration = Duration::from_secs(90);

/// A registry export in the national download's columns (records.md, "Registry export").
fn export(rows: &[(&str, &str, &str)]) -> String {
    let mut s = "医保医生代码,姓名,人员状态,定点医药机构代码,合同起始时间,合同截止时间,执业类别\n".to_owned();
    for (code, inst, from) in rows {
        s.push_str(&format!("{code},某某,正常,{inst},{from},,临床\n"));
    }
    s
}

/// `/v1/practitioners/{code}?at=…` as JSON.
fn answer(s: &Stream, code: &str, at: &str) -> serde_json::Value {
    let (_, body) = s.get(&format!("/v1/practitioners/{code}?at={}", at.replace(' ', "%20"))).expect("status query");
    serde_json::from_str(&body).expect("json")
}

fn status(s: &Stream, code: &str, at: &str) -> String {
    answer(s, code, at)["status"].as_str().unwrap_or_default().to_owned()
}

/// Waits until the stream's answer for `code` at `at` is `want`.
fn wait_status(s: &Stream, code: &str, at: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if status(s, code, at) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{code} at {at} is `{}`, not `{want}`:\n{}", status(s, code, at), s.log_text());
}

fn sync(env: &Env, file: &std::path::Path, extra: &[&str]) -> String {
    let mut args =
        vec!["tables", "sync", "--brokers", &env.broker, "--export", file.to_str().unwrap(), "--topic-practitioners"];
    let t = env.topic("practitioners");
    args.push(&t);
    args.extend(extra);
    claimgate(&args)
}

const A: &str = "D110105000001";
const B: &str = "D110105000002";
const C: &str = "N110105000003";
const D: &str = "D110105000004";
const H1: &str = "H11010500001";

#[test]
fn import_score_and_import_again_ends_with_the_suspension_in_force_and_the_new_registrations_effective() {
    let env = Env::new("nightly");
    let mut s = env.stream("g", &[]);
    // Night 1: the registry.
    std::fs::write(
        env.path("night1.csv"),
        export(&[(A, H1, "2021-01-01"), (B, H1, "2021-01-01"), (C, H1, "2022-01-01")]),
    )
    .unwrap();
    let out = sync(&env, &env.path("night1.csv"), &[]);
    assert!(out.contains("| all | 3 | 0 | 0 | 0 | 0 |"), "{out}");
    s.wait_ready(READY);
    // Day 1: a finding suspends A (Qinghai Art. 11(2): 9 points), published from `score`. The
    // practitioner file `score` reads is the registry as exported: version 0 in it, 1 on the topic.
    let ledger = format!(
        "{}\n",
        serde_json::json!({"id": "F-1", "type": "finding", "code": A, "institution": H1, "case_id": "C-1",
            "item": "national-2024/10.5.2.4", "points": 9, "responsibility": "main", "decided_at": "2026-03-10"})
    );
    std::fs::write(env.path("ledger.jsonl"), ledger).unwrap();
    std::fs::write(
        env.path("held.jsonl"),
        format!(r#"{{"code":"{A}","kind":"doctor","registrations":[{{"institution":"{H1}","from":"2021-01-01"}}],"periods":[],"version":1}}"#)
            + "\n",
    )
    .unwrap();
    let scored = claimgate(&[
        "score",
        "--ledger",
        env.path("ledger.jsonl").to_str().unwrap(),
        "--practitioners",
        env.path("held.jsonl").to_str().unwrap(),
        "--out",
        env.path("scored.jsonl").to_str().unwrap(),
        "--publish",
        "--brokers",
        &env.broker,
        "--topic-practitioners",
        &env.topic("practitioners"),
    ]);
    assert!(scored.contains("published 1 practitioner records"), "{scored}");
    wait_status(&s, A, "2026-03-20 10:00:00", "suspended");
    assert_eq!(answer(&s, A, "2026-03-20 10:00:00")["record"]["version"], 2);

    // Night 2: the same registry exported again, less B, plus D. Before issue 10 every record came
    // back at version 1 and every follower ignored them as stale.
    std::fs::write(
        env.path("night2.csv"),
        export(&[(A, H1, "2021-01-01"), (C, H1, "2022-01-01"), (D, H1, "2026-01-01")]),
    )
    .unwrap();
    let dry = sync(&env, &env.path("night2.csv"), &["--dry-run"]);
    assert!(dry.contains("dry run, nothing published"), "{dry}");
    assert!(dry.contains("| doctor | 1 | 0 | 1 | 0 | 1 |"), "{dry}");
    let before = util::end_offsets_total(&env.broker, &env.topic("practitioners"));
    let out = sync(&env, &env.path("night2.csv"), &[]);
    assert!(out.contains("| all | 1 | 0 | 1 | 0 | 2 |"), "{out}");
    assert!(util::end_offsets_total(&env.broker, &env.topic("practitioners")) > before);
    wait_status(&s, D, "2026-03-20 10:00:00", "normal");
    wait_status(&s, B, "2026-03-20 10:00:00", "unregistered");
    // A's suspension survived the sync of an export that does not carry it.
    assert_eq!(status(&s, A, "2026-03-20 10:00:00"), "suspended");
    assert_eq!(status(&s, A, "2026-05-20 10:00:00"), "suspended", "no restore yet: the suspension goes on (Art. 18)");
    assert_eq!(status(&s, C, "2026-03-20 10:00:00"), "normal");

    // Night 3: nothing changed: nothing is sent. A leaves the registry: it keeps its suspension.
    let out = sync(&env, &env.path("night2.csv"), &[]);
    assert!(out.contains("published 0 records"), "{out}");
    std::fs::write(env.path("night3.csv"), export(&[(C, H1, "2022-01-01"), (D, H1, "2026-01-01")])).unwrap();
    let out = sync(&env, &env.path("night3.csv"), &[]);
    assert!(out.contains("| doctor | 0 | 0 | 0 | 1 | 1 |"), "{out}");
    wait_status(&s, A, "2021-06-01 10:00:00", "unregistered");
    assert_eq!(status(&s, A, "2026-03-20 10:00:00"), "suspended", "a code gone from the registry keeps its periods");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn publish_writes_the_held_version_plus_one_and_nothing_for_unchanged_records() {
    let env = Env::new("versions");
    let rec = |v: u64, inst: &str| {
        format!(r#"{{"code":"{A}","registrations":[{{"institution":"{inst}","from":"2021-01-01"}}],"version":{v}}}"#)
            + "\n"
    };
    std::fs::write(env.path("v5.jsonl"), rec(5, H1)).unwrap();
    env.publish_tables(&env.path("v5.jsonl"), None);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    assert_eq!(answer(&s, A, "2026-01-01 10:00:00")["record"]["version"], 1, "the file's version is not taken");
    // The same content again: nothing sent. An older file with other content: written on top.
    let before = util::end_offsets_total(&env.broker, &env.topic("practitioners"));
    env.publish_tables(&env.path("v5.jsonl"), None);
    assert_eq!(util::end_offsets_total(&env.broker, &env.topic("practitioners")), before);
    std::fs::write(env.path("v1.jsonl"), rec(1, "H11010500002")).unwrap();
    env.publish_tables(&env.path("v1.jsonl"), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && answer(&s, A, "2026-01-01 10:00:00")["record"]["version"] != 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = answer(&s, A, "2026-01-01 10:00:00");
    assert_eq!(a["record"]["version"], 2, "{a}");
    assert_eq!(a["registered_at"][0], "H11010500002");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn two_writers_racing_one_wins_and_the_other_is_told() {
    let env = Env::new("race");
    std::fs::write(env.path("first.csv"), export(&[(A, H1, "2021-01-01")])).unwrap();
    std::fs::write(env.path("second.csv"), export(&[(A, "H11010500002", "2021-01-01")])).unwrap();
    // The first writer reads what is held, then waits before committing (a test-only pause); the second
    // starts meanwhile, which fences the first.
    let t = env.topic("practitioners");
    let args = |file: &str| {
        vec![
            "tables".to_owned(),
            "sync".into(),
            "--brokers".into(),
            env.broker.clone(),
            "--export".into(),
            env.path(file).display().to_string(),
            "--topic-practitioners".into(),
            t.clone(),
        ]
    };
    let slow = Command::new(bin())
        .args(args("first.csv"))
        .env("CLAIMGATE_TEST_PAUSE_BEFORE_COMMIT_MS", "8000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    claimgate(&args("second.csv").iter().map(String::as_str).collect::<Vec<_>>());
    let out = slow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the fenced writer said it succeeded:\n{text}");
    assert!(text.contains("another status writer") && text.contains("nothing of this run was published"), "{text}");
    // What the topic holds is the second writer's, whole.
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    assert_eq!(answer(&s, A, "2026-01-01 10:00:00")["registered_at"][0], "H11010500002");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

/// A practitioner record, suspended through 2026 when `suspended`.
fn person(i: usize, suspended: bool) -> String {
    let periods = if suspended {
        r#"[{"status":"suspended","from":"2026-01-01","until":"2027-01-01","basis":"test","decision_id":"B-1"}]"#
    } else {
        "[]"
    };
    format!(
        r#"{{"code":"D1101{i:08}","registrations":[{{"institution":"{H1}","from":"2020-01-01"}}],"periods":{periods},"version":1}}"#
    )
}

#[test]
fn a_batch_of_100_000_records_is_decided_on_either_none_of_it_or_all_of_it() {
    const N: usize = 100_000;
    let env = Env::new("atomic");
    let write = |name: &str, suspended: bool| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(env.path(name)).unwrap());
        for i in 0..N {
            writeln!(f, "{}", person(i, suspended)).unwrap();
        }
    };
    write("before.jsonl", false);
    write("after.jsonl", true);
    env.publish_tables(&env.path("before.jsonl"), None);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    // Claims keep coming while the batch is published: one every millisecond, each for another person.
    let lines: Vec<claimgate::synth::Line> = (0..300_000)
        .map(|k| {
            let i = (k * 7_919) % N;
            let bytes = format!(
                r#"{{"feedetl_sn":"F{k}","fixmedins_code":"{H1}","mdtrt_id":"M{k}","psn_no":"P","med_type":"11","fee_ocur_time":"2026-06-01 09:00:00","bilg_dr_codg":"D1101{i:08}","det_item_fee_sumamt":"1.00"}}"#
            );
            claimgate::synth::Line { key: format!("{H1}|M{k}"), bytes: bytes.into_bytes() }
        })
        .collect();
    let load = util::load::Load::start(&env.broker, &env.topic("claims"), lines.into_iter(), 1_000);
    std::thread::sleep(Duration::from_secs(3));
    env.publish_tables(&env.path("after.jsonl"), None);
    // Until the stream decides with the batch, and a few seconds more.
    wait_status(&s, "D110100000000", "2026-06-01 09:00:00", "suspended");
    std::thread::sleep(Duration::from_secs(3));
    let sent = load.finish();
    let outputs = util::Env::answered_lines(
        &env,
        &sent.iter().map(|l| l.bytes.clone()).collect::<Vec<_>>(),
        Duration::from_secs(180),
        &|| s.log_text(),
    );
    // Per table epoch, every decision agrees on whether the batch was in the table.
    let mut by_epoch: std::collections::BTreeMap<u64, (usize, usize)> = Default::default();
    for o in &outputs {
        let e = by_epoch.entry(o.value["table_epoch"].as_u64().unwrap()).or_default();
        match o.value["reason"].as_str() {
            Some("OK") => e.0 += 1,
            Some("PRACTITIONER_SUSPENDED") => e.1 += 1,
            other => panic!("unexpected reason {other:?}: {}", o.value),
        }
    }
    let mixed: Vec<_> = by_epoch.iter().filter(|(_, (ok, susp))| *ok > 0 && *susp > 0).collect();
    assert!(mixed.is_empty(), "decided on half a batch: {mixed:?} (all: {by_epoch:?})");
    assert!(
        by_epoch.values().any(|v| v.0 > 0) && by_epoch.values().any(|v| v.1 > 0),
        "the batch landed mid-stream: {by_epoch:?}"
    );
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn an_invalid_status_record_keeps_the_last_valid_version_goes_to_the_status_dead_letter_topic_and_is_flagged() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let env = Env::new("invalid-status");
    std::fs::write(env.path("p.jsonl"), person(1, false) + "\n").unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    let code = "D110100000001";
    let p: BaseProducer = rdkafka::config::ClientConfig::new().set("bootstrap.servers", &env.broker).create().unwrap();
    p.send(
        BaseRecord::to(&env.topic("practitioners")).key(code).payload(r#"{"code":"D110100000001","version":"nine"}"#),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let dlq = env.topic("status.dlq");
    let mut s = env.stream("g", &["--topic-status-dlq", &dlq]);
    s.wait_ready(READY);
    let a = answer(&s, code, "2026-06-01 09:00:00");
    assert_eq!(a["status"], "normal", "the last valid version stays: {a}");
    let flagged = a["invalid_record"].as_str().unwrap_or_default().to_owned();
    assert!(flagged.contains(&format!("{}/0@", env.topic("practitioners"))) && flagged.contains("expected u64"), "{a}");
    assert_eq!(s.metric("claimgate_status_invalid_total"), 1.0);
    assert_eq!(s.metric("claimgate_status_invalid_codes"), 1.0);
    let dead = util::read_topics_from(&env.broker, std::slice::from_ref(&dlq), 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1);
    assert!(flagged.starts_with(dead[0].value["source"].as_str().unwrap()), "{:?}", dead[0].value);
    assert_eq!(dead[0].key.as_deref(), dead[0].value["source"].as_str().map(str::as_bytes));
    // A valid record clears the flag.
    std::fs::write(env.path("p2.jsonl"), person(1, true) + "\n").unwrap();
    env.publish_tables(&env.path("p2.jsonl"), None);
    wait_status(&s, code, "2026-06-01 09:00:00", "suspended");
    assert!(answer(&s, code, "2026-06-01 09:00:00")["invalid_record"].is_null());
    assert_eq!(s.metric("claimgate_status_invalid_codes"), 0.0);
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

/// Publishes `codes` practitioners, runs an instance of group `g` with `checkpoint.dir` set until it is
/// ready, and stops it cleanly, which writes its checkpoint. Returns the checkpoint directory and the
/// config file that sets it.
fn checkpointed(env: &Env, codes: usize) -> (std::path::PathBuf, String) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(env.path("p.jsonl")).unwrap());
    for i in 0..codes {
        writeln!(f, "{}", person(i, false)).unwrap();
    }
    drop(f);
    env.publish_tables(&env.path("p.jsonl"), None);
    let dir = env.path("state");
    let cfg = env.path("ckpt.toml");
    std::fs::write(&cfg, format!("[checkpoint]\ndir = \"{}\"\nevery_s = 1\n", dir.display())).unwrap();
    let cfg = cfg.display().to_string();
    let mut first = env.stream("g", &["--config", &cfg]);
    first.wait_ready(READY);
    assert_eq!(first.terminate(Duration::from_secs(40)), Some(0));
    assert!(!util::events(&first.log_text(), "checkpoint_written").is_empty(), "{}", first.log_text());
    (dir, cfg)
}

#[test]
fn a_restart_loads_the_checkpoint_reads_only_the_tail_and_refuses_a_bad_checkpoint() {
    let env = Env::new("checkpoint");
    let (dir, cfg) = checkpointed(&env, 2_000);

    // While it is down, the tail: one person suspended.
    std::fs::write(env.path("tail.jsonl"), person(7, true) + "\n").unwrap();
    env.publish_tables(&env.path("tail.jsonl"), None);
    let mut second = env.stream("g", &["--config", &cfg]);
    second.wait_ready(READY);
    let log = second.log_text();
    assert_eq!(util::events(&log, "checkpoint_loaded").len(), 1, "{log}");
    let loaded = util::events(&log, "status_loaded");
    assert!(loaded[0]["records"].as_u64().unwrap() <= 5, "more than the tail was read: {loaded:?}");
    assert_eq!(status(&second, "D110100000007", "2026-06-01 09:00:00"), "suspended");
    let epoch = answer(&second, "D110100000007", "2026-06-01 09:00:00")["table_epoch"].clone();
    assert_eq!(second.terminate(Duration::from_secs(40)), Some(0));

    // The same table as an instance that read everything.
    let mut cold = env.stream("cold", &[]);
    cold.wait_ready(READY);
    assert_eq!(answer(&cold, "D110100000007", "2026-06-01 09:00:00")["table_epoch"], epoch);
    assert_eq!(cold.terminate(Duration::from_secs(40)), Some(0));

    // Refused: corrupt; from another cluster; too old. Each says why, and the topics are read in full.
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "checkpoint"))
        .unwrap();
    let good = std::fs::read(&file).unwrap();
    let mut corrupt = good.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0xff;
    let text = String::from_utf8_lossy(&good).into_owned();
    let first_line = text.lines().next().unwrap().to_owned();
    let other = {
        let mut h: serde_json::Value = serde_json::from_str(&first_line).unwrap();
        h["cluster_id"] = "another-cluster".into();
        let mut b = serde_json::to_vec(&h).unwrap();
        b.extend_from_slice(&good[first_line.len()..]);
        b
    };
    for (bytes, why, extra) in [
        (corrupt, "base table", ""),
        (other, "another-cluster", ""),
        (good.clone(), "older than checkpoint.max_age_s", "max_age_s = 1\n"),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let cfg2 = env.path("ckpt2.toml");
        std::fs::write(&cfg2, format!("[checkpoint]\ndir = \"{}\"\nevery_s = 3600\n{extra}", dir.display())).unwrap();
        if !extra.is_empty() {
            std::thread::sleep(Duration::from_secs(2));
        }
        let mut s = env.stream("g", &["--config", &cfg2.display().to_string()]);
        s.wait_ready(READY);
        let log = s.log_text();
        let refused = util::events(&log, "checkpoint_refused");
        assert_eq!(refused.len(), 1, "{why}:\n{log}");
        assert!(refused[0]["reason"].as_str().unwrap().contains(why), "{why}: {refused:?}");
        assert_eq!(status(&s, "D110100000007", "2026-06-01 09:00:00"), "suspended", "the cold path read everything");
        s.kill();
    }
}

/// A restarted instance reads its checkpoint while the cluster has not answered yet: the read (about a
/// second on 12 million codes) no longer waits for the cluster's id, which the checks after it need.
/// The cluster here is a port nobody listens on, so the id never comes; the read must still be done.
#[test]
fn a_restart_reads_its_checkpoint_before_the_cluster_answers() {
    let mut env = Env::new("checkpoint-early");
    let (_, cfg) = checkpointed(&env, 500);

    let broker = std::mem::replace(&mut env.broker, format!("127.0.0.1:{}", util::free_port()));
    let mut second = env.stream("g", &["--config", &cfg]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while util::events(&second.log_text(), "checkpoint_read").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = second.log_text();
    assert_eq!(
        util::events(&log, "checkpoint_read").len(),
        1,
        "the checkpoint was not read while the cluster was away:\n{log}"
    );
    assert!(util::events(&log, "cluster_id_known").is_empty(), "{log}");
    assert!(util::events(&log, "checkpoint_loaded").is_empty(), "loaded without its offsets checked:\n{log}");
    assert_eq!(second.get("/readyz").map(|(code, _)| code), Some(503), "{log}");
    second.kill();
    env.broker = broker;
}

/// A cold start reads thousands of records — several versions of each code, tombstones, codes
/// registered again after their tombstone, an invalid record last — and applies them in their order:
/// the records are decoded on a second thread, a chunk at a time, and applied behind it
/// (`follower/chunk.rs`), so that order is what this checks, across many chunks.
#[test]
fn a_cold_start_applies_every_record_in_its_order_across_many_chunks() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    const N: usize = 5_000;
    let env = Env::new("cold-order");
    let topic = env.topic("practitioners");
    // The topic and its partitions, as the stream expects them.
    std::fs::write(env.path("p.jsonl"), person(N, false) + "\n").unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    let p: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &env.broker)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let code = |i: usize| format!("D1101{i:08}");
    let record = |i: usize, version: u64, suspended: bool| {
        person(i, suspended).replace(r#""version":1"#, &format!(r#""version":{version}"#))
    };
    let send = |key: &str, payload: Option<&str>| loop {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(&topic).key(key);
        if let Some(v) = payload {
            r = r.payload(v);
        }
        match p.send(r) {
            Ok(()) => break,
            Err((_, _)) => {
                p.poll(Duration::from_millis(10));
            }
        }
    };
    for i in 0..N {
        send(&code(i), Some(&record(i, 1, false)));
    }
    for i in (0..N).step_by(2) {
        send(&code(i), Some(&record(i, 2, true)));
    }
    for i in (0..N).step_by(7) {
        send(&code(i), None);
    }
    for i in (0..N).step_by(14) {
        send(&code(i), Some(&record(i, 3, false)));
    }
    send(&code(1), Some(r#"{"code":"D110100000001","version":"nine"}"#));
    p.flush(Duration::from_secs(60)).unwrap();

    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let at = "2026-06-01 09:00:00";
    let deleted = (0..N).filter(|i| i % 7 == 0 && i % 14 != 0).count();
    // N codes, and the one published first.
    assert_eq!(s.metric("claimgate_table_practitioners"), (N + 1 - deleted) as f64);
    for i in [0, 2, 3, 7, 14, 21, 28, 4998, 4999] {
        let a = answer(&s, &code(i), at);
        let want = match i {
            _ if i % 14 == 0 => "normal",
            _ if i % 7 == 0 => "unregistered",
            _ if i % 2 == 0 => "suspended",
            _ => "normal",
        };
        assert_eq!(a["status"], want, "code {} (record {i}): {a}", code(i));
    }
    let a = answer(&s, &code(1), at);
    assert_eq!(a["status"], "normal", "the last valid version stays: {a}");
    assert!(a["invalid_record"].as_str().is_some_and(|r| r.contains("expected u64")), "{a}");
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}

/// Issue 10, memory during compaction: the delta of status changes is folded into the base table a
/// shard at a time, in the background, while changes keep coming. Every change survives the folds —
/// the table ends with the same content (epoch) as an instance that read the topic cold — and each
/// fold is logged. `limits.compact_after` makes a few hundred changes start a fold here (65 536 at
/// least by default).
#[test]
fn the_delta_folded_into_the_base_shard_by_shard_while_changes_keep_coming_keeps_every_change() {
    const N: usize = 3_000;
    let env = Env::new("compaction");
    let file = |name: &str, suspended: &dyn Fn(usize) -> bool| {
        let path = env.path(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..N {
            writeln!(f, "{}", person(i, suspended(i))).unwrap();
        }
        path
    };
    env.publish_tables(&file("start.jsonl", &|_| false), None);
    let cfg = env.path("compact.toml");
    std::fs::write(&cfg, "[limits]\ncompact_after = 300\n").unwrap();
    // Each shard's rebuild slowed to 40 ms: a fold takes 2.6 s, so the next rounds land during it.
    let mut s =
        env.stream_env("g", &["--config", &cfg.display().to_string()], &[("CLAIMGATE_TEST_PAUSE_PER_SHARD_MS", "40")]);
    s.wait_ready(READY);
    // Four rounds: a third of the people suspended, then the next third while the last is lifted, and
    // so on until none is; 1 000 or 2 000 changes a round, each round past `compact_after`, the next
    // coming while the fold of the last may still run.
    for round in 0..4usize {
        let name = format!("round{round}.jsonl");
        env.publish_tables(&file(&name, &|i| i % 3 == round && round < 3), None);
    }
    // An instance that reads the topic cold has the table loaded directly, without a fold.
    let mut cold = env.stream("cold", &[]);
    cold.wait_ready(READY);
    let epoch = answer(&cold, "D110100000002", "2026-06-01 09:00:00")["table_epoch"].clone();
    assert!(util::events(&cold.log_text(), "table_compacted").is_empty(), "a cold start loads the base directly");
    assert_eq!(cold.terminate(Duration::from_secs(40)), Some(0));
    // The instance that folded its delta while following reaches the same table.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer(&s, "D110100000002", "2026-06-01 09:00:00")["table_epoch"] != epoch {
        assert!(Instant::now() < deadline, "the tables differ after the folds:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first fold began with round 0 and the rounds after it landed during it; a second folds them.
    while util::events(&s.log_text(), "table_compacted").len() < 2 {
        assert!(Instant::now() < deadline, "fewer than two folds:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = s.log_text();
    assert_eq!(answer(&s, "D110100000002", "2026-06-01 09:00:00")["table_epoch"], epoch, "the folds changed the table");
    assert!(util::events(&log, "table_compaction_failed").is_empty(), "{log}");
    for i in [0usize, 1, 2, 1_234, N - 1] {
        assert_eq!(status(&s, &format!("D1101{i:08}"), "2026-06-01 09:00:00"), "normal", "person {i}");
    }
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
}
