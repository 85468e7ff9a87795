//! Bad configuration and bad data, through the binary (issue 6): every setting of `claimgate stream` is
//! checked at start-up and a bad one stops it with an error naming it; bad profiles are refused; a bad
//! line stops `tables build` (and `tables publish`) with its line number; oversized messages go to the
//! dead-letter topic.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{Env, claimgate};

/// A refused start: the exit code and everything printed.
struct Refusal {
    code: Option<i32>,
    text: String,
}

/// Runs `claimgate <args>` with `vars`, expecting it to stop by itself within 30 s.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Refusal {
    let mut child = Command::new(util::bin())
        .args(args)
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run claimgate");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "claimgate {args:?} {vars:?} accepted the configuration and kept running:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Refusal {
        code: out.status.code(),
        text: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

/// Flags, environment variables, and what the message must name.
type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn every_stream_setting_is_checked_at_start_up_and_the_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let toml = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let profile = |text: &str| toml("p.toml", text);
    let good_profile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/national-2024.toml")).unwrap();

    // (flags, environment, what the message must name). Nothing listens on 127.0.0.1:1: a configuration
    // that passed its checks would start and wait there, and the harness would say so.
    let base: [(&str, &str); 2] = [("CLAIMGATE_BROKERS", "127.0.0.1:1"), ("CLAIMGATE_HTTP__ADDR", "127.0.0.1:0")];
    let cases: Vec<Case> = vec![
        (vec!["--brokers".into(), "nohost".into()], vec![], vec!["setting `brokers`"]),
        (vec![], vec![("CLAIMGATE_BROKERS", "host:99999")], vec!["setting `brokers`"]),
        (vec![], vec![("CLAIMGATE_BROKERS", " ")], vec!["setting `brokers`"]),
        (vec!["--group".into(), " ".into()], vec![], vec!["setting `group`"]),
        (vec!["--profile".into(), "no-such-profile".into()], vec![], vec!["setting `profile`", "no-such-profile"]),
        (vec![], vec![("CLAIMGATE_EXACTLY_ONCE", "maybe")], vec!["exactly_once", "CLAIMGATE_EXACTLY_ONCE"]),
        (
            vec!["--config".into(), toml("t.toml", "transactional_id = \"\"\n")],
            vec![],
            vec!["setting `transactional_id`"],
        ),
        (vec!["--topic-claims".into(), "bad topic".into()], vec![], vec!["setting `topics.claims`"]),
        (vec!["--topic-accepted".into(), "a/b".into()], vec![], vec!["setting `topics.accepted`"]),
        (vec!["--topic-rejected".into(), "".into()], vec![], vec!["setting `topics.rejected`"]),
        (vec!["--topic-dlq".into(), "x".repeat(250)], vec![], vec!["setting `topics.dlq`"]),
        (vec!["--topic-practitioners".into(), "..".into()], vec![], vec!["setting `topics.practitioners`"]),
        (vec!["--topic-institutions".into(), "é".into()], vec![], vec!["setting `topics.institutions`"]),
        (vec!["--topic-rejected".into(), "claims.accepted".into()], vec![], vec!["setting `topics.rejected`", "also"]),
        (vec!["--http".into(), "everywhere".into()], vec![], vec!["setting `http.addr`"]),
        (vec!["--http".into(), busy_addr.clone()], vec![], vec!["setting `http.addr`", "cannot listen"]),
        (vec![], vec![("CLAIMGATE_HTTP__TOKEN", " ")], vec!["setting `http.token`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__MAX_IN_FLIGHT", "0")], vec!["setting `limits.max_in_flight`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__BATCH_SIZE", "0")], vec!["setting `limits.batch_size`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__BATCH_SIZE", "60000")], vec!["setting `limits.batch_size`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__MAX_MESSAGE_BYTES", "0")], vec!["setting `limits.max_message_bytes`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__SHUTDOWN_TIMEOUT_S", "0")], vec!["setting `limits.shutdown_timeout_s`"]),
        (
            vec![],
            vec![("CLAIMGATE_LIMITS__MAX_UNACKED_AGE_S", "soon")],
            vec!["max_unacked_age_s", "CLAIMGATE_LIMITS__MAX_UNACKED_AGE_S"],
        ),
        (vec![], vec![("CLAIMGATE_LIMITS__MAX_UNACKED_AGE_S", "0")], vec!["setting `limits.max_unacked_age_s`"]),
        (vec![], vec![("CLAIMGATE_OFFSETS__RESET", "smallest")], vec!["setting `offsets.reset`"]),
        (vec![], vec![("CLAIMGATE_TOPICS__PARTITIONS", "0")], vec!["setting `topics.partitions`"]),
        // Properties that would silently remove the delivery guarantee (issue 9): refused, named.
        (vec!["-X".into(), "acks=0".into()], vec![], vec!["setting `kafka.acks` = `0`: refused"]),
        (vec!["-X".into(), "acks=1".into()], vec![], vec!["setting `kafka.acks` = `1`: refused"]),
        (vec!["-X".into(), "request.required.acks=1".into()], vec![], vec!["setting `kafka.request.required.acks`"]),
        (vec!["-X".into(), "enable.idempotence=false".into()], vec![], vec!["setting `kafka.enable.idempotence`"]),
        (vec!["-X".into(), "enable.auto.commit=true".into()], vec![], vec!["setting `kafka.enable.auto.commit`"]),
        (
            vec!["-X".into(), "enable.auto.offset.store=true".into()],
            vec![],
            vec!["setting `kafka.enable.auto.offset.store`"],
        ),
        (vec!["-X".into(), "isolation.level=read_uncommitted".into()], vec![], vec!["setting `kafka.isolation.level`"]),
        (vec!["-X".into(), "message.timeout.ms=2000".into()], vec![], vec!["setting `kafka.message.timeout.ms`"]),
        (vec!["-X".into(), "delivery.timeout.ms=2000".into()], vec![], vec!["setting `kafka.delivery.timeout.ms`"]),
        (
            vec!["-X".into(), "max.in.flight.requests.per.connection=10".into()],
            vec![],
            vec!["setting `kafka.max.in.flight.requests.per.connection`"],
        ),
        (vec!["-X".into(), "retries=0".into()], vec![], vec!["setting `kafka.retries` = `0`: refused"]),
        (vec!["-X".into(), "auto.offset.reset=latest".into()], vec![], vec!["use the setting `offsets.reset`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__STATUS_PUBLISH_MS", "0")], vec!["setting `limits.status_publish_ms`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__STATUS_PUBLISH_MS", "5000")], vec!["setting `limits.status_publish_ms`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__STALE_AFTER_S", "0")], vec!["setting `limits.stale_after_s`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__TRANSACTION_MS", "0")], vec!["setting `limits.transaction_ms`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__TRANSACTION_MS", "90000")], vec!["setting `limits.transaction_ms`"]),
        (vec![], vec![("CLAIMGATE_LIMITS__MAX_INFLIGHT", "5")], vec!["max_inflight"]),
        (vec!["--log-format".into(), "xml".into()], vec![], vec!["setting `log.format`"]),
        (vec!["--log-level".into(), "info,[".into()], vec![], vec!["setting `log.level`"]),
        (vec!["-X".into(), "group.id=mine".into()], vec![], vec!["setting `kafka.group.id`"]),
        (vec!["-X".into(), "no.such.property=1".into()], vec![], vec!["setting `kafka.no.such.property`"]),
        (vec!["-X".into(), "session.timeout.ms=soon".into()], vec![], vec!["setting `kafka.session.timeout.ms`"]),
        (
            vec![],
            vec![("CLAIMGATE_KAFKA__SECURITY__PROTOCOL", "carrier-pigeon")],
            vec!["setting `kafka.security.protocol`"],
        ),
        (vec!["-X".into(), "security.protocol".into()], vec![], vec!["-X security.protocol"]),
        (
            vec!["--config".into(), toml("k.toml", "[kafka]\n\"socket.timeout.ms\" = [1]\n")],
            vec![],
            vec!["kafka.socket.timeout.ms"],
        ),
        (vec!["--config".into(), toml("c.toml", "colour = \"blue\"\n")], vec![], vec!["colour"]),
        (vec!["--config".into(), "/no/such/claimgate.toml".into()], vec![], vec!["--config", "no such file"]),
        // Profiles: an unknown reason, a malformed emergency set, an override of no failed check, a
        // missing citation.
        (
            vec![
                "--profile".into(),
                profile(&good_profile.replace("\"DEPARTMENT_SUSPENDED\",", "\"DEPT_SUSPENDED\",")),
            ],
            vec![],
            vec!["setting `profile`", "emergency_overrides", "unknown reason `DEPT_SUSPENDED`"],
        ),
    ];
    let mut names = Vec::new();
    for (args, vars, needles) in &cases {
        let mut all = vec!["stream"];
        all.extend(args.iter().map(String::as_str));
        let mut env: Vec<(&str, &str)> =
            base.iter().filter(|(k, _)| !vars.iter().any(|(v, _)| v == k)).copied().collect();
        env.extend(vars.iter().copied());
        let r = run(&all, &env);
        assert_eq!(r.code, Some(1), "{args:?} {vars:?} did not exit 1:\n{}", r.text);
        for n in needles {
            assert!(r.text.contains(n), "{args:?} {vars:?}: the error does not name `{n}`:\n{}", r.text);
        }
        names.push(needles[0]);
    }
    drop(busy);
    eprintln!("{} bad configurations refused: {names:?}", cases.len());
}

