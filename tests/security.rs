//! Security of `claimgate stream` through the binary (issue 6): TLS and SASL settings reach librdkafka;
//! secrets never appear in logs or `/metrics`; the operations port binds to loopback by default and can
//! require a bearer token for `/v1/…`; `psn_no` and names never reach the logs, dead letters included.

mod util;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claimgate::synth::{GenConfig, Line, World};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use util::load::{Reader, expected_keys};
use util::privacy::{assert_masked, personal_data};
use util::{Env, Stream, http_request};

const READY: Duration = Duration::from_secs(90);

/// Secrets given to the runs below, each through a different layer.
const SASL_PASSWORD: &str = "secret-xyz-7f3a"; // -X
const HTTP_TOKEN: &str = "token-secret-91c2"; // environment
const KEY_PASSWORD: &str = "keypass-secret-55e0"; // TOML file

fn assert_no_secret(text: &str, what: &str) {
    for secret in [SASL_PASSWORD, HTTP_TOKEN, KEY_PASSWORD] {
        assert!(!text.contains(secret), "a secret in the {what}:\n{text}");
    }
}

/// Polls `/readyz` and `/metrics` for `wait`: never ready, nothing decided, no secret in the metrics.
fn never_ready(s: &Stream, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut metrics = String::new();
    while Instant::now() < deadline {
        if let Some((status, _)) = s.get("/readyz") {
            assert_eq!(status, 503, "ready without reaching the broker:\n{}", s.log_text());
        }
        if let Some((_, body)) = s.get("/metrics") {
            assert_no_secret(&body, "metrics");
            metrics = body;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    metrics
}

#[test]
fn tls_and_sasl_settings_reach_librdkafka_and_no_secret_is_shown() {
    let env = Env::new("sasl");
    std::fs::write(env.path("secret.toml"), format!("[kafka]\n\"ssl.key.password\" = \"{KEY_PASSWORD}\"\n")).unwrap();
    let config = env.path("secret.toml").display().to_string();
    let common = |protocol: &'static str| -> Vec<String> {
        [
            "--config",
            &config,
            "-X",
            &format!("security.protocol={protocol}"),
            "-X",
            "sasl.mechanism=PLAIN",
            "-X",
            "sasl.username=claimgate-test",
            "-X",
            &format!("sasl.password={SASL_PASSWORD}"),
            // The test broker speaks plain Kafka: give up a TLS handshake after 2 s, so that it shows.
            "-X",
            "socket.connection.setup.timeout.ms=2000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let tls_args = common("SASL_SSL");
    let sasl_args = common("SASL_PLAINTEXT");
    let vars = [("CLAIMGATE_HTTP__TOKEN", HTTP_TOKEN)];
    let mut tls = env.stream_env("tls", &tls_args.iter().map(String::as_str).collect::<Vec<_>>(), &vars);
    let mut sasl = env.stream_env("sasl", &sasl_args.iter().map(String::as_str).collect::<Vec<_>>(), &vars);
    let metrics = never_ready(&tls, Duration::from_secs(12));
    never_ready(&sasl, Duration::from_secs(1));
    tls.kill();
    sasl.kill();
    let (tls_log, sasl_log) = (tls.log_text(), sasl.log_text());

    // Passed through: the clients connect with TLS (a handshake the broker cannot answer) and try a SASL
    // PLAIN login (which the broker refuses).
    assert!(tls_log.contains("sasl_ssl://") && tls_log.contains("SSL_HANDSHAKE"), "no TLS attempt:\n{tls_log}");
    assert!(sasl_log.contains("sasl_plaintext://") && sasl_log.contains("SASL"), "no SASL attempt:\n{sasl_log}");
    assert!(sasl_log.contains("PLAIN"), "the SASL mechanism did not reach librdkafka:\n{sasl_log}");
    // Never shown: not in the start-up line that prints the configuration, nor anywhere else.
    for log in [&tls_log, &sasl_log] {
        assert_no_secret(log, "logs");
        let starting = util::events(log, "starting");
        let config = starting[0]["config"].as_str().unwrap();
        assert!(config.contains("\"sasl.password\": \"***\""), "{config}");
        assert!(config.contains("\"ssl.key.password\": \"***\""), "{config}");
        assert!(config.contains("http.token: Some(\"***\")"), "{config}");
        assert!(config.contains("\"sasl.username\": \"claimgate-test\""), "not a secret: shown\n{config}");
    }
    assert!(metrics.contains("claimgate_broker_warnings_total"), "{metrics}");
}

/// A non-loopback address of this machine, if it has one (the source address of a route to the world;
/// a UDP `connect` sends nothing).
fn outside_address() -> Option<std::net::IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn the_operations_port_binds_to_loopback_by_default() {
    let env = Env::new("loopback");
    // No --http: the default address. Built by hand since the helper always names a port.
    let log = env.path("default-http.log");
    let mut args =
        vec!["stream".to_owned(), "--brokers".into(), env.broker.clone(), "--log-format".into(), "json".into()];
    for t in ["claims", "practitioners", "institutions"] {
        args.extend([format!("--topic-{t}"), env.topic(t)]);
    }
    for (flag, t) in [("accepted", "claims.accepted"), ("rejected", "claims.rejected"), ("dlq", "claims.dlq")] {
        args.extend([format!("--topic-{flag}"), env.topic(t)]);
    }
    let child = Command::new(util::bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Stream { child: Some(child), port: 9898, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    let listening = loop {
        let text = s.log_text();
        if let Some(v) = util::events(&text, "http_listening").first() {
            break Some(v["addr"].as_str().unwrap().to_owned());
        }
        if s.child.as_mut().unwrap().try_wait().unwrap().is_some() {
            break None;
        }
        assert!(Instant::now() < deadline, "no http_listening line:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    match listening {
        Some(addr) => {
            assert_eq!(addr, "127.0.0.1:9898");
            assert_eq!(s.get("/healthz").map(|r| r.0), Some(200), "{}", s.log_text());
            if let Some(ip) = outside_address() {
                assert!(
                    TcpStream::connect_timeout(&(ip, 9898).into(), Duration::from_secs(2)).is_err(),
                    "the operations port answers on {ip}, not only on loopback"
                );
            }
            assert_eq!(s.terminate(Duration::from_secs(40)), Some(0), "{}", s.log_text());
        }
        None => {
            // Someone else holds the default port on this shared machine: the refusal still names it.
            let text = s.log_text();
            assert!(text.contains("setting `http.addr`: cannot listen on 127.0.0.1:9898"), "{text}");
            eprintln!("port 9898 is taken on this machine; checked the default address from the refusal");
        }
    }
}

#[test]
fn the_status_query_requires_the_bearer_token_when_one_is_set() {
    let env = Env::new("token");
    std::fs::write(
        env.path("p.jsonl"),
        r#"{"code":"D110105000123","name":"张三","registrations":[{"institution":"H11010500001","from":"2020-01-01"}],"periods":[],"version":1}"#.to_owned() + "\n",
    )
    .unwrap();
    env.publish_tables(&env.path("p.jsonl"), None);
    let mut s = env.stream_env("g", &[], &[("CLAIMGATE_HTTP__TOKEN", HTTP_TOKEN)]);
    s.wait_ready(READY);
    let path = "/v1/practitioners/D110105000123?at=2026-05-10";
    let ask = |headers: &[&str]| http_request(s.port, path, headers).map(|r| r.0);
    assert_eq!(ask(&[]), Some(401), "no token");
    assert_eq!(ask(&["Authorization: Bearer wrong"]), Some(401), "a wrong token");
    assert_eq!(ask(&[&format!("Authorization: Bearer {HTTP_TOKEN}x")]), Some(401), "a longer token");
    assert_eq!(ask(&[&format!("Authorization: Bearer {}", &HTTP_TOKEN[..5])]), Some(401), "a prefix");
    assert_eq!(ask(&[&format!("Authorization: Basic {HTTP_TOKEN}")]), Some(401), "another scheme");
    let (status, body) = http_request(s.port, path, &[&format!("Authorization: Bearer {HTTP_TOKEN}")]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"normal\"") && !body.contains("张三"), "{body}");
    // The operations endpoints stay open (they are on loopback by default).
    for open in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(s.get(open).map(|r| r.0), Some(200), "{open}");
    }
    let metrics = s.get("/metrics").unwrap().1;
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
    assert_no_secret(&metrics, "metrics");
    assert_no_secret(&s.log_text(), "logs");

    // Without a token, /v1/ is open.
    let mut open = env.stream("open", &[]);
    open.wait_ready(READY);
    assert_eq!(open.get(path).map(|r| r.0), Some(200));
    assert_eq!(open.terminate(Duration::from_secs(40)), Some(0));
}

#[test]
fn psn_no_and_names_never_reach_the_logs_dead_letters_included() {
    let env = Env::new("masked");
    let world = World::new(GenConfig {
        seed: 5,
        practitioners: 500,
        claims: 3_000,
        malformed_rate: 0.05,
        ..GenConfig::default()
    });
    let mut p = std::fs::File::create(env.path("practitioners.jsonl")).unwrap();
    world.write_practitioners(&mut p, |_| {}).unwrap();
    env.publish_tables(&env.path("practitioners.jsonl"), None);
    let mut lines: Vec<Line> = world.claims().collect();
    let (psn, names) = personal_data(&lines);
    let (a_psn, a_name) = (psn.iter().next().unwrap().clone(), names.iter().next().unwrap().clone());
    // Dead letters of every kind, each carrying a known psn_no and name: not JSON, not UTF-8, too
    // large, a bad field, a field of the wrong type holding the name.
    let good = lines.iter().find(|l| claimgate::record::Claim::parse(&l.bytes).is_ok()).unwrap();
    let good = String::from_utf8(good.bytes.clone()).unwrap();
    let mut extra: Vec<Vec<u8>> = vec![
        format!("psn_no={a_psn} bilg_dr_name={a_name} not json").into_bytes(),
        good.replacen("\"mdtrt_id\":\"", "\"mdtrt_id\":\"X1", 1)
            .replacen("\"fee_ocur_time\":\"", "\"fee_ocur_time\":\"bad", 1)
            .into_bytes(),
        good.replacen("\"mdtrt_id\":\"", "\"mdtrt_id\":\"X2", 1)
            .replacen("\"med_type\":", &format!("\"med_type\":\"{a_name}\",\"x\":"), 1)
            .into_bytes(),
        good.replacen("\"mdtrt_id\":\"", "\"mdtrt_id\":\"X3", 1)
            .replacen("\"psn_no\":", &format!("\"psn_no\":[\"{a_psn}\"],\"y\":"), 1)
            .into_bytes(),
        format!(
            "{{\"pad\":\"{}\",{}",
            "x".repeat(70_000),
            &good.replacen("\"mdtrt_id\":\"", "\"mdtrt_id\":\"X4", 1)[1..]
        )
        .into_bytes(),
    ];
    let mut not_utf8 = good.replacen("\"mdtrt_id\":\"", "\"mdtrt_id\":\"X5", 1).into_bytes();
    not_utf8.insert(10, 0xff);
    extra.push(not_utf8);
    lines.extend(extra.into_iter().map(|bytes| Line { key: String::new(), bytes }));
    let mut file = std::fs::File::create(env.path("claims.jsonl")).unwrap();
    for l in &lines {
        file.write_all(&l.bytes).unwrap();
        file.write_all(b"\n").unwrap();
    }
    drop(file);
    env.send(&env.path("claims.jsonl"));
    // A status record with the name in a field of the wrong type: refused, and said so in the log.
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &env.broker).create().unwrap();
    let bad = format!(r#"{{"code":"D110105000999","name":"{a_name}","version":"{a_name}"}}"#);
    producer.send(BaseRecord::to(&env.topic("practitioners")).key("D110105000999").payload(&bad)).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    // Debug logs: everything claimgate says, not just the default level.
    let mut s = env.stream("g", &["--log-level", "debug"]);
    s.wait_ready(READY);
    let expected = expected_keys(&lines);
    let mut reader = Reader::new(
        &env.broker,
        &[env.topic("claims.accepted"), env.topic("claims.rejected"), env.topic("claims.dlq")],
    );
    let done = reader.until_answered(&expected, Duration::from_secs(120));
    assert!(done, "not every line was answered:\n{}", s.log_text());
    assert_eq!(s.terminate(Duration::from_secs(40)), Some(0));
    let log = s.log_text();
    let dead = reader.records.iter().filter(|o| o.is_dead_letter()).count();
    assert!(dead >= 6, "the dead letters this test is about did not happen ({dead})");
    assert!(!util::events(&log, "status_record_invalid").is_empty(), "the bad status record was not reported:\n{log}");
    assert_masked(&log, &lines);

    // The same claims through `review`, with its dead letters, at debug level.
    let out = Command::new(util::bin())
        .args(["review", "--claims", &env.path("claims.jsonl").display().to_string()])
        .args(["--practitioners", &env.path("practitioners.jsonl").display().to_string()])
        .args(["--out", &env.path("review.jsonl").display().to_string()])
        .args(["--dead-letters", &env.path("dead.jsonl").display().to_string(), "--quiet"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_masked(&text, &lines);
}
