//! Helpers of the integration tests: the broker that `scripts/test.sh` started, per-test topics, the
//! `claimgate` binary as a child process, and readers of the output topics.

#![allow(dead_code)]

pub mod broker;
pub mod cluster;
pub mod faults;
pub mod load;
/// The tests' own reading of records.md's claim line (also the oracle of `tests/fuzz_claims.rs`).
#[path = "../oracle/mod.rs"]
pub mod oracle;
pub mod privacy;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use claimgate::synth::{GenConfig, World};

/// The broker of the test run: `scripts/test.sh` starts one and sets `CLAIMGATE_TEST_BROKERS`.
pub fn broker() -> String {
    std::env::var("CLAIMGATE_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "CLAIMGATE_TEST_BROKERS is not set: run the integration tests with scripts/test.sh, which starts the broker"
        )
    })
}

/// The claimgate binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_claimgate"))
}

/// Runs claimgate to completion; panics with its output if it fails.
pub fn claimgate(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().expect("run claimgate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "claimgate {args:?} failed:\n{text}");
    text
}

static PORT: AtomicU16 = AtomicU16::new(0);

/// A free loopback port below the kernel's ephemeral range (from 32768), for a broker that is killed
/// and restarted on the same port: in between, the kernel could give an ephemeral port to any client's
/// connection, and the restarted broker would not bind.
pub fn restartable_port() -> u16 {
    use rand::{RngExt, SeedableRng};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(u64::from(nanos) ^ u64::from(std::process::id()) << 32);
    loop {
        let p: u16 = rng.random_range(20_000..32_700);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() && PORT.swap(p, Ordering::Relaxed) != p {
            return p;
        }
    }
}

/// A free loopback port for an HTTP listener.
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if PORT.swap(p, Ordering::Relaxed) != p {
            return p;
        }
    }
}

/// One test's own topics, group and files.
pub struct Env {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    /// The broker the test's topics live on: the shared one of `scripts/test.sh`, or a test's own.
    pub broker: String,
}

impl Env {
    /// Creates the six topics under a prefix unique to this test and process, on the shared broker.
    pub fn new(name: &str) -> Env {
        Env::on(&broker(), name)
    }

    /// Creates the six topics on a given broker (e.g. a test's own, see [`broker::OwnBroker`]).
    pub fn on(broker: &str, name: &str) -> Env {
        let env = Env::without_topics(broker, name);
        env.create_topics();
        env
    }

    /// An Env whose topics are not created (for tests of missing topics, or that make some themselves).
    pub fn without_topics(broker: &str, name: &str) -> Env {
        let prefix = format!("t{}-{name}-", std::process::id());
        Env { prefix, dir: tempfile::tempdir().expect("tempdir"), broker: broker.to_owned() }
    }