#[test]
fn bad_profiles_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/national-2024.toml")).unwrap();
    let cases = [
        (
            good.replace("\"PRACTITIONER_SUSPENDED\",            #", "\"PRACTITIONER_SUSPENDID\", #"),
            vec!["emergency_overrides", "unknown reason `PRACTITIONER_SUSPENDID`"],
        ),
        (
            good.replace("emergency_med_types = [\"13\", \"24\"]", "emergency_med_types = [\"13\", \"24x\"]"),
            vec!["emergency_med_types", "`24x`"],
        ),
        (
            good.replace("emergency_med_types = [\"13\", \"24\"]", "emergency_med_types = [\"13\", \"\"]"),
            vec!["emergency_med_types"],
        ),
        (
            good.replace("emergency_med_types = [\"13\", \"24\"]", "emergency_med_types = \"13,24\""),
            vec!["emergency_med_types"],
        ),
        (
            good.replace("emergency_med_types = [\"13\", \"24\"]", "emergency_med_types = [13, 24]"),
            vec!["emergency_med_types"],
        ),
        (good.replace("emergency_med_types = [\"13\", \"24\"]\n", ""), vec!["emergency_med_types"]),
        (
            good.replace("emergency_overrides = [", "emergency_overrides = [\"OK\","),
            vec!["emergency_overrides", "`OK`"],
        ),
        (good.replace("[rules]\n", "[rules]\nNOT_A_REASON = \"x\"\n"), vec!["rules.NOT_A_REASON", "unknown reason"]),
        (
            good.replace("PRACTITIONER_SUSPENDED = \"national-2024 Art. 9(6)2\"\n", ""),
            vec!["rules.PRACTITIONER_SUSPENDED"],
        ),
        (good.replace("legacy_codes = \"lookup\"", "legacy_codes = \"ignore\""), vec!["legacy_codes"]),
    ];
    let claims = dir.path().join("c.jsonl");
    std::fs::write(&claims, "").unwrap();
    let practitioners = dir.path().join("p.jsonl");
    std::fs::write(&practitioners, "").unwrap();
    for (i, (text, needles)) in cases.iter().enumerate() {
        assert_ne!(text, &good, "case {i} did not change the profile");
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        // Refused by the inline filter and by the nightly review alike.
        let stream = run(
            &["stream", "--profile", &path],
            &[("CLAIMGATE_BROKERS", "127.0.0.1:1"), ("CLAIMGATE_HTTP__ADDR", "127.0.0.1:0")],
        );
        let review = run(&["review", "--profile", &path, "--claims", &claims.display().to_string()], &[]);
        let review = if review.text.contains("--practitioners") {
            run(
                &[
                    "review",
                    "--profile",
                    &path,
                    "--claims",
                    &claims.display().to_string(),
                    "--practitioners",
                    &practitioners.display().to_string(),
                ],
                &[],
            )
        } else {
            review
        };
        for (what, r) in [("stream", &stream), ("review", &review)] {
            assert_ne!(r.code, Some(0), "case {i}: {what} accepted the profile:\n{}", r.text);
            for n in needles {
                assert!(r.text.contains(n), "case {i}: {what} does not name `{n}`:\n{}", r.text);
            }
        }
    }
}

