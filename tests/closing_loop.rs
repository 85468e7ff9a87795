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

/// The groups the broker knows by `name`: (state, members). A group that never had a member and never
/// had an offset committed under it does not appear.
fn groups(broker: &str, name: &str) -> Vec<(String, usize)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker).create().unwrap();
    let list = c.fetch_group_list(Some(name), Duration::from_secs(30)).expect("group list");
    list.groups().iter().filter(|g| g.name() == name).map(|g| (g.state().to_owned(), g.members().len())).collect()
}

#[test]
fn the_window_is_by_each_lines_timestamp_from_offsets_found_by_time_and_no_group_is_joined() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let env = Env::new("rwindow");
    env.generate(200, 40, 31);
    // Well-formed lines (with this seed every one taken decides; a dead letter would break the count).
    let lines: Vec<Vec<u8>> = raw_lines(&env.path("claims.jsonl"))
        .into_iter()
        .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| v["feedetl_sn"].is_string()))
        .collect();
    // An hour ago, to the second: the window is [base, base + 100 s).
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let base_s = now - 3_600;
    let at = |d: i64| (base_s + d) * 1000;
    let bj = |d: i64| claimgate::record::BjTime::from_secs(base_s + d + 8 * 3600).to_string();
    // Per partition, in offset order: (seconds from the window's start, inside?). Producers' clocks
    // disagree, so timestamps need not grow along a partition: partition 0 holds a line stamped before
    // the window after one inside it, and a line stamped inside stored after one stamped at its end
    // (read: within --late, 600 s by default).
    let layout: [(i32, &[(i64, bool)]); 4] = [
        (0, &[(-60, false), (10, true), (-30, false), (20, true), (99, true), (100, false), (30, true)]),
        (1, &[(0, true), (50, true)]),
        (2, &[(-100, false), (-90, false)]),
        (3, &[(900, false), (1000, false)]),
    ];
    let topic = env.topic("claims");
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &env.broker).create().unwrap();
    let mut next = lines.iter();
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for (partition, records) in layout {
        for (d, keep) in records {
            let line = next.next().expect("enough lines");
            producer
                .send(BaseRecord::<(), [u8]>::to(&topic).partition(partition).timestamp(at(*d)).payload(line))
                .map_err(|(e, _)| e)
                .unwrap();
            if *keep { inside.push(line.clone()) } else { outside.push(line.clone()) }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    write_lines(&env.path("inside.jsonl"), &inside);
    write_lines(&env.path("outside.jsonl"), &outside);

    let p = env.path("practitioners.jsonl").display().to_string();
    let path = |n: &str| env.path(n).display().to_string();
    let out = run(&[
        "review",
        "--brokers",
        &env.broker,
        "--claims-topic",
        &topic,
        "--from",
        &bj(0),
        "--until",
        &bj(100),
        "--practitioners",
        &p,
        "--out",
        &path("topic.jsonl"),
        "--report",
        &path("topic.md"),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, file) in [("in", "inside.jsonl"), ("out", "outside.jsonl")] {
        claimgate(&[
            "review",
            "--claims",
            &path(file),
            "--practitioners",
            &p,
            "--out",
            &path(&format!("{name}.decisions.jsonl")),
            "--quiet",
        ]);
    }
    let got = decisions(&env.path("topic.jsonl"));
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_eq!(got, decisions(&env.path("in.decisions.jsonl")), "exactly the lines stamped inside the window");
    let excluded = decisions(&env.path("out.decisions.jsonl"));
    assert!(got.iter().all(|d| !excluded.contains(d)));
    // Offsets found by time: partition 0 from its first line at or after --from to its end (nothing is
    // stamped 600 s after --until: 6 offsets, the out-of-order ones among them), partition 1 whole,
    // partitions 2 and 3 nothing — not the 13 offsets the topic holds.
    let md = std::fs::read_to_string(env.path("topic.md")).unwrap();
    assert!(md.contains("(4 partitions, 8 offsets read, read on to 600 s past the end"), "{md}");

    // The inline decisions from a decision topic (--previous-topic) compare as the same decisions from a
    // file (--previous): every verdict flipped inline, one line never decided inline.
    let inline: Vec<Vec<u8>> = read_jsonl(&env.path("in.decisions.jsonl"))
        .into_iter()
        .skip(1)
        .map(|mut v| {
            v["reason"] = if v["reason"] == "OK" { "PRACTITIONER_SUSPENDED" } else { "OK" }.into();
            v.to_string().into_bytes()
        })
        .collect();
    write_lines(&env.path("inline.jsonl"), &inline);
    claimgate(&["send", "--brokers", &env.broker, "--topic", &env.topic("claims.accepted"), &path("inline.jsonl")]);
    let changes = |report: &str, previous: &[&str], claims: &[&str]| {
        let mut a = vec!["review", "--practitioners", &p, "--report", report, "--quiet"];
        a.extend_from_slice(claims);
        a.extend_from_slice(previous);
        claimgate(&a);
        let md = std::fs::read_to_string(report).unwrap();
        md[md.find("| change | lines | amount |").expect("changes section")..].to_owned()
    };
    let (from, until, accepted) = (bj(0), bj(100), env.topic("claims.accepted"));
    let rejected = env.topic("claims.rejected");
    let from_topics = changes(
        &path("prev-topic.md"),
        &["--previous-topic", &accepted, "--previous-topic", &rejected],
        &["--brokers", &env.broker, "--claims-topic", &topic, "--from", &from, "--until", &until],
    );
    let from_file =
        changes(&path("prev-file.md"), &["--previous", &path("inline.jsonl")], &["--claims", &path("inside.jsonl")]);
    assert_eq!(from_topics, from_file);
    assert!(from_topics.contains("| decided now, absent from the inline decisions | 1 |"), "{from_topics}");
    assert_eq!(
        from_topics.lines().filter(|l| l.contains(" | `")).count(),
        5,
        "every flipped line listed: {from_topics}"
    );

    // No group joined, no offset committed: the broker has never heard of the reader's group. The same
    // question sees a group whose consumer subscribed.
    assert_eq!(groups(&env.broker, "claimgate-review-reader"), vec![], "the review joined or committed under a group");
    let control = format!("{}control", env.prefix);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.broker)
        .set("group.id", &control)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.assignment().unwrap().count() == 0 && std::time::Instant::now() < deadline {
        let _ = c.poll(Duration::from_millis(200));
    }
    let seen = groups(&env.broker, &control);
    assert!(seen.iter().any(|(_, members)| *members == 1), "a subscribed consumer's group is seen: {seen:?}");
}

/// `--previous FILE` still compares a topic window's lines (the decisions from a file, the lines from
/// the topic), as before the retro sources were split out of `review`.
#[test]
fn a_topic_window_compares_with_previous_decisions_from_a_file() {
    let env = Env::new("rprevfile");
    let code = "D110105000001";
    let person = |periods: &str| {
        format!(
            r#"{{"code":"{code}","kind":"doctor","registrations":[{{"institution":"H11010500001","from":"2020-01-01"}}],"periods":[{periods}],"version":1}}"#
        )
    };
    let (before, after) = (env.path("before.jsonl"), env.path("after.jsonl"));
    std::fs::write(&before, person("") + "\n").unwrap();
    std::fs::write(&after, person(r#"{"status":"suspended","from":"2020-01-01"}"#) + "\n").unwrap();
    let claims = env.path("claims.jsonl");
    std::fs::write(
        &claims,
        format!(
            r#"{{"feedetl_sn":"F1","fixmedins_code":"H11010500001","mdtrt_id":"M1","psn_no":"P","med_type":"11","fee_ocur_time":"{}","bilg_dr_codg":"{code}","det_item_fee_sumamt":"42.10"}}"#,
            bj_now(-3600)
        ) + "\n",
    )
    .unwrap();
    let inline = env.path("inline.jsonl");
    let o = run(&[
        "review",
        "--claims",
        &claims.display().to_string(),
        "--practitioners",
        &before.display().to_string(),
        "--out",
        &inline.display().to_string(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let from = bj_now(-60);
    env.send(&claims);
    let until = bj_now(60);
    let report = env.path("r.md");
    let o = run(&[
        "review",
        "--brokers",
        &env.broker,
        "--claims-topic",
        &env.topic("claims"),
        "--from",
        &from,
        "--until",
        &until,
        "--late",
        "0",
        "--practitioners",
        &after.display().to_string(),
        "--previous",
        &inline.display().to_string(),
        "--report",
        &report.display().to_string(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    let row = md.lines().find(|l| l.contains("**to recover**")).unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains("| 1 | 42.10 |"), "{row}\n{md}");
}
