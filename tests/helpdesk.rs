//! The help desk's queries on a running `claimgate stream` (issue 13, item 4): per-caller tokens with a
//! scope from a tokens file, `/v1/practitioners/{code}`, `/v1/institutions/{code}` with departments,
//! `POST /v1/decide` against the stream's own decisions, malformed bodies, and the query log.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use util::{Env, Stream, http_request, identity, without_time};

const READY: Duration = Duration::from_secs(90);
const OUTPUTS: Duration = Duration::from_secs(120);

/// A POST with a body; `(status, body)`.
fn http_post(port: u16, path: &str, headers: &[&str], body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    // A server may answer (413) before reading the whole body; the answer is what counts.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A tokens file: one caller per (name, scope, code), its token made by `claimgate tokens new`.
/// Returns the tokens by name.
fn tokens_file(env: &Env, name: &str, callers: &[(&str, &str, Option<&str>)]) -> HashMap<String, String> {
    let mut file = String::new();
    let mut tokens = HashMap::new();
    for (caller, scope, code) in callers {
        let mut args = vec!["tokens", "new", "--name", caller, "--scope", scope];
        if let Some(c) = code {
            args.extend(["--code", c]);
        }
        let out = std::process::Command::new(util::bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let entry = String::from_utf8(out.stdout).unwrap();
        let token = String::from_utf8(out.stderr).unwrap().lines().last().unwrap().trim().to_owned();
        assert!(token.len() >= 43, "a 256-bit token: {token}");
        assert!(!entry.contains(&token), "the entry holds the token itself:\n{entry}");
        file.push_str(&entry);
        tokens.insert(caller.to_string(), token);
    }
    std::fs::write(env.path(name), file).unwrap();
    tokens
}

/// The config file naming the tokens file.
fn config_with_tokens(env: &Env, tokens: &str) -> String {
    let path = env.path("claimgate.toml");
    std::fs::write(&path, format!("[http]\ntokens_file = \"{}\"\n", env.path(tokens).display())).unwrap();
    path.display().to_string()
}

const P_HERE: &str = "D110105000123"; // registered at H1, suspended in May 2026
const P_ELSEWHERE: &str = "D110105000456"; // registered at H2 only
const H1: &str = "H11010500001";
const H2: &str = "H11010500002";
const BASIS: &str = "Qinghai Art. 9(6) test-basis-7731";

fn publish_tables(env: &Env) {
    let p = format!(
        "{{\"code\":\"{P_HERE}\",\"name\":\"张三\",\"registrations\":[{{\"institution\":\"{H1}\",\"from\":\"2020-01-01\"}}],\
         \"periods\":[{{\"status\":\"suspended\",\"from\":\"2026-05-01\",\"until\":\"2026-06-01\",\"basis\":\"{BASIS}\",\"decision_id\":\"QH-2026-17\"}}],\"version\":1}}\n\
         {{\"code\":\"{P_ELSEWHERE}\",\"registrations\":[{{\"institution\":\"{H2}\",\"from\":\"2020-01-01\"}}],\"periods\":[],\"version\":1}}\n"
    );
    let i = format!(
        "{{\"code\":\"{H1}\",\"periods\":[\
         {{\"status\":\"suspended\",\"from\":\"2026-07-01\",\"until\":\"2026-08-01\",\"departments\":null,\"basis\":\"whole-7\"}},\
         {{\"status\":\"suspended\",\"from\":\"2026-02-01\",\"until\":\"2026-03-01\",\"departments\":[\"A03.06\"],\"basis\":\"dept-a\"}},\
         {{\"status\":\"terminated\",\"from\":\"2026-02-10\",\"departments\":[\"B01\"],\"basis\":\"dept-b\"}}],\"version\":3}}\n"
    );
    std::fs::write(env.path("p.jsonl"), p).unwrap();
    std::fs::write(env.path("i.jsonl"), i).unwrap();
    env.publish_tables(&env.path("p.jsonl"), Some(&env.path("i.jsonl")));
}

fn line(sn: &str, institution: &str, time: &str, doctor: &str, dept: Option<&str>) -> String {
    let dept = dept.map(|d| format!(",\"bilg_dept_codg\":\"{d}\"")).unwrap_or_default();
    format!(
        "{{\"feedetl_sn\":\"{sn}\",\"fixmedins_code\":\"{institution}\",\"mdtrt_id\":\"M-{sn}\",\"psn_no\":\"P9\",\"med_type\":\"11\",\
         \"fee_ocur_time\":\"{time}\",\"bilg_dr_codg\":\"{doctor}\",\"det_item_fee_sumamt\":\"10.00\"{dept}}}"
    )
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// Waits until the stream's table holds the test's records.
fn wait_for_tables(s: &Stream, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http_request(s.port, &format!("/v1/institutions/{H1}"), &[&bearer(token)]);
        if r.as_ref().is_some_and(|(c, b)| *c == 200 && b.contains("\"record\":{")) {
            return;
        }
        assert!(Instant::now() < deadline, "the table never held the test's records: {r:?}\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn each_scope_is_answered_or_refused_and_every_query_is_logged() {
    let env = Env::new("scopes");
    publish_tables(&env);
    let tokens = tokens_file(
        &env,
        "tokens.toml",
        &[("desk", "all", None), ("h1-staff", "institution", Some(H1)), ("zhang", "practitioner", Some(P_HERE))],
    );
    let config = config_with_tokens(&env, "tokens.toml");
    let mut s = env.stream("g", &["--config", &config]);
    s.wait_ready(READY);
    let (desk, h1, zhang) = (&tokens["desk"], &tokens["h1-staff"], &tokens["zhang"]);
    wait_for_tables(&s, desk);
    let get = |path: &str, token: Option<&str>| {
        let headers: Vec<String> = token.map(bearer).into_iter().collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        http_request(s.port, path, &headers).unwrap_or_else(|| panic!("no answer to {path}"))
    };
    let may = format!("/v1/practitioners/{P_HERE}?at=2026-05-10");
    let elsewhere = format!("/v1/practitioners/{P_ELSEWHERE}?at=2026-05-10");

    // 401: no token, an unknown one, a prefix of a real one, the SHA-256 the file holds.
    let digest = std::fs::read_to_string(env.path("tokens.toml")).unwrap();
    let digest = digest.lines().find(|l| l.starts_with("sha256")).unwrap().split('"').nth(1).unwrap().to_owned();
    for token in [None, Some("not-a-token"), Some(&desk[..20]), Some(digest.as_str())] {
        let (code, body) = get(&may, token);
        assert_eq!(code, 401, "{token:?}: {body}");
        assert!(!body.contains("desk") && !body.contains("suspended"), "{body}");
    }
    let (code, _) = http_post(s.port, "/v1/decide", &[&bearer("not-a-token")], b"{}").unwrap();
    assert_eq!(code, 401);

    // Scope all: anyone.
    let (code, body) = get(&may, Some(desk));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["status"], "suspended");
    assert!(json(&body)["why"].as_str().unwrap().contains(BASIS), "{body}");
    assert_eq!(get(&elsewhere, Some(desk)).0, 200);
    assert_eq!(get(&format!("/v1/institutions/{H2}"), Some(desk)).0, 200);

    // Scope institution H1: its staff while registered there, itself; not others.
    let (code, body) = get(&may, Some(h1));
    assert_eq!(code, 200, "{body}");
    let regs = &json(&body)["record"]["registrations"];
    assert!(regs.as_array().unwrap().iter().all(|r| r["institution"] == H1), "{body}");
    let (code, body) = get(&elsewhere, Some(h1));
    assert_eq!(code, 403, "{body}");
    let why = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(why.contains("h1-staff") && why.contains(H1) && why.contains(P_ELSEWHERE), "{why}");
    // Before the registration began, the person was not its staff.
    assert_eq!(get(&format!("/v1/practitioners/{P_HERE}?at=2019-06-01"), Some(h1)).0, 403);
    assert_eq!(get(&format!("/v1/institutions/{H1}"), Some(h1)).0, 200);
    let (code, body) = get(&format!("/v1/institutions/{H2}"), Some(h1));
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("institution H11010500001 only"), "{body}");

    // Scope practitioner: their own code only.
    assert_eq!(get(&may, Some(zhang)).0, 200);
    let (code, body) = get(&elsewhere, Some(zhang));
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains(&format!("practitioner {P_HERE} only")), "{body}");
    assert_eq!(get(&format!("/v1/institutions/{H1}"), Some(zhang)).0, 403);

    // /v1/decide by scope: an institution decides its own lines, a practitioner lines naming them.
    let here = line("S1", H1, "2026-05-10 09:00:00", P_HERE, None);
    let there = line("S2", H2, "2026-05-10 09:00:00", P_ELSEWHERE, None);
    let post = |token: &str, body: &str| http_post(s.port, "/v1/decide", &[&bearer(token)], body.as_bytes()).unwrap();
    assert_eq!(post(h1, &here).0, 200);
    let (code, body) = post(h1, &there);
    assert_eq!(code, 403, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains(H2), "{body}");
    assert_eq!(post(zhang, &here).0, 200);
    assert_eq!(post(zhang, &there).0, 403);
    assert_eq!(post(desk, &there).0, 200);

    // The query log: who, which endpoint, which code, what became of it — never the answer.
    let log = s.log_text();
    let queries = util::events(&log, "http_query");
    let find = |caller: &str, code: &str, outcome: &str| {
        queries.iter().any(|q| q["caller"] == caller && q["code"] == code && q["outcome"] == outcome)
    };
    assert!(find("desk", P_HERE, "answered"), "{queries:#?}");
    assert!(find("h1-staff", P_ELSEWHERE, "refused"), "{queries:#?}");
    assert!(find("zhang", H1, "refused"), "{queries:#?}");
    assert!(find("h1-staff", &format!("{H2}|{P_ELSEWHERE}"), "refused"), "{queries:#?}");
    assert!(find("zhang", &format!("{H1}|{P_HERE}"), "answered"), "{queries:#?}");
    // One line per authenticated query (but the wait for the table, which asked desk about H1).
    let asked =
        queries.iter().filter(|q| !(q["caller"] == "desk" && q["endpoint"] == "institutions" && q["code"] == H1));
    assert_eq!(asked.count(), 16, "one line per authenticated query:\n{queries:#?}");
    let allowed_fields = ["event", "caller", "scope", "peer", "endpoint", "code", "outcome", "level", "timestamp"];
    for q in &queries {
        for key in q.as_object().unwrap().keys() {
            assert!(allowed_fields.contains(&key.as_str()), "the query log says more than who and what: {q}");
        }
        assert_eq!(q["peer"], "127.0.0.1");
    }
    let unauthenticated = util::events(&log, "http_unauthenticated");
    assert_eq!(unauthenticated.len(), 5, "{unauthenticated:#?}");
    // No token, no answer and no name in the log.
    for secret in [desk.as_str(), h1, zhang, "not-a-token", &desk[..20], BASIS, "张三", "QH-2026-17"] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
    let metrics = s.get("/metrics").unwrap().1;
    assert!(
        metrics.contains("claimgate_http_queries_total{endpoint=\"practitioners\",outcome=\"refused\"} 3"),
        "{metrics}"
    );

    // A caller added to the file is known within seconds, one removed is gone: no restart.
    let mut more = tokens_file(&env, "tokens-next.toml", &[("desk-2", "all", None)]);
    let next = more.remove("desk-2").unwrap();
    let kept: String = std::fs::read_to_string(env.path("tokens.toml"))
        .unwrap()
        .split("[[caller]]")
        .filter(|c| c.contains("\"h1-staff\""))
        .map(|c| format!("[[caller]]{c}"))
        .collect();
    let rewritten = kept + &std::fs::read_to_string(env.path("tokens-next.toml")).unwrap();
    std::fs::write(env.path("tokens.toml"), rewritten).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&may, Some(&next)).0 != 200 {
        assert!(Instant::now() < deadline, "the new caller was never known:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(get(&may, Some(desk)).0, 401, "a removed caller still answered");
    assert_eq!(get(&may, Some(h1)).0, 200, "a kept caller was lost");
    // A file that no longer parses is refused; the callers before it stay.
    std::fs::write(env.path("tokens.toml"), "[[caller]]\nname = \"x\"\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while util::events(&s.log_text(), "http_tokens_invalid").is_empty() {
        assert!(Instant::now() < deadline, "the broken file was not reported:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(get(&may, Some(&next)).0, 200);
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
}

#[test]
fn the_institution_query_says_the_status_of_the_institution_and_each_department() {
    let env = Env::new("institution");
    publish_tables(&env);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    // No token configured: open, logged as anonymous.
    let ask = |path: &str| {
        let (code, body) = s.get(path).unwrap();
        (code, json(&body))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(&format!("/v1/institutions/{H1}")).1["record"].is_null() {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // February: the institution is open, department A03.06 suspended, B01 terminated from the 10th.
    let (code, feb) = ask(&format!("/v1/institutions/{H1}?at=2026-02-15%2010:00:00"));
    assert_eq!(code, 200, "{feb}");
    assert_eq!(feb["status"], "normal", "{feb}");
    assert_eq!(feb["at"], "2026-02-15 10:00:00");
    let depts: HashMap<String, (String, String)> = feb["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["department"].as_str().unwrap().to_owned(),
                (d["status"].as_str().unwrap().to_owned(), d["why"].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    assert_eq!(depts.len(), 2, "{feb}");
    assert_eq!(depts["A03.06"].0, "suspended");
    assert!(depts["A03.06"].1.contains("dept-a") && depts["A03.06"].1.contains("2026-03-01"), "{feb}");
    assert_eq!(depts["B01"].0, "terminated");
    assert!(depts["B01"].1.contains("until further notice"), "{feb}");
    // The writer gives a new record the held version + 1, not the file's.
    assert_eq!(feb["record"]["version"], 1);
    // Early February: B01 not yet terminated.
    let (_, early) = ask(&format!("/v1/institutions/{H1}?at=2026-02-05"));
    let b01 = early["departments"].as_array().unwrap().iter().find(|d| d["department"] == "B01").unwrap().clone();
    assert_eq!(b01["status"], "normal", "{early}");
    // July: the whole institution is suspended; the departments' lines say so too.
    let (_, july) = ask(&format!("/v1/institutions/{H1}?at=2026-07-15"));
    assert_eq!(july["status"], "suspended", "{july}");
    assert!(july["why"].as_str().unwrap().contains("whole-7"), "{july}");
    let a = july["departments"].as_array().unwrap().iter().find(|d| d["department"] == "A03.06").unwrap().clone();
    assert!(a["why"].as_str().unwrap().contains("the whole institution is suspended"), "{july}");
    // An institution without status history is normal, said so; malformed input is a 400 naming it.
    let (code, none) = ask(&format!("/v1/institutions/{H2}"));
    assert_eq!((code, none["status"].as_str(), none["record"].is_null()), (200, Some("normal"), true), "{none}");
    let (code, bad) = ask("/v1/institutions/D110105000123");
    assert_eq!(code, 400, "{bad}");
    let (code, bad) = ask(&format!("/v1/institutions/{H1}?at=yesterday"));
    assert_eq!(code, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("`at`"), "{bad}");
    let queries = util::events(&s.log_text(), "http_query");
    assert!(queries.iter().any(|q| q["caller"] == "anonymous" && q["code"] == H1 && q["endpoint"] == "institutions"));
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
}

#[test]
fn decide_gives_the_streams_decision_and_produces_nothing() {
    let env = Env::new("decide");
    env.generate(2_000, 3_000, 23);
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
    env.send(&env.path("claims.jsonl"));
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let outputs = env.answered(&env.path("claims.jsonl"), OUTPUTS, &|| s.log_text());
    let streamed: HashMap<_, _> =
        outputs.iter().filter(|o| !o.topic.ends_with("dlq")).map(|o| (identity(&o.value), o.value.clone())).collect();
    let dead: Vec<&serde_json::Value> = outputs.iter().filter(|o| o.topic.ends_with("dlq")).map(|o| &o.value).collect();
    let ends = |env: &Env| -> i64 {
        ["claims.accepted", "claims.rejected", "claims.dlq"]
            .iter()
            .map(|t| util::end_offsets_total(&env.broker, &env.topic(t)))
            .sum()
    };
    let before = ends(&env);

    // Every line again, through /v1/decide: the same decision record (but decided_at) for each one the
    // stream decided, a 400 naming the same field for each one it dead-lettered.
    let claims = std::fs::read(env.path("claims.jsonl")).unwrap();
    let claims: Vec<&[u8]> = claims.split(|c| *c == b'\n').filter(|l| !l.is_empty()).collect();
    let raw_of = |d: &serde_json::Value| -> Vec<u8> {
        match d["raw"].as_str() {
            Some(text) => text.as_bytes().to_vec(),
            None => base64::engine::general_purpose::STANDARD.decode(d["raw_base64"].as_str().unwrap()).unwrap(),
        }
    };
    let dead_by_raw: HashMap<Vec<u8>, &serde_json::Value> = dead.iter().map(|d| (raw_of(d), *d)).collect();
    let (mut same, mut rejected_with_rows, mut bad) = (0, 0, 0);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for bytes in &claims {
        let text = String::from_utf8_lossy(bytes);
        let (code, body) = http_post(s.port, "/v1/decide", &[], bytes).unwrap();
        if code == 400 {
            let answer = json(&body);
            let d = dead_by_raw
                .get(*bytes)
                .unwrap_or_else(|| panic!("a 400 for a line the stream decided: {body}\n{text}"));
            assert_eq!((&answer["field"], &answer["error"]), (&d["field"], &d["error"]), "{body}\n{text}");
            bad += 1;
            continue;
        }
        assert_eq!(code, 200, "{body}\n{text}");
        let answer = json(&body);
        let decision = &answer["decision"];
        let mine = streamed.get(&identity(decision)).unwrap_or_else(|| panic!("no stream decision for {text}"));
        assert_eq!(without_time(decision), without_time(mine), "/v1/decide and the stream differ for {text}");
        assert_eq!(answer["verdict"], mine["verdict"]);
        assert_eq!(answer["reason"], mine["reason"]);
        assert_eq!(answer["rule"], mine["rule"]);
        let reason = answer["reason"].as_str().unwrap().to_owned();
        assert!(answer["why"].as_str().unwrap().contains(&reason) || reason == "OK", "{body}");
        if matches!(reason.as_str(), "PRACTITIONER_SUSPENDED" | "PRACTITIONER_TERMINATED" | "INSTITUTION_SUSPENDED") {
            let rows = answer["status_rows"].as_array().unwrap();
            let decisive: Vec<_> = rows.iter().filter(|r| r["decisive"] == true).collect();
            assert_eq!(decisive.len(), 1, "{body}");
            let row = decisive[0];
            assert_eq!(row["status"], reason.rsplit('_').next().unwrap().to_ascii_lowercase(), "{body}");
            let t = decision["fee_ocur_time"].as_str().unwrap();
            assert!(row["from"].as_str().unwrap() <= t, "{body}");
            assert!(row["until"].as_str().is_none_or(|u| t < u), "{body}");
            let version = if reason.starts_with("INSTITUTION") {
                &decision["institution_version"]
            } else {
                &decision["practitioner_version"]
            };
            assert_eq!(&row["version"], version, "{body}");
            rejected_with_rows += 1;
        }
        *reasons.entry(reason).or_default() += 1;
        same += 1;
    }
    assert_eq!(same, streamed.len(), "{reasons:?}");
    assert_eq!(bad, dead_by_raw.len());
    assert!(rejected_with_rows > 10 && reasons.len() >= 4, "too few kinds of decision to mean much: {reasons:?}");
    assert!(bad > 0, "the generated day has no malformed line");
    // Nothing produced.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ends(&env), before, "/v1/decide produced records");
    let queries = util::events(&s.log_text(), "http_query");
    assert_eq!(queries.iter().filter(|q| q["endpoint"] == "decide").count(), claims.len());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
}

#[test]
fn malformed_decide_bodies_are_a_400_naming_the_field_never_a_panic() {
    let env = Env::new("malformed");
    publish_tables(&env);
    let mut s = env.stream("g", &[]);
    s.wait_ready(READY);
    let good = line("S1", H1, "2026-05-10 09:00:00", P_HERE, None);
    let post = |body: &[u8]| {
        let (code, text) = http_post(s.port, "/v1/decide", &[], body).expect("an answer");
        (code, text)
    };
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (good.replace("\"bilg_dr_codg\":\"D110105000123\",", "").into_bytes(), Some("bilg_dr_codg")),
        (good.replace("2026-05-10 09:00:00", "2026-13-40 99:00:00").into_bytes(), Some("fee_ocur_time")),
        (good.replace("\"10.00\"", "\"ten\"").into_bytes(), Some("det_item_fee_sumamt")),
        (good.replace(H1, "X1").into_bytes(), Some("fixmedins_code")),
        (good.replace("\"med_type\":\"11\"", "\"med_type\":[11]").into_bytes(), Some("med_type")),
        (b"not json at all".to_vec(), None),
        (b"[1,2,3]".to_vec(), None),
        (b"{\"feedetl_sn\":".to_vec(), None),
        (vec![0xff, 0xfe, b'{', b'}'], None),
        (b"   ".to_vec(), None),
        (b"".to_vec(), None),
    ];
    for (body, field) in &cases {
        let (code, text) = post(body);
        assert_eq!(code, 400, "{:?}: {text}", String::from_utf8_lossy(body));
        let answer = json(&text);
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        if let Some(f) = field {
            assert_eq!(answer["field"], *f, "{text}");
            assert!(answer["error"].as_str().unwrap().contains(f), "the message names the field: {text}");
        }
    }
    // Over limits.max_message_bytes: 413, named.
    let (code, text) = post(format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).as_bytes());
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("limits.max_message_bytes"), "{text}");
    // Still alive and well, and a good line is decided.
    assert_eq!(s.get("/healthz").map(|r| r.0), Some(200));
    let (code, text) = post(good.as_bytes());
    assert_eq!(code, 200, "{text}");
    let log = s.log_text();
    assert!(!log.contains("panicked"), "{log}");
    let bad = util::events(&log, "http_query").iter().filter(|q| q["outcome"] == "bad_request").count();
    assert_eq!(bad, cases.len() + 1);
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
}

#[test]
fn a_tokens_file_is_checked_at_start_and_cannot_be_combined_with_the_shared_token() {
    let env = Env::new("tokfile");
    std::fs::write(env.path("bad.toml"), "[[caller]]\nname = \"desk\"\nsha256 = \"abc\"\nscope = \"all\"\n").unwrap();
    let config = config_with_tokens(&env, "bad.toml");
    let out = std::process::Command::new(util::bin())
        .args(["stream", "--brokers", &env.broker, "--http", "127.0.0.1:0", "--config", &config])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("setting `http.tokens_file`") && text.contains("caller[0] (`desk`).sha256"), "{text}");
    let out = std::process::Command::new(util::bin())
        .args(["stream", "--brokers", &env.broker, "--http", "127.0.0.1:0", "--config", &config])
        .env("CLAIMGATE_HTTP__TOKEN", "shared-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("setting `http.token` cannot be combined with `http.tokens_file`"), "{text}");
    assert!(!text.contains("shared-secret"), "{text}");
    // `tokens new` refuses what the stream would refuse.
    let out = std::process::Command::new(util::bin())
        .args(["tokens", "new", "--name", "x", "--scope", "institution", "--code", "D110105000123"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".code"), "{}", String::from_utf8_lossy(&out.stderr));
}