fn practitioner(code: &str, institution: &str) -> String {
    format!(
        r#"{{"code":"{code}","name":"李娜","registrations":[{{"institution":"{institution}","from":"2020-01-01"}}],"periods":[],"version":1}}"#
    )
}

#[test]
fn a_bad_status_line_stops_tables_build_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let good: Vec<String> = (0..6).map(|i| practitioner(&format!("D11010500012{i}"), "H11010500001")).collect();
    // (the bad line, its number, what the message must say)
    let cases = [
        (practitioner("D110105000199", "H1101050000X"), "registrations[0].institution"),
        ("{\"code\": \"D110105000199\", ".to_owned(), "EOF"),
        (
            practitioner("D110105000199", "H11010500001").replace("\"version\":1", "\"version\":\"李娜\""),
            "expected u64",
        ),
        (practitioner("D110105000199", "H11010500001").replace("2020-01-01", "2020-02-30"), "registrations[0].from"),
        (practitioner("", "H11010500001"), "code"),
    ];
    for (i, (bad, needle)) in cases.iter().enumerate() {
        let mut lines = good.clone();
        lines.insert(3, bad.clone());
        // A blank line before it: line numbers count every line of the file.
        lines.insert(1, String::new());
        let text = lines.join("\n") + "\n";
        for compressed in [false, true] {
            let name = if compressed { format!("p{i}.jsonl.zst") } else { format!("p{i}.jsonl") };
            let path = dir.path().join(&name);
            if compressed {
                std::fs::write(&path, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
            } else {
                std::fs::write(&path, &text).unwrap();
            }
            let out = dir.path().join(format!("{name}.snapshot"));
            let r = run(
                &[
                    "tables",
                    "build",
                    "--practitioners",
                    &path.display().to_string(),
                    "--out",
                    &out.display().to_string(),
                    "--quiet",
                ],
                &[],
            );
            assert_ne!(r.code, Some(0), "{name}: a bad line was accepted:\n{}", r.text);
            assert!(r.text.contains(&format!("{name}:5:")), "{name}: no line number 5:\n{}", r.text);
            assert!(r.text.contains(needle), "{name}: does not say `{needle}`:\n{}", r.text);
            assert!(!r.text.contains("李娜"), "{name}: the name is in the message:\n{}", r.text);
            assert!(!out.exists(), "{name}: a snapshot was written despite the bad line");
        }
    }
    // An institution file too.
    let path = dir.path().join("i.jsonl");
    std::fs::write(
        &path,
        "{\"code\":\"H11010500001\",\"periods\":[],\"version\":1}\n{\"code\":\"H11010500002\",\"periods\":[{\"status\":\"paused\",\"from\":\"2026-01-01\"}],\"version\":1}\n",
    )
    .unwrap();
    let p = dir.path().join("ok.jsonl");
    std::fs::write(&p, good.join("\n")).unwrap();
    let out = dir.path().join("i.snapshot");
    let r = run(
        &[
            "tables",
            "build",
            "--practitioners",
            &p.display().to_string(),
            "--institutions",
            &path.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--quiet",
        ],
        &[],
    );
    assert_ne!(r.code, Some(0), "{}", r.text);
    assert!(r.text.contains("i.jsonl:2:") && r.text.contains("variant"), "{}", r.text);
    assert!(!out.exists());
}

