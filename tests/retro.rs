//! Issue 13, item 2, on Apache Kafka: late status changes found by the stream's status follower and
//! published to `status.retro`, then acted on by `review --retro` into the recovery report.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use claimgate::record::BjTime;
use util::{Env, bin, read_jsonl, read_topics_from};

const DAY: i64 = 86_400;
const INST: &str = "H11010500001";
/// Suspended from 7 days ago, back-dated: its lines of the last 7 days are to recover.
const SUSPENDED: &str = "D110105000001";
/// Never changed: none of its lines may appear.
const UNTOUCHED: &str = "D110105000002";
/// Suspended from 10 days ago at first, then lifted: its lines of those days are to pay.
const LIFTED: &str = "D110105000003";

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Beijing time `delta_s` seconds from now, as records write it.
fn bj(delta_s: i64) -> String {
    BjTime::from_secs(unix_now() + 8 * 3600 + delta_s).to_string()
}

fn secs(t: &str) -> i64 {
    BjTime::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")).secs()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().expect("run claimgate")
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn practitioner(code: &str, periods: &str) -> String {
    format!(
        r#"{{"code":"{code}","kind":"doctor","registrations":[{{"institution":"{INST}","from":"2020-01-01"}}],"periods":[{periods}],"version":1}}"#
    )
}

fn claim(serial: &str, code: &str, at: &str, amount: &str) -> String {
    format!(
        r#"{{"feedetl_sn":"{serial}","fixmedins_code":"{INST}","mdtrt_id":"M-{serial}","psn_no":"P1","med_type":"11","fee_ocur_time":"{at}","bilg_dr_codg":"{code}","det_item_fee_sumamt":"{amount}"}}"#
    )
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

/// The `review --retro` command line of a test.
fn review_args(env: &Env, report: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "review",
        "--brokers",
        &env.broker,
        "--retro",
        "--retro-topic",
        &env.topic("status.retro"),
        "--retro-group",
        &env.topic("retro-review"),
        "--claims-topic",
        &env.topic("claims"),
        "--previous-topic",
        &env.topic("claims.accepted"),
        "--previous-topic",
        &env.topic("claims.rejected"),
        "--tables-from-topics",
        "--topic-practitioners",
        &env.topic("practitioners"),
        "--topic-institutions",
        &env.topic("institutions"),
        "--report",
        &report.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The report's row for a direction: (lines, amount).
fn row(md: &str, label: &str) -> (String, String) {
    let line = md.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no `{label}` row:\n{md}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    (cells[1].to_owned(), cells[2].to_owned())
}

/// Serials of the lines the report lists as changed.
fn changed_serials(md: &str) -> Vec<String> {
    let Some(at) = md.find("### Every changed line") else { return Vec::new() };
    let mut v: Vec<String> = md[at..]
        .lines()
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(str::trim).nth(3).unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_back_dated_suspension_goes_to_status_retro_and_review_retro_recovers_exactly_its_lines() {
    let env = Env::new("retro");
    let (p, i, c, change) =
        (env.path("p.jsonl"), env.path("i.jsonl"), env.path("claims.jsonl"), env.path("change.jsonl"));
    let lifted_from = bj(-10 * DAY);
    write(
        &p,
        &[
            practitioner(SUSPENDED, ""),
            practitioner(UNTOUCHED, ""),
            practitioner(
                LIFTED,
                &format!(
                    r#"{{"status":"suspended","from":"{lifted_from}","until":"{}","decision_id":"QH-OLD-1"}}"#,
                    bj(30 * DAY)
                ),
            ),
        ],
    );
    write(&i, &[format!(r#"{{"code":"{INST}","kind":"hospital","periods":[],"version":1}}"#)]);
    env.publish_tables(&p, Some(&i));
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(Duration::from_secs(60));

    let lines = [
        claim("S-40d", SUSPENDED, &bj(-40 * DAY), "1000.00"), // before the suspension: stands
        claim("S-10d", SUSPENDED, &bj(-10 * DAY), "500.00"),  // before the suspension: stands
        claim("S-5d", SUSPENDED, &bj(-5 * DAY), "20.50"),     // to recover
        claim("S-1d", SUSPENDED, &bj(-DAY), "3.33"),          // to recover
        claim("U-5d", UNTOUCHED, &bj(-5 * DAY), "50.00"),     // never changed
        claim("L-20d", LIFTED, &bj(-20 * DAY), "9.00"),       // before the lifted suspension: stands
        claim("L-5d", LIFTED, &bj(-5 * DAY), "77.70"),        // to pay
        claim("L-1d", LIFTED, &bj(-DAY), "0.01"),             // to pay
    ];
    write(&c, &lines);
    env.send(&c);
    let inline = env.answered(&c, Duration::from_secs(90), &|| stream.log_text());
    let verdict = |serial: &str| {
        inline.iter().find(|o| o.value["feedetl_sn"] == serial).map(|o| o.value["verdict"].as_str().unwrap().to_owned())
    };
    assert_eq!(verdict("S-5d").as_deref(), Some("accept"));
    assert_eq!(verdict("L-5d").as_deref(), Some("reject"));
    assert_eq!(verdict("L-20d").as_deref(), Some("accept"));

    // While the stream runs: SUSPENDED suspended from 7 days ago (decided today), LIFTED's suspension
    // lifted.
    let suspended_from = bj(-7 * DAY);
    write(
        &change,
        &[
            practitioner(
                SUSPENDED,
                &format!(
                    r#"{{"status":"suspended","from":"{suspended_from}","until":"{}","basis":"national-2024 Art. 11(2)","decision_id":"QH-2026-0099"}}"#,
                    bj(60 * DAY)
                ),
            ),
            practitioner(LIFTED, ""),
        ],
    );
    let published_at = unix_now() + 8 * 3600;
    env.publish_tables(&change, None);
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 2, Duration::from_secs(60));
    assert_eq!(retro.len(), 2, "two late changes on status.retro:\n{}", stream.log_text());
    let find =
        |code: &str| &retro.iter().find(|r| r.value["code"] == code).unwrap_or_else(|| panic!("{retro:?}")).value;

    let s = find(SUSPENDED);
    assert_eq!(s["kind"], "practitioner");
    assert_eq!(s["from"], suspended_from.as_str(), "the window starts where the suspension does");
    let recorded = secs(s["recorded_at"].as_str().unwrap());
    assert!((recorded - published_at).abs() <= 10, "recorded_at {} is when it was published", s["recorded_at"]);
    assert_eq!(secs(s["until"].as_str().unwrap()), recorded + 60, "until: recorded_at + the apply time");
    assert_eq!((s["version_before"].as_u64(), s["version_after"].as_u64()), (Some(1), Some(2)));
    assert_eq!(s["changes"][0]["change"], "added");
    assert_eq!(s["changes"][0]["decision_id"], "QH-2026-0099");
    assert_eq!(s["changes"][0]["basis"], "national-2024 Art. 11(2)");

    let l = find(LIFTED);
    assert_eq!(l["from"], lifted_from.as_str());
    assert_eq!(l["changes"][0]["change"], "removed");
    assert_eq!(l["changes"][0]["decision_id"], "QH-OLD-1");
    assert_eq!((l["version_before"].as_u64(), l["version_after"].as_u64()), (Some(1), Some(2)));
    assert!(retro.iter().all(|r| r.value["code"] != UNTOUCHED));
    stream.terminate(Duration::from_secs(30));

    // The review of the late changes: exactly the lines in their windows, and the money.
    let (report, out) = (env.path("retro.md"), env.path("retro.jsonl"));
    let o = run(&review_args(&env, &report, &out, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    assert_eq!(row(&md, "**to recover**"), ("2".into(), "23.83".into()), "{md}");
    assert_eq!(row(&md, "**to pay**"), ("2".into(), "77.71".into()), "{md}");
    assert_eq!(changed_serials(&md), ["L-1d", "L-5d", "S-1d", "S-5d"], "{md}");
    assert!(md.contains("QH-2026-0099") && md.contains("national-2024 Art. 11(2)"), "{md}");
    // Only the chosen lines were decided.
    let mut decided: Vec<String> =
        read_jsonl(&out).iter().map(|d| d["feedetl_sn"].as_str().unwrap().to_owned()).collect();
    decided.sort();
    assert_eq!(decided, ["L-1d", "L-5d", "S-1d", "S-5d"]);
    // By practitioner: the suspended one's recovery with its decision.
    let by = md.lines().find(|l| l.starts_with(&format!("| `{SUSPENDED}`"))).unwrap_or_else(|| panic!("{md}"));
    assert!(by.contains("23.83") && by.contains("QH-2026-0099"), "{by}");

    // Reviewed: the group's position moved past the changes.
    let o = run(&review_args(&env, &env.path("again.md"), &env.path("again.jsonl"), &[])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let again = std::fs::read_to_string(env.path("again.md")).unwrap();
    assert_eq!(row(&again, "**to recover**"), ("0".into(), "0.00".into()), "{again}");
    assert!(again.contains("0 chosen"), "{again}");

    // An auditor re-runs the first review with the interval its report gives.
    let hint = md.split("the same changes again: ").nth(1).unwrap_or_else(|| panic!("{md}"));
    let from = hint.split('\'').nth(1).unwrap();
    let until = hint.split('\'').nth(3).unwrap();
    let audit = env.path("audit.md");
    let o = run(&review_args(&env, &audit, &env.path("audit.jsonl"), &["--retro-from", from, "--retro-until", until])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let audited = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(row(&audited, "**to recover**"), ("2".into(), "23.83".into()), "{audited}");
    assert_eq!(changed_serials(&audited), changed_serials(&md));
}

#[test]
fn a_malformed_retro_record_is_reported_and_the_others_reviewed() {
    let env = Env::new("retrobad");
    let bad = env.path("bad.jsonl");
    let recorded = bj(-60);
    std::fs::write(
        &bad,
        format!(
            "not json at all\n{}\n{}\n",
            // Well-formed JSON, but the window ends before it starts.
            format_args!(
                r#"{{"kind":"practitioner","code":"{SUSPENDED}","from":"2026-03-20","until":"2026-03-01","version_before":1,"version_after":2,"changes":[],"recorded_at":"{recorded}","source":"x"}}"#
            ),
            // A good one, naming a code with no lines.
            format_args!(
                r#"{{"kind":"practitioner","code":"{UNTOUCHED}","from":"{}","until":"{recorded}","version_before":1,"version_after":2,"changes":[],"recorded_at":"{recorded}","source":"x"}}"#,
                bj(-DAY)
            )
        ),
    )
    .unwrap();
    util::claimgate(&[
        "send",
        "--brokers",
        &env.broker,
        "--topic",
        &env.topic("status.retro"),
        &bad.display().to_string(),
    ]);
    let (report, out) = (env.path("r.md"), env.path("o.jsonl"));
    let started = Instant::now();
    let o = run(&review_args(&env, &report, &out, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    assert!(started.elapsed() < Duration::from_secs(120));
    let md = std::fs::read_to_string(&report).unwrap();
    let warned: Vec<&str> = md.lines().filter(|l| l.contains("is not a late status change")).collect();
    assert_eq!(warned.len(), 2, "{md}");
    assert!(warned.iter().any(|l| l.contains("/0@0")) && warned.iter().any(|l| l.contains("empty window")), "{md}");
    assert!(md.contains("1 chosen"), "{md}");
    assert!(text(&o).contains("not a late status change record"), "{}", text(&o));
}

#[test]
fn a_change_seen_by_two_instances_is_reviewed_once() {
    let env = Env::new("retrotwo");
    let (p, i, c, change) =
        (env.path("p.jsonl"), env.path("i.jsonl"), env.path("claims.jsonl"), env.path("change.jsonl"));
    write(&p, &[practitioner(SUSPENDED, "")]);
    write(&i, &[format!(r#"{{"code":"{INST}","kind":"hospital","periods":[],"version":1}}"#)]);
    env.publish_tables(&p, Some(&i));
    let mut one = env.stream("g", &[]);
    let mut two = env.stream("g", &[]);
    one.wait_ready(Duration::from_secs(60));
    two.wait_ready(Duration::from_secs(60));
    write(&c, &[claim("S-3d", SUSPENDED, &bj(-3 * DAY), "12.34"), claim("S-2d", SUSPENDED, &bj(-2 * DAY), "0.66")]);
    env.send(&c);
    env.answered(&c, Duration::from_secs(90), &|| one.log_text() + &two.log_text());
    let started = bj(-5);
    write(
        &change,
        &[practitioner(
            SUSPENDED,
            &format!(r#"{{"status":"suspended","from":"{}","decision_id":"QH-2026-0100"}}"#, bj(-4 * DAY)),
        )],
    );
    env.publish_tables(&change, None);
    // Each instance writes the change it applied, under the same key.
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 2, Duration::from_secs(60));
    assert_eq!(retro.len(), 2, "{}\n{}", one.log_text(), two.log_text());
    assert!(retro.iter().all(|r| r.key.as_deref() == Some(format!("{SUSPENDED}@2").as_bytes())), "{retro:?}");
    one.terminate(Duration::from_secs(30));
    two.terminate(Duration::from_secs(30));

    // Reviewed once; chosen by time with no end (an auditor's run), which commits nothing.
    let (report, out) = (env.path("r.md"), env.path("o.jsonl"));
    let o = run(&review_args(&env, &report, &out, &["--retro-from", &started])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("1 chosen (1 repeats dropped"), "{md}");
    assert!(md.contains(&format!("stamped from {started} on")), "{md}");
    assert_eq!(row(&md, "**to recover**"), ("2".into(), "13.00".into()), "{md}");
    assert_eq!(changed_serials(&md), ["S-2d", "S-3d"]);
    // Nothing was committed: the group's first run still finds the change.
    let o = run(&review_args(&env, &env.path("g.md"), &env.path("g.jsonl"), &[])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(env.path("g.md")).unwrap();
    assert_eq!(row(&md, "**to recover**"), ("2".into(), "13.00".into()), "{md}");
}

#[test]
fn a_back_dated_department_suspension_recovers_that_departments_lines_only() {
    let env = Env::new("retroinst");
    let (p, i, c, change) =
        (env.path("p.jsonl"), env.path("i.jsonl"), env.path("claims.jsonl"), env.path("change.jsonl"));
    write(&p, &[practitioner(SUSPENDED, ""), practitioner(UNTOUCHED, "")]);
    let institution =
        |periods: &str| format!(r#"{{"code":"{INST}","kind":"hospital","periods":[{periods}],"version":1}}"#);
    write(&i, &[institution("")]);
    env.publish_tables(&p, Some(&i));
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(Duration::from_secs(60));
    let in_dept = |serial: &str, code: &str, at: &str, amount: &str, dept: &str| {
        claim(serial, code, at, amount).replace(r#""psn_no""#, &format!(r#""bilg_dept_codg":"{dept}","psn_no""#))
    };
    write(
        &c,
        &[
            in_dept("D-3d", SUSPENDED, &bj(-3 * DAY), "100.00", "A03.06"), // to recover
            in_dept("D-2d", UNTOUCHED, &bj(-2 * DAY), "0.50", "A03.06"),   // to recover: same department
            in_dept("E-3d", SUSPENDED, &bj(-3 * DAY), "7.00", "A01"),      // other department: stands
            in_dept("D-9d", SUSPENDED, &bj(-9 * DAY), "8.00", "A03.06"),   // before the period: stands
        ],
    );
    env.send(&c);
    env.answered(&c, Duration::from_secs(90), &|| stream.log_text());
    let from = bj(-5 * DAY);
    write(
        &change,
        &[institution(&format!(
            r#"{{"status":"suspended","from":"{from}","departments":["A03.06"],"basis":"Shaoguan Art. 37(5)"}}"#
        ))],
    );
    env.publish_tables(&p, Some(&change));
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 1, Duration::from_secs(60));
    assert_eq!(retro.len(), 1, "{}", stream.log_text());
    let r = &retro[0].value;
    assert_eq!(
        (r["kind"].as_str(), r["code"].as_str(), r["from"].as_str()),
        (Some("institution"), Some(INST), Some(from.as_str()))
    );
    assert_eq!(r["changes"][0]["entry"], "department_period");
    assert_eq!(retro[0].key.as_deref(), Some(format!("institution/{INST}@2").as_bytes()));
    stream.terminate(Duration::from_secs(30));

    let (report, out) = (env.path("r.md"), env.path("o.jsonl"));
    let o = run(&review_args(&env, &report, &out, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&report).unwrap();
    assert_eq!(row(&md, "**to recover**"), ("2".into(), "100.50".into()), "{md}");
    assert_eq!(row(&md, "**to pay**"), ("0".into(), "0.00".into()), "{md}");
    assert_eq!(changed_serials(&md), ["D-2d", "D-3d"], "{md}");
    assert!(md.contains("Shaoguan Art. 37(5)"), "{md}");
    // The institution's lines in the window are decided (the other department's too), not the older one.
    let mut decided: Vec<String> =
        read_jsonl(&out).iter().map(|d| d["feedetl_sn"].as_str().unwrap().to_owned()).collect();
    decided.sort();
    assert_eq!(decided, ["D-2d", "D-3d", "E-3d"]);
}

/// A change written while no instance ran is found by the next instance, from its checkpoint (the
/// tail is news to it) or, without one, from the mark of how far the last instance compared (docs/
/// status-retro.md, "When changes are found"); written once whichever finds it first.
#[test]
fn a_change_made_while_no_instance_ran_is_found_at_the_next_start_with_or_without_a_checkpoint() {
    let env = Env::new("retrodown");
    let (p, change) = (env.path("p.jsonl"), env.path("change.jsonl"));
    write(&p, &[practitioner(SUSPENDED, ""), practitioner(UNTOUCHED, "")]);
    env.publish_tables(&p, None);
    let cfg = env.path("ckpt.toml");
    std::fs::write(&cfg, format!("[checkpoint]\ndir = \"{}\"\nevery_s = 1\n", env.path("state").display())).unwrap();
    let cfg = cfg.display().to_string();
    let mut first = env.stream("g", &["--config", &cfg]);
    first.wait_ready(Duration::from_secs(60));
    assert_eq!(first.terminate(Duration::from_secs(40)), Some(0));

    write(
        &change,
        &[practitioner(
            SUSPENDED,
            &format!(r#"{{"status":"suspended","from":"{}","decision_id":"QH-9"}}"#, bj(-3 * DAY)),
        )],
    );
    env.publish_tables(&change, None);
    // From the beginning: the records after the first instance's mark are compared.
    let mut cold = env.stream("cold", &[]);
    cold.wait_ready(Duration::from_secs(60));
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 1, Duration::from_secs(30));
    assert_eq!(retro.len(), 1, "{}", cold.log_text());
    assert_eq!(retro[0].value["code"], SUSPENDED);
    assert_eq!(retro[0].value["changes"][0]["decision_id"], "QH-9");
    assert_eq!(cold.terminate(Duration::from_secs(40)), Some(0));
    assert!(cold.log_text().contains("status_retro_compared_from"), "{}", cold.log_text());
    // From the checkpoint: the tail holds the change too, already on the topic: not written again.
    let mut second = env.stream("g", &["--config", &cfg]);
    second.wait_ready(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(second.terminate(Duration::from_secs(40)), Some(0));
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 2, Duration::from_secs(3));
    assert_eq!(retro.len(), 1, "{}", second.log_text());
}

/// Where no instance ever recorded how far it compared (a first start), a read from the beginning
/// compares nothing — every code would look new — and says so.
#[test]
fn a_first_start_from_the_beginning_compares_nothing_and_says_so() {
    let env = Env::new("retrofirst");
    let (p, change) = (env.path("p.jsonl"), env.path("change.jsonl"));
    write(&p, &[practitioner(SUSPENDED, "")]);
    env.publish_tables(&p, None);
    write(&change, &[practitioner(SUSPENDED, &format!(r#"{{"status":"suspended","from":"{}"}}"#, bj(-3 * DAY)))]);
    env.publish_tables(&change, None);
    let mut cold = env.stream("cold", &[]);
    cold.wait_ready(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cold.terminate(Duration::from_secs(40)), Some(0));
    assert!(read_topics_from(&env.broker, &[env.topic("status.retro")], 1, Duration::from_secs(3)).is_empty());
    assert!(cold.log_text().contains("status_retro_unmarked"), "{}", cold.log_text());
}

/// The body of a report (its totals, recovery report and every changed line): all but the header
/// table, which says how the lines were read and how long it took.
fn body(md: &str) -> &str {
    &md[md.find("## Totals by verdict").unwrap_or_else(|| panic!("{md}"))..]
}

/// Decisions without the time they were made.
fn decisions(path: &Path) -> Vec<serde_json::Value> {
    read_jsonl(path)
        .into_iter()
        .map(|mut d| {
            d.as_object_mut().unwrap().remove("decided_at");
            d
        })
        .collect()
}

/// `N offsets read` of the report's inputs line.
fn offsets_read(md: &str) -> u64 {
    let inputs = md.lines().find(|l| l.starts_with("| inputs |")).unwrap_or_else(|| panic!("{md}"));
    let at = inputs.rfind(" offsets read").unwrap_or_else(|| panic!("{inputs}"));
    inputs[..at].rsplit([' ', '(']).next().unwrap().parse().unwrap_or_else(|_| panic!("{inputs}"))
}

/// The decision records read, in all, by the report's inputs line (`N decisions read`, once per
/// decision topic with indexes, once for all without).
fn decisions_read(md: &str) -> u64 {
    let inputs = md.lines().find(|l| l.starts_with("| inputs |")).unwrap_or_else(|| panic!("{md}"));
    let counts: Vec<u64> = inputs
        .match_indices(" decisions read")
        .map(|(at, _)| inputs[..at].rsplit([' ', '(']).next().unwrap().parse().unwrap_or_else(|_| panic!("{inputs}")))
        .collect();
    assert!(!counts.is_empty(), "no decisions read said: {inputs}");
    counts.iter().sum()
}

/// Issue 13, item 2's goal: `review --retro --index-dir` fetches the lines the nightly runs' code
/// indexes list for the changed codes, reads by time only where no index covers, and decides and
/// reports exactly what the read by time does — with every record time indexed, with a part, and
/// with index files it cannot use (named, ignored, read by time).
#[test]
fn review_retro_with_code_indexes_decides_and_reports_as_the_read_by_time_does() {
    let env = Env::new("retroidx");
    let (p, i, change) = (env.path("p.jsonl"), env.path("i.jsonl"), env.path("change.jsonl"));
    write(&p, &[practitioner(SUSPENDED, ""), practitioner(UNTOUCHED, "")]);
    write(&i, &[format!(r#"{{"code":"{INST}","kind":"hospital","periods":[],"version":1}}"#)]);
    env.publish_tables(&p, Some(&i));
    let mut stream = env.stream("g", &[]);
    stream.wait_ready(Duration::from_secs(60));

    // Two batches with record times apart; the first with many lines no change names around its own.
    let (a, b) = (env.path("a.jsonl"), env.path("b.jsonl"));
    let mut first =
        vec![claim("S-10d", SUSPENDED, &bj(-10 * DAY), "1000.00"), claim("S-6d", SUSPENDED, &bj(-6 * DAY), "20.50")];
    first.extend((0..3000).map(|n| claim(&format!("U-{n}"), UNTOUCHED, &bj(-3 * DAY), "1.00")));
    first.push(claim("S-3d", SUSPENDED, &bj(-3 * DAY), "3.33"));
    write(&a, &first);
    env.send(&a);
    env.answered(&a, Duration::from_secs(120), &|| stream.log_text());
    std::thread::sleep(Duration::from_millis(1500));
    let mid = bj(0);
    std::thread::sleep(Duration::from_millis(1500));
    write(
        &b,
        &[
            claim("S-2d", SUSPENDED, &bj(-2 * DAY), "7.00"),
            claim("U-1d", UNTOUCHED, &bj(-DAY), "50.00"),
            claim("S-1d", SUSPENDED, &bj(-DAY), "0.01"),
        ],
    );
    env.send(&b);
    env.answered(&b, Duration::from_secs(90), &|| stream.log_text());

    write(
        &change,
        &[practitioner(
            SUSPENDED,
            &format!(r#"{{"status":"suspended","from":"{}","decision_id":"QH-IDX-1"}}"#, bj(-7 * DAY)),
        )],
    );
    env.publish_tables(&change, None);
    let retro = read_topics_from(&env.broker, &[env.topic("status.retro")], 1, Duration::from_secs(60));
    assert_eq!(retro.len(), 1, "{}", stream.log_text());
    stream.terminate(Duration::from_secs(30));

    // The nightly runs: the first batch's record times, then the second's; each also indexes the
    // decision topics it reads, by line identity.
    let (full, part, bad) = (env.path("idx-full"), env.path("idx-part"), env.path("idx-bad"));
    let nightly = |from: &str, until: &str| -> (PathBuf, Vec<PathBuf>) {
        let o = run(&[
            "review",
            "--brokers",
            &env.broker,
            "--claims-topic",
            &env.topic("claims"),
            "--from",
            from,
            "--until",
            until,
            "--late",
            "0",
            "--tables-from-topics",
            "--topic-practitioners",
            &env.topic("practitioners"),
            "--topic-institutions",
            &env.topic("institutions"),
            "--previous-topic",
            &env.topic("claims.accepted"),
            "--previous-topic",
            &env.topic("claims.rejected"),
            "--index-dir",
            &full.display().to_string(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let said = text(&o);
        let path = |l: &str, what: &str| PathBuf::from(l[what.len()..].split(" (").next().unwrap());
        let line = said.lines().find(|l| l.starts_with("claim index: ")).unwrap_or_else(|| panic!("{said}"));
        let decisions: Vec<PathBuf> =
            said.lines().filter(|l| l.starts_with("decision index: ")).map(|l| path(l, "decision index: ")).collect();
        assert_eq!(decisions.len(), 2, "one decision index per decision topic: {said}");
        (path(line, "claim index: "), decisions)
    };
    let (first_index, first_decisions) = nightly(&bj(-30 * DAY), &mid);
    // A window that has not ended yet is indexed only up to when it was read.
    let (second_index, _) = nightly(&mid, &bj(3600));
    assert_ne!(first_index, second_index);
    for f in &first_decisions {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&env.topic("claims.")) && name.ends_with(".cgidx"), "{name}");
    }
    for dir in [&part, &bad] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for f in std::iter::once(&first_index).chain(&first_decisions) {
        std::fs::copy(f, part.join(f.file_name().unwrap())).unwrap();
    }
    // Unusable copies: one truncated, one of another format version.
    let bytes = std::fs::read(&first_index).unwrap();
    std::fs::write(bad.join(first_index.file_name().unwrap()), &bytes[..bytes.len() / 2]).unwrap();
    let mut other = std::fs::read(&second_index).unwrap();
    other[8] = 99;
    std::fs::write(bad.join(second_index.file_name().unwrap()), &other).unwrap();
    // And a decision index that is not one (garbage): ignored, its decisions read by time.
    std::fs::write(bad.join(first_decisions[0].file_name().unwrap()), b"not an index").unwrap();

    let review = |name: &str, extra: &[&str]| {
        let (report, out) = (env.path(&format!("{name}.md")), env.path(&format!("{name}.jsonl")));
        let mut args = vec!["--no-commit"];
        args.extend_from_slice(extra);
        let o = run(&review_args(&env, &report, &out, &args).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{name}: {}", text(&o));
        (std::fs::read_to_string(&report).unwrap(), decisions(&out), text(&o))
    };
    let (by_time, by_time_out, _) = review("by-time", &[]);
    assert_eq!(row(&by_time, "**to recover**"), ("4".into(), "30.84".into()), "{by_time}");
    assert_eq!(changed_serials(&by_time), ["S-1d", "S-2d", "S-3d", "S-6d"], "{by_time}");
    assert_eq!(by_time_out.len(), 4);

    let full_dir = full.display().to_string();
    let (indexed, indexed_out, _) = review("full", &["--index-dir", &full_dir]);
    assert_eq!(body(&indexed), body(&by_time));
    assert_eq!(indexed_out, by_time_out);
    assert!(indexed.contains("5 indexed lines of the changed codes from 2 index files"), "{indexed}");
    let inputs = indexed.lines().find(|l| l.starts_with("| inputs |")).unwrap();
    let (fetched, read) = (offsets_read(&indexed), offsets_read(&by_time));
    assert!(read >= 3005 && fetched < 20, "fetched {fetched} offsets with the indexes, {read} by time: {inputs}");
    // The inline decisions too: those of the chosen lines, not the span's thousands.
    let (indexed_decisions, all_decisions) = (decisions_read(&indexed), decisions_read(&by_time));
    assert!(
        all_decisions >= 3005 && (4..20).contains(&indexed_decisions),
        "{indexed_decisions} decisions read with the indexes, {all_decisions} by time: {inputs}"
    );
    assert!(indexed.contains("indexed decisions of the chosen lines from 2 index files"), "{inputs}");

    let part_dir = part.display().to_string();
    let (partial, partial_out, _) = review("part", &["--index-dir", &part_dir]);
    assert_eq!(body(&partial), body(&by_time));
    assert_eq!(partial_out, by_time_out);
    assert!(partial.contains("3 indexed lines of the changed codes from 1 index files"), "{partial}");
    assert!(partial.contains("read by time where no index covers"), "{partial}");
    assert!(decisions_read(&partial) < 20, "{partial}");

    let bad_dir = bad.display().to_string();
    let (ignored, ignored_out, said) = review("bad", &["--index-dir", &bad_dir]);
    assert_eq!(body(&ignored), body(&by_time));
    assert_eq!(ignored_out, by_time_out);
    for (file, why) in [(&first_index, "truncated claim index"), (&second_index, "claim index format 99")] {
        let name = bad.join(file.file_name().unwrap()).display().to_string();
        let warning = ignored
            .lines()
            .find(|l| l.contains("**Warning:**") && l.contains(&name))
            .unwrap_or_else(|| panic!("no warning naming {name}:\n{ignored}"));
        assert!(warning.contains(why) && warning.contains("read from the topic by time"), "{warning}");
        assert!(said.contains(&name), "{said}");
    }
    assert!(offsets_read(&ignored) >= 3005, "{ignored}");
    let name = bad.join(first_decisions[0].file_name().unwrap()).display().to_string();
    assert!(ignored.lines().any(|l| l.contains("**Warning:**") && l.contains(&name)), "{ignored}");
    assert!(decisions_read(&ignored) >= 3005, "{ignored}");
}