    /// Creates those of the six topics that do not exist yet (`claimgate topics create`).
    pub fn create_topics(&self) {
        claimgate(&["topics", "create", "--brokers", &self.broker, "--prefix", &self.prefix, "--partitions", "4"]);
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a synthetic data set into the test's directory: practitioners, institutions, claims.
    pub fn generate(&self, practitioners: u64, claims: u64, seed: u64) -> World {
        let world = World::new(GenConfig { seed, practitioners, claims, malformed_rate: 0.01, ..GenConfig::default() });
        let mut p = std::fs::File::create(self.path("practitioners.jsonl")).unwrap();
        world.write_practitioners(&mut p, |_| {}).unwrap();
        let mut i = std::fs::File::create(self.path("institutions.jsonl")).unwrap();
        world.write_institutions(&mut i).unwrap();
        let mut c = std::fs::File::create(self.path("claims.jsonl")).unwrap();
        for line in world.claims() {
            c.write_all(&line.bytes).unwrap();
            c.write_all(b"\n").unwrap();
        }
        world
    }

    /// Publishes the test's status files to its status topics.
    pub fn publish_tables(&self, practitioners: &Path, institutions: Option<&Path>) {
        let mut args = vec![
            "tables".to_owned(),
            "publish".into(),
            "--brokers".into(),
            self.broker.clone(),
            "--practitioners".into(),
            practitioners.display().to_string(),
            "--topic-practitioners".into(),
            self.topic("practitioners"),
            "--topic-institutions".into(),
            self.topic("institutions"),
        ];
        if let Some(i) = institutions {
            args.push("--institutions".into());
            args.push(i.display().to_string());
        }
        claimgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// What the test's status topics hold, as JSON Lines files (`topic-practitioners.jsonl`,
    /// `topic-institutions.jsonl`): the records the stream decides with, versions as the writers set
    /// them (the held version + 1, not the files').
    pub fn dump_tables(&self) -> (PathBuf, PathBuf) {
        let (p, i) = (self.path("topic-practitioners.jsonl"), self.path("topic-institutions.jsonl"));
        claimgate(&[
            "tables",
            "dump",
            "--brokers",
            &self.broker,
            "--topic-practitioners",
            &self.topic("practitioners"),
            "--topic-institutions",
            &self.topic("institutions"),
            "--out-practitioners",
            &p.display().to_string(),
            "--out-institutions",
            &i.display().to_string(),
        ]);
        (p, i)
    }

    /// Sends a file of claim lines to the test's claims topic.
    pub fn send(&self, claims: &Path) {
        claimgate(&[
            "send",
            "--brokers",
            &self.broker,
            "--topic",
            &self.topic("claims"),
            &claims.display().to_string(),
        ]);
    }

    /// Starts `claimgate stream` on the test's topics.
    pub fn stream(&self, group: &str, extra: &[&str]) -> Stream {
        self.stream_env(group, extra, &[])
    }

    /// Starts `claimgate stream` with extra environment variables (e.g. `CLAIMGATE_HTTP__TOKEN`).
    pub fn stream_env(&self, group: &str, extra: &[&str], vars: &[(&str, &str)]) -> Stream {
        self.stream_on(group, free_port(), extra, vars)
    }

    /// Starts `claimgate stream` with its operations port on `port` (a restart of the same instance
    /// slot keeps it: the default transactional id depends on it).
    pub fn stream_on(&self, group: &str, port: u16, extra: &[&str], vars: &[(&str, &str)]) -> Stream {
        self.stream_logging(group, port, extra, vars, None)
    }

    /// Starts `claimgate stream` with its standard error on `stderr` (e.g. `/dev/full`, a disk with no
    /// space left) instead of the test's log file; [`Stream::log_text`] is then empty.
    pub fn stream_with_stderr(&self, group: &str, extra: &[&str], stderr: &Path) -> Stream {
        self.stream_logging(group, free_port(), extra, &[], Some(stderr))
    }

    fn stream_logging(
        &self,
        group: &str,
        port: u16,
        extra: &[&str],
        vars: &[(&str, &str)],
        stderr: Option<&Path>,
    ) -> Stream {
        let log = self.path(&format!("stream-{group}-{port}.log"));
        let mut args: Vec<String> = vec![
            "stream".into(),
            "--brokers".into(),
            self.broker.clone(),
            "--group".into(),
            format!("{}{group}", self.prefix),
            "--http".into(),
            format!("127.0.0.1:{port}"),
            "--log-format".into(),
            "json".into(),
        ];
        for t in ["claims", "accepted", "rejected", "dlq", "practitioners", "institutions", "status-dlq", "retro"] {
            let topic = match t {
                "accepted" => self.topic("claims.accepted"),
                "rejected" => self.topic("claims.rejected"),
                "dlq" => self.topic("claims.dlq"),
                "status-dlq" => self.topic("status.dlq"),
                "retro" => self.topic("status.retro"),
                other => self.topic(other),
            };
            // A test may name a topic itself (e.g. one that does not exist).
            if !extra.contains(&format!("--topic-{t}").as_str()) {
                args.push(format!("--topic-{t}"));
                args.push(topic);
            }
        }
        // A short session timeout: the test broker holds a group join for about half of it (BROKER.md).
        for p in ["session.timeout.ms=6000", "heartbeat.interval.ms=500"] {
            args.push("-X".into());
            args.push(p.into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let file = match stderr {
            Some(path) => std::fs::OpenOptions::new().write(true).open(path).expect("open the log's target"),
            None => std::fs::File::create(&log).unwrap(),
        };
        let child = Command::new(bin())
            .args(&args)
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start claimgate stream");
        Stream { child: Some(child), port, log }
    }

    /// Reads the output topics until every line of the JSON Lines file `claims` has its output — a
    /// decision or a dead letter, as the tests' own reading of records.md says — and then until nothing
    /// more comes for a second; panics (with `log`) if `wait` passes first. Duplicates are returned too:
    /// at least once allows them, and the caller checks they are identical.
    pub fn answered(&self, claims: &Path, wait: Duration, log: &dyn Fn() -> String) -> Vec<Output> {
        let lines: Vec<Vec<u8>> = std::fs::read(claims)
            .expect("claims file")
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        self.answered_lines(&lines, wait, log)
    }

    /// [`Env::answered`] for lines given as bytes.
    pub fn answered_lines(&self, lines: &[Vec<u8>], wait: Duration, log: &dyn Fn() -> String) -> Vec<Output> {
        let expected: std::collections::HashSet<load::Key> = lines.iter().map(|l| load::expected_key(l)).collect();
        let topics = [self.topic("claims.accepted"), self.topic("claims.rejected"), self.topic("claims.dlq")];
        let mut reader = load::Reader::new(&self.broker, &topics);
        if !reader.until_answered(&expected, wait) {
            let seen: std::collections::HashSet<load::Key> = reader.records.iter().map(load::output_key).collect();
            let missing = expected.iter().filter(|k| !seen.contains(k)).count();
            panic!("{missing} of {} lines have no output after {wait:?}:\n{}", lines.len(), log());
        }
        reader.drain(Duration::from_secs(1));
        reader
            .records
            .iter()
            .map(|r| Output { topic: r.topic.clone(), key: r.key.clone(), value: r.value(), raw: r.raw.clone() })
            .collect()
    }

    /// Reads the three output topics from the beginning until `expected` records arrived (or `wait`
    /// passed); returns (topic, key, value) of each.
    pub fn outputs(&self, expected: usize, wait: Duration) -> Vec<Output> {
        read_topics_from(
            &self.broker,
            &[self.topic("claims.accepted"), self.topic("claims.rejected"), self.topic("claims.dlq")],
            expected,
            wait,
        )
    }
}

/// One output record.
#[derive(Clone, Debug)]
pub struct Output {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: serde_json::Value,
    pub raw: Vec<u8>,
}

/// A committed-only reader with every partition of `topics` assigned from the beginning (no group
/// membership: tests read outputs like a global table).
pub fn reader_from_beginning(broker: &str, topics: &[String]) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "claimgate-tests-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(30)).expect("metadata");
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(t, p.id(), Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Reads topics of the shared broker from the beginning until `expected` records arrived or `wait` passed.
pub fn read_topics(topics: &[String], expected: usize, wait: Duration) -> Vec<Output> {
    read_topics_from(&broker(), topics, expected, wait)
}

/// Reads topics from the beginning until `expected` records arrived or `wait` passed.
pub fn read_topics_from(broker: &str, topics: &[String], expected: usize, wait: Duration) -> Vec<Output> {
    let consumer = reader_from_beginning(broker, topics);
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let raw = m.payload().unwrap_or_default().to_vec();
            out.push(Output {
                topic: m.topic().to_owned(),
                key: m.key().map(<[u8]>::to_vec),
                value: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
                raw,
            });
        }
    }
    out
}

/// A running `claimgate stream`.
pub struct Stream {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Stream {
    /// GET a path on the operations port: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("claimgate stream exited early ({status}):\n{}", self.log_text());
            }
            if self.get("/readyz").is_some_and(|(s, _)| s == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("claimgate stream not ready after {wait:?}:\n{}", self.log_text());
    }

    /// `/metrics` as it is now; panics if the operations port does not answer 200, so that a failed
    /// scrape can never pass for a zero.
    pub fn scrape(&self) -> Scrape {
        match self.get("/metrics") {
            Some((200, body)) => Scrape(body),
            other => panic!("GET /metrics failed ({other:?}):\n{}", self.log_text()),
        }
    }

    /// A counter or gauge from `/metrics`, summed over its label sets; panics if the scrape fails or
    /// the metric is absent.
    pub fn metric(&self, name: &str) -> f64 {
        self.scrape().value(name)
    }

    /// The metric if the scrape worked and the metric is there: for loops that wait for a process that
    /// may still be starting.
    pub fn try_metric(&self, name: &str) -> Option<f64> {
        match self.get("/metrics") {
            Some((200, body)) => Scrape(body).get(name),
            _ => None,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; returns the exit code.
    pub fn terminate(&mut self, wait: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills with SIGKILL (a crash) and reaps.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One scrape of `/metrics`.
pub struct Scrape(pub String);

impl Scrape {
    /// The metric summed over its label sets; `None` if no series of that name is there.
    pub fn get(&self, name: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .0
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The metric; panics if it is absent.
    pub fn value(&self, name: &str) -> f64 {
        self.get(name).unwrap_or_else(|| panic!("metric {name} is not in /metrics:\n{}", self.0))
    }

    /// One series, by its labels exactly as rendered (`verdict="reject",reason="OK"`); `None` if absent.
    pub fn series(&self, name: &str, labels: &str) -> Option<f64> {
        let head = format!("{name}{{{labels}}} ");
        self.0.lines().find_map(|l| l.strip_prefix(head.as_str())?.trim().parse().ok())
    }

    /// A counter that the program creates at its first increment (labelled by what happened): absent
    /// means none yet. The scrape itself worked.
    pub fn counter(&self, name: &str) -> f64 {
        self.get(name).unwrap_or(0.0)
    }
}

/// A minimal HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, path, &[])
}

/// A GET with extra header lines.
pub fn http_request(port: u16, path: &str, headers: &[&str]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Fen from an amount in yuan as the reports and decisions print it (`1,234.50`, `-0.05`, `12`), by
/// the tests' own reading.
pub fn fen(text: &str) -> i64 {
    let t = text.trim().replace(',', "");
    let (neg, t) = t.strip_prefix('-').map_or((false, t.as_str()), |r| (true, r));
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    assert!(frac.len() <= 2, "not an amount: {text:?}");
    let v = int.parse::<i64>().unwrap_or_else(|_| panic!("not an amount: {text:?}")) * 100
        + format!("{frac:0<2}").parse::<i64>().unwrap_or_else(|_| panic!("not an amount: {text:?}"));
    if neg { -v } else { v }
}

/// A decision's identity: (fixmedins_code, mdtrt_id, feedetl_sn).
pub fn identity(v: &serde_json::Value) -> (String, String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (s("fixmedins_code"), s("mdtrt_id"), s("feedetl_sn"))
}

/// A decision without `decided_at`, for byte-for-byte comparison.
pub fn without_time(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("decided_at");
        o.remove("received_at");
    }
    v
}

/// Reads a JSON Lines file into values.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Counts outputs by topic suffix (`accepted`, `rejected`, `dlq`).
pub fn by_topic(outputs: &[Output]) -> HashMap<&'static str, usize> {
    let mut m = HashMap::new();
    for o in outputs {
        let k = if o.topic.ends_with("accepted") {
            "accepted"
        } else if o.topic.ends_with("rejected") {
            "rejected"
        } else {
            "dlq"
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

/// Deletes topics (the status-outage test): panics if the broker refuses.
pub fn delete_topics(broker: &str, topics: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker).create().expect("admin client");
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt.block_on(admin.delete_topics(&names, &opts)).expect("delete topics");
    for r in results {
        if let Err((name, e)) = r {
            panic!("cannot delete topic {name}: {e}");
        }
    }
}

/// Sets a topic's configuration (e.g. `max.message.bytes`); panics if the broker refuses. The
/// (non-incremental) AlterConfigs request replaces the topic's whole configuration: give every setting
/// that must stay, `cleanup.policy` of a compacted topic included.
pub fn alter_topic_config(broker: &str, topic: &str, entries: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker).create().expect("admin client");
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in entries {
        change = change.set(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt.block_on(admin.alter_configs(&[change], &opts)).expect("alter configs");
    for r in results {
        if let Err((_, e)) = r {
            panic!("cannot alter the configuration of {topic}: {e}");
        }
    }
}

/// The offsets a consumer group has committed on `topic`, summed over its partitions (offsets are
/// the next to read, so the sum is how many lines of a topic starting at 0 the group has finished).
pub fn committed_total(broker: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30)).expect("committed offsets");
    committed.elements().iter().filter_map(|e| e.offset().to_raw()).filter(|o| *o >= 0).sum()
}

/// The end offsets (high watermarks) of `topic`'s partitions, summed: how many offsets it has used.
pub fn end_offsets_total(broker: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker).create().expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).expect("metadata");
    // A topic created a moment ago may not have its leaders elected yet: ask again for a while.
    let high = |p: i32| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((_, h)) => return h,
                Err(e) if Instant::now() >= deadline => panic!("watermarks of {topic}/{p}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    md.topics()[0].partitions().iter().map(|p| high(p.id())).sum()
}

/// Deletes every record of `topic` (its log start moves to its end), as retention would.
pub fn delete_all_records(broker: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker).create().expect("admin client");
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker).create().expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(30)).expect("watermarks");
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(high)).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let result = rt.block_on(admin.delete_records(&tpl, &opts)).expect("delete records");
    for e in result.elements() {
        assert!(e.error().is_ok(), "cannot delete the records of {topic}/{}: {:?}", e.partition(), e.error());
    }
}

/// The JSON log lines of `log` whose `event` is `event`.
pub fn events(log: &str, event: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}