#[test]
fn a_bad_status_line_stops_tables_publish_before_anything_is_sent() {
    let env = Env::new("badpublish");
    let mut lines: Vec<String> = (0..4).map(|i| practitioner(&format!("D11010500012{i}"), "H11010500001")).collect();
    lines.insert(2, practitioner("D110105000199", "X1"));
    std::fs::write(env.path("p.jsonl"), lines.join("\n") + "\n").unwrap();
    let r = run(
        &[
            "tables",
            "publish",
            "--brokers",
            &env.broker,
            "--practitioners",
            &env.path("p.jsonl").display().to_string(),
            "--topic-practitioners",
            &env.topic("practitioners"),
            "--topic-institutions",
            &env.topic("institutions"),
        ],
        &[],
    );
    assert_ne!(r.code, Some(0), "{}", r.text);
    assert!(r.text.contains("p.jsonl:3:"), "{}", r.text);
    // Nothing reached the topic: its end offset, as the broker says, not a reader's silence.
    assert_eq!(
        util::end_offsets_total(&env.broker, &env.topic("practitioners")),
        0,
        "records were published before the bad line was found"
    );
    // The same check sees a publish that did happen.
    lines.remove(2);
    std::fs::write(env.path("good.jsonl"), lines.join("\n") + "\n").unwrap();
    util::claimgate(&[
        "tables",
        "publish",
        "--brokers",
        &env.broker,
        "--practitioners",
        &env.path("good.jsonl").display().to_string(),
        "--topic-practitioners",
        &env.topic("practitioners"),
        "--topic-institutions",
        &env.topic("institutions"),
    ]);
    // Four records, and the transaction's commit marker.
    assert_eq!(util::end_offsets_total(&env.broker, &env.topic("practitioners")), 5);
}

/// A well-formed claim line padded with an unknown field to exactly `len` bytes.
fn claim_of_len(id: &str, len: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"feedetl_sn":"1","fixmedins_code":"H11010500001","mdtrt_id":"{id}","psn_no":"P1","med_type":"11","fee_ocur_time":"2026-05-10 09:00:00","bilg_dr_codg":"D110105000123","det_item_fee_sumamt":"10.00","pad":""#
    );
    let pad = len - head.len() - 2;
    let mut line = head.into_bytes();
    line.extend(std::iter::repeat_n(b'x', pad));
    line.extend_from_slice(b"\"}");
    assert_eq!(line.len(), len);
    line
}

#[test]
fn oversized_messages_go_to_the_dead_letter_topic() {
    let env = Env::new("oversized");
    std::fs::write(env.path("p.jsonl"), practitioner("D110105000123", "H11010500001") + "\n").unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    // The default limit is 65536 bytes: at the limit a line is decided, above it dead-lettered.
    let lines = [claim_of_len("AT", 65_536), claim_of_len("OVER", 65_537), claim_of_len("HUGE", 600_000)];
    let mut file = std::fs::File::create(env.path("c.jsonl")).unwrap();
    for l in &lines {
        file.write_all(l).unwrap();
        file.write_all(b"\n").unwrap();
    }
    drop(file);
    env.send(&env.path("c.jsonl"));
    let mut s = env.stream("g", &[]);
    s.wait_ready(Duration::from_secs(90));
    let outputs = env.outputs(3, Duration::from_secs(120));
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
    assert_eq!(outputs.len(), 3, "{}", s.log_text());
    for o in &outputs {
        if o.topic.ends_with("dlq") {
            let raw = o.value["raw"].as_str().unwrap();
            assert_eq!(raw.len(), 65_536, "the dead letter keeps the first max_message_bytes bytes");
            assert!(raw.contains("\"mdtrt_id\":\"OVER\"") || raw.contains("\"mdtrt_id\":\"HUGE\""));
            assert!(o.value["error"].as_str().unwrap().contains("limits.max_message_bytes"), "{}", o.value);
        } else {
            assert_eq!(o.value["mdtrt_id"], "AT", "{}", o.value);
        }
    }
    assert_eq!(outputs.iter().filter(|o| o.topic.ends_with("dlq")).count(), 2);
    // The review of the same file agrees on the decided one.
    let text = claimgate(&[
        "review",
        "--claims",
        &env.path("c.jsonl").display().to_string(),
        "--practitioners",
        &env.path("p.jsonl").display().to_string(),
        "--out",
        "-",
        "--quiet",
    ]);
    assert!(text.contains("\"mdtrt_id\":\"AT\""), "{text}");
}
