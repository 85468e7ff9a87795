//! One system under test on its own topics: `claimgate stream` (at least once, or exactly once), the
//! same with `--pass-through`, the Python peer (and its pass-through), or the Kafka Streams peer (at
//! least once, or `exactly_once_v2`). Started as a child process, ready when it decides its first
//! lines, stopped by its PID with SIGTERM (its clean shutdown), SIGKILL if that does not end it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::kafka::{Clock, GenProducer, GenStep, Reader, ReaderEnd, Sent, StepRec, Topics, gen_producer, generate};
use crate::pool::Pool;
use crate::schedule::Schedule;

/// Which system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// `claimgate stream`.
    Claimgate,
    /// `claimgate stream --pass-through`.
    PassThrough,
    /// The quixstreams peer.
    Peer,
    /// The quixstreams peer with `--pass-through`.
    PeerPassThrough,
    /// No system: the reader reads the claims topic itself (the broker's own round trip).
    Broker,
    /// `claimgate stream --exactly-once`.
    ClaimgateEos,
    /// The Kafka Streams peer, `at_least_once`.
    KafkaStreams,
    /// The Kafka Streams peer, `exactly_once_v2`.
    KafkaStreamsEos,
}

impl System {
    /// Name in the report and in file names.
    pub fn name(self) -> &'static str {
        match self {
            System::Claimgate => "claimgate",
            System::PassThrough => "pass-through",
            System::Peer => "peer",
            System::PeerPassThrough => "peer-pass-through",
            System::Broker => "broker",
            System::ClaimgateEos => "claimgate-eos",
            System::KafkaStreams => "kafka-streams",
            System::KafkaStreamsEos => "kafka-streams-eos",
        }
    }

    /// Every system, in the order the report lists them.
    pub const ALL: [System; 8] = [
        System::Claimgate,
        System::PassThrough,
        System::Broker,
        System::ClaimgateEos,
        System::KafkaStreams,
        System::KafkaStreamsEos,
        System::Peer,
        System::PeerPassThrough,
    ];

    /// Parses a name.
    pub fn parse(s: &str) -> Option<System> {
        System::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Decides claim lines (as opposed to passing them through, or no system at all).
    pub fn decides(self) -> bool {
        !matches!(self, System::PassThrough | System::PeerPassThrough | System::Broker)
    }

    /// Runs with an exactly-once guarantee.
    pub fn exactly_once(self) -> bool {
        matches!(self, System::ClaimgateEos | System::KafkaStreamsEos)
    }

    /// The Kafka Streams peer.
    pub fn is_kafka_streams(self) -> bool {
        matches!(self, System::KafkaStreams | System::KafkaStreamsEos)
    }

    /// `claimgate stream` in either guarantee.
    pub fn is_claimgate(self) -> bool {
        matches!(self, System::Claimgate | System::ClaimgateEos)
    }
}

/// What a session needs to start.
#[derive(Clone, Debug)]
pub struct Setup {
    pub brokers: String,
    pub claimgate: PathBuf,
    pub peer: Option<PathBuf>,
    /// The Kafka Streams peer's launcher (`loadtest/peers/kafka-streams/run.sh`).
    pub kstreams: Option<PathBuf>,
    /// The Kafka Streams peer's `-Xmx` (`KSTREAMS_HEAP`).
    pub kstreams_heap: String,
    /// Practitioner codes in the tables the sessions read.
    pub table_codes: u64,
    pub practitioners: PathBuf,
    pub institutions: PathBuf,
    pub work: PathBuf,
    pub partitions: i32,
    /// librdkafka properties for every client of the load test and of the systems under test.
    pub props: Vec<(String, String)>,
    /// Run identifier: part of every topic name.
    pub run_id: String,
    /// `fetch.wait.max.ms` of every consumer of the claims and decisions (systems under test and
    /// reader): the test broker answers a fetch only when this wait ends, not when data arrives.
    pub fetch_wait_ms: u32,
    /// The broker's PIDs (one per node of a cluster on this machine), to tell its CPU use from the
    /// machine's other users'.
    pub broker_pids: Vec<u32>,
    /// librdkafka properties for the systems under test only (the settings a latency/throughput
    /// trade-off varies), after `props`.
    pub system_props: Vec<(String, String)>,
    /// The generator's `linger.ms`.
    pub gen_linger_ms: u32,
    /// Keep each session's topics when it ends (by default they are deleted).
    pub keep_topics: bool,
}

/// A running system under test with its generator and reader.
pub struct Session {
    pub system: System,
    pub topics: Topics,
    child: Option<Child>,
    pid_file: PathBuf,
    pub http: Option<String>,
    pub log: PathBuf,
    producer: Arc<GenProducer>,
    pub reader: Option<Reader>,
    pool: Arc<Pool>,
    pub clock: Clock,
    next_step: u32,
    /// Lines sent by the last step.
    last_sent: u64,
    broker_pids: Vec<u32>,
    /// Seconds from the spawn to the last priming line decided.
    pub ready_seconds: f64,
    /// Seconds from the spawn to the first output.
    pub first_decision_seconds: f64,
    /// A state directory to remove when the session ends (a one-off instance's: Kafka Streams'
    /// RocksDB files would otherwise pile up, one set per step).
    scratch_state: Option<PathBuf>,
    /// The brokers, the run's `-X` properties and the session's topic prefix: every topic under it is
    /// deleted when the session ends, unless `--keep-topics`. A sweep makes a set of topics per step,
    /// and on the three-node cluster hundreds of idle partitions made every fetch dearer as a run went
    /// on (each fetch session walks all its partitions), so later steps measured the pile, not the
    /// system.
    own_topics: Option<OwnTopics>,
}

/// A session's topic prefix and how to reach the broker that holds its topics.
struct OwnTopics {
    brokers: String,
    props: Vec<(String, String)>,
    prefix: String,
}

/// Runs a claimgate subcommand to completion.
fn claimgate(setup: &Setup, args: &[&str]) -> Result<()> {
    let out = Command::new(&setup.claimgate)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", setup.claimgate.display()))?;
    if !out.status.success() {
        bail!("claimgate {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// GET a path on a local HTTP port; the status code and body.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}

/// Creates the six topics of a system under test under `prefix` (`claimgate topics create`: replication
/// factor as the broker's default, 3 on the three-node cluster with min.insync.replicas=2).
pub fn create_topics(setup: &Setup, prefix: &str) -> Result<()> {
    let parts = setup.partitions.to_string();
    claimgate(setup, &["topics", "create", "--brokers", &setup.brokers, "--prefix", prefix, "--partitions", &parts])
}

/// Stops a child process: SIGTERM (its clean shutdown), SIGKILL if it is still there after 30 s.
pub fn stop_child(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped (try_wait says it is
        // running), so the PID cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// Creates the run's shared status topics and publishes the generated tables to them (once per run:
/// the tables do not change during a sweep, and a system reads them whole at start-up).
pub fn publish_shared_tables(setup: &Setup) -> Result<()> {
    publish_tables_under(setup, &format!("lt{}-tables-", setup.run_id))
}

/// Creates the status topics under `prefix` and publishes the setup's tables to them.
pub fn publish_tables_under(setup: &Setup, prefix: &str) -> Result<()> {
    claimgate(setup, &["topics", "create", "--brokers", &setup.brokers, "--prefix", prefix, "--partitions", "1"])?;
    publish_tables(setup, &Topics::with_prefix(prefix))
}

/// Publishes the generated tables to a topic set's status topics.
fn publish_tables(setup: &Setup, topics: &Topics) -> Result<()> {
    claimgate(
        setup,
        &[
            "tables",
            "publish",
            "-q",
            "--brokers",
            &setup.brokers,
            "--practitioners",
            &setup.practitioners.display().to_string(),
            "--institutions",
            &setup.institutions.display().to_string(),
            "--topic-practitioners",
            &topics.practitioners,
            "--topic-institutions",
            &topics.institutions,
        ],
    )
}

/// A started system under test.
pub struct Launched {
    /// Its process (none for the broker alone).
    pub child: Option<Child>,
    /// Its operations address (claimgate).
    pub http: Option<String>,
    /// Its log.
    pub log: PathBuf,
}

/// claimgate's log level: `warn`, unless the extra arguments set one (the large table's restart
/// timeline, at `info`); `stream` refuses the flag twice.
fn log_args(extra: &[String]) -> &'static [&'static str] {
    if extra.iter().any(|a| a == "--log-level") { &[] } else { &["--log-level", "warn"] }
}

/// The name of a session's instance: the consumer group / application id and the state directory
/// derive from it (`opts.instance` when it is restarted, else the session's own topic prefix).
fn instance_name(opts: &StartOpts, prefix: &str) -> String {
    opts.instance.clone().unwrap_or_else(|| prefix.trim_end_matches('-').to_owned())
}

/// Starts the system under test on `topics` (nothing for the broker alone). Its librdkafka properties:
/// the run's `-X` ones, then the systems' own `-S` ones.
pub fn launch(setup: &Setup, system: System, topics: &Topics, prefix: &str, opts: &StartOpts) -> Result<Launched> {
    let log = setup.work.join(format!("{prefix}stream.log"));
    let logfile = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let group = match &opts.instance {
        Some(i) => format!("lt{}-{i}-group", setup.run_id),
        None => format!("{prefix}group"),
    };
    let instance = instance_name(opts, prefix);
    let props = || setup.props.iter().chain(&setup.system_props);
    let (child, http) = match system {
        System::Broker => (None, None),
        System::Claimgate | System::PassThrough | System::ClaimgateEos => {
            let addr = format!("127.0.0.1:{}", free_port()?);
            let mut cmd = Command::new(&setup.claimgate);
            cmd.args(["stream", "--brokers", &setup.brokers, "--group", &group, "--http", &addr])
                .args(log_args(&opts.claimgate_args))
                .args(["--topic-claims", &topics.claims, "--topic-accepted", &topics.accepted])
                .args(["--topic-rejected", &topics.rejected, "--topic-dlq", &topics.dlq])
                .args(["--topic-practitioners", &topics.practitioners])
                .args(["--topic-institutions", &topics.institutions])
                // The test broker holds a group join for about half the session timeout (BROKER.md).
                .args(["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"])
                .args(["-X", &format!("fetch.wait.max.ms={}", setup.fetch_wait_ms)]);
            for (k, v) in props() {
                cmd.args(["-X", &format!("{k}={v}")]);
            }
            match system {
                System::PassThrough => {
                    cmd.arg("--pass-through");
                }
                System::ClaimgateEos => {
                    cmd.arg("--exactly-once");
                }
                _ => {}
            }
            let state = setup.work.join("claimgate-state").join(&instance);
            for a in &opts.claimgate_args {
                cmd.arg(a.replace("{dir}", &state.display().to_string()));
            }
            let child = cmd
                .envs(opts.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .with_context(|| format!("cannot start {}", setup.claimgate.display()))?;
            (Some(child), Some(addr))
        }
        System::Peer | System::PeerPassThrough => {
            let peer = setup.peer.as_ref().context("no peer given (--peer loadtest/peers/run_peer.sh)")?;
            let ready = setup.work.join(format!("{prefix}ready"));
            let stats = setup.work.join(format!("{prefix}stats.json"));
            let _ = std::fs::remove_file(&ready);
            let mut cmd = Command::new(peer);
            cmd.args(["--brokers", &setup.brokers, "--group", &group])
                .args(["--claims-topic", &topics.claims, "--accepted-topic", &topics.accepted])
                .args(["--rejected-topic", &topics.rejected, "--dlq-topic", &topics.dlq])
                .args(["--practitioners-topic", &topics.practitioners])
                .args(["--institutions-topic", &topics.institutions])
                .args(["--ready-file", &ready.display().to_string()])
                .args(["--stats-file", &stats.display().to_string()])
                .args(["--consumer-config", "session.timeout.ms=6000"])
                .args(["--consumer-config", &format!("fetch.wait.max.ms={}", setup.fetch_wait_ms)]);
            for (k, v) in props() {
                cmd.args(["--consumer-config", &format!("{k}={v}")]);
                cmd.args(["--producer-config", &format!("{k}={v}")]);
            }
            if system == System::PeerPassThrough {
                cmd.arg("--pass-through");
            }
            let child = cmd
                .envs(opts.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .with_context(|| format!("cannot start {}", peer.display()))?;
            (Some(child), None)
        }
        System::KafkaStreams | System::KafkaStreamsEos => {
            let run = setup.kstreams.as_ref().context("no Kafka Streams peer given (--kstreams)")?;
            let ready = setup.work.join(format!("{prefix}ready"));
            let stats = setup.work.join(format!("{prefix}stats.json"));
            let state = setup.work.join("kstreams-state").join(&instance);
            let _ = std::fs::remove_file(&ready);
            let guarantee = if system.exactly_once() { "exactly_once_v2" } else { "at_least_once" };
            let mut cmd = Command::new(run);
            cmd.args(["--brokers", &setup.brokers, "--group", &group, "--guarantee", guarantee])
                .args(["--claims-topic", &topics.claims, "--accepted-topic", &topics.accepted])
                .args(["--rejected-topic", &topics.rejected, "--dlq-topic", &topics.dlq])
                .args(["--practitioners-topic", &topics.practitioners])
                .args(["--institutions-topic", &topics.institutions])
                .args(["--state-dir", &state.display().to_string()])
                .args(["--ready-file", &ready.display().to_string()])
                .args(["--stats-file", &stats.display().to_string()])
                .args(["--consumer-config", "session.timeout.ms=6000"])
                .args(["--consumer-config", &format!("fetch.wait.max.ms={}", setup.fetch_wait_ms)]);
            for (k, v) in props() {
                cmd.args(["--consumer-config", &format!("{k}={v}")]);
                cmd.args(["--producer-config", &format!("{k}={v}")]);
            }
            // An instance that is restarted is a static member (KIP-345), as Kafka Streams advises
            // for restarts: it does not leave the group on close, and without a static id its
            // successor would wait out the session timeout before its first rebalance ends.
            if opts.instance.is_some() {
                cmd.args(["--config", &format!("group.instance.id={group}-static")]);
            }
            let child = cmd
                .env("KSTREAMS_HEAP", &setup.kstreams_heap)
                .envs(opts.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .with_context(|| format!("cannot start {}", run.display()))?;
            (Some(child), None)
        }
    };
    Ok(Launched { child, http, log })
}

/// How a session starts, beyond its system.
#[derive(Clone, Debug)]
pub struct StartOpts {
    /// The session's own status topics get a copy of the tables (the status-change test rewrites a
    /// record); otherwise the status topics under `tables_prefix` are used.
    pub own_tables: bool,
    /// Prefix of the status topics to read (default: the run's shared ones).
    pub tables_prefix: Option<String>,
    /// A name kept across a restart: the consumer group / application id and the state directory
    /// derive from it instead of from the session's topics (a restart of the same instance).
    pub instance: Option<String>,
    /// Extra arguments for `claimgate stream` (e.g. its checkpoint option in the restart test).
    pub claimgate_args: Vec<String>,
    /// Extra environment of the system's process (e.g. a JFR recording for the Kafka Streams peer).
    pub env: Vec<(String, String)>,
    /// Longest wait for the first lines to be decided.
    pub ready_limit: Duration,
}

impl Default for StartOpts {
    fn default() -> Self {
        StartOpts {
            own_tables: false,
            tables_prefix: None,
            instance: None,
            claimgate_args: vec![],
            env: vec![],
            ready_limit: Duration::from_secs(180),
        }
    }
}

/// Peak resident set size of a process (`VmHWM` of /proc/<pid>/status), MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&text)
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Session {
    /// Creates the topics, starts the system and sends it a first batch of lines at once: it is ready
    /// when it has decided them all (tables loaded, consumer group joined, connections made). The lines
    /// wait in the claims topic while it starts (every system starts a new group at the earliest
    /// offset), so the first output's arrival, less the spawn time, is its time from start to first
    /// decision.
    pub fn start(
        setup: &Setup,
        system: System,
        pool: Arc<Pool>,
        clock: Clock,
        n: u32,
        opts: &StartOpts,
    ) -> Result<Session> {
        let prefix = format!("lt{}-{n:02}-{}-", setup.run_id, system.name());
        let mut topics = Topics::with_prefix(&prefix);
        create_topics(setup, &prefix)?;
        if opts.own_tables {
            publish_tables(setup, &topics)?;
        } else {
            let tables = opts.tables_prefix.clone().unwrap_or_else(|| format!("lt{}-tables-", setup.run_id));
            let shared = Topics::with_prefix(&tables);
            topics.practitioners = shared.practitioners;
            topics.institutions = shared.institutions;
        }
        let producer = Arc::new(gen_producer(&setup.brokers, setup.gen_linger_ms, &setup.props)?);
        // The broker alone: the reader takes the claims topic for the accepted one.
        let read = if system == System::Broker {
            Topics { accepted: topics.claims.clone(), ..topics.clone() }
        } else {
            topics.clone()
        };
        let mut reader_props = vec![("fetch.wait.max.ms".to_owned(), setup.fetch_wait_ms.to_string())];
        reader_props.extend(setup.props.iter().cloned());
        let reader = Reader::start(&setup.brokers, &read, setup.partitions, Arc::clone(&pool), clock, &reader_props)?;
        let spawned_ns = clock.now_ns();
        let Launched { child, http, log } = launch(setup, system, &topics, &prefix, opts)?;
        let instance = instance_name(opts, &prefix);
        // For scripts/loadtest.sh: what to stop if this process is killed before it stops its children.
        let pid_file = setup.work.join(format!("{prefix}.pid"));
        if let Some(c) = &child {
            let _ = std::fs::write(&pid_file, format!("{}\n", c.id()));
        }
        // Every topic `claimgate topics create` made under the prefix, the status ones too (a session
        // reading the shared tables leaves its own empty).
        let own_topics = (!setup.keep_topics).then(|| OwnTopics {
            brokers: setup.brokers.clone(),
            props: setup.props.clone(),
            prefix: prefix.clone(),
        });
        let mut s = Session {
            system,
            topics,
            child,
            pid_file,
            http,
            log,
            producer,
            reader: Some(reader),
            pool,
            clock,
            next_step: 1,
            last_sent: 0,
            broker_pids: setup.broker_pids.clone(),
            ready_seconds: 0.0,
            first_decision_seconds: 0.0,
            scratch_state: opts
                .instance
                .is_none()
                .then(|| {
                    [
                        setup.work.join("kstreams-state").join(&instance),
                        setup.work.join("claimgate-state").join(&instance),
                    ]
                })
                .map(|[k, c]| if system.is_kafka_streams() { k } else { c }),
            own_topics,
        };
        // Prime: a few hundred lines, all of which must come back; the group is joined and every
        // connection made before the first measured step.
        let prime = s.step(500, 0.0, 1.0, opts.ready_limit)?;
        if prime.1.tally.distinct() < prime.0.sent {
            let tail = std::fs::read_to_string(&s.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            let exited = s.exited();
            s.stop();
            bail!(
                "{}: only {} of {} priming lines were decided within {:?}{}; its log ends:\n{}",
                system.name(),
                prime.1.tally.distinct(),
                prime.0.sent,
                opts.ready_limit,
                exited.map_or_else(String::new, |e| format!(" (it exited: {e})")),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let now = clock.now_ns();
        s.ready_seconds = now.saturating_sub(spawned_ns) as f64 / 1e9;
        let first = s.reader().first_ns.load(Ordering::Relaxed);
        s.first_decision_seconds = first.saturating_sub(spawned_ns) as f64 / 1e9;
        Ok(s)
    }

    /// The system's exit status, if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The system's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The system's peak resident set size so far, MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.pid().and_then(peak_rss_mib)
    }

    /// The next step's number.
    pub fn next_step_id(&mut self) -> u32 {
        let s = self.next_step;
        self.next_step += 1;
        s
    }

    fn reader(&self) -> &Reader {
        self.reader.as_ref().unwrap_or_else(|| unreachable!("the reader lives as long as the session"))
    }

    /// Runs one open-loop step: `rate` lines per second for `warmup + measure` seconds, measured after
    /// the warm-up; then waits up to `drain` for the outputs. Returns what was sent and the reader's
    /// record of the step at the end of the drain.
    pub fn step(&mut self, rate: u64, warmup: f64, measure: f64, drain: Duration) -> Result<(Sent, StepRec)> {
        self.step_with(rate, warmup, measure, drain, |_| {})
    }

    /// [`Session::step`], running `during` on another thread while the lines are sent (it gets the
    /// step's start time on the session clock).
    pub fn step_with<F>(
        &mut self,
        rate: u64,
        warmup: f64,
        measure: f64,
        drain: Duration,
        during: F,
    ) -> Result<(Sent, StepRec)>
    where
        F: FnOnce(u64) + Send,
    {
        let id = self.next_step_id();
        let schedule = Schedule::new(rate, warmup + measure);
        let start = self.clock.now_ns() + 50_000_000;
        let warm_ns = start + (warmup * 1e9) as u64;
        let end_ns = start + schedule.span_ns();
        self.reader().begin(StepRec::new(id, schedule.total(), warm_ns, end_ns));
        let stop = AtomicBool::new(false);
        let (producer, pool, clock, topic) = (&*self.producer, &*self.pool, self.clock, self.topics.claims.clone());
        let plan = GenStep { topic: &topic, step: id, schedule: &schedule, start_ns: start };
        let pid = self.child.as_ref().map(Child::id);
        let brokers = self.broker_pids.clone();
        let cpu_before = crate::cpu::sample(pid, &brokers);
        let (sent, window_cpu) = std::thread::scope(|s| {
            let g = s.spawn(|| generate(producer, pool, &clock, &plan, &stop));
            let d = s.spawn(move || during(start));
            // The system's own CPU over the measurement window only: its start-up (a JVM's JIT
            // compilation too) falls in the warm-up, its drain after the window. Only the system's own
            // counter is read, so no broker PIDs.
            let w = s.spawn(move || {
                clock.sleep_until(warm_ns);
                let a = crate::cpu::sample(pid, &[]);
                clock.sleep_until(end_ns);
                crate::cpu::process_seconds(&a, &crate::cpu::sample(pid, &[]))
            });
            let sent = g.join();
            let _ = d.join();
            (sent, w.join().unwrap_or(0.0))
        });
        let sent = sent.map_err(|_| anyhow::anyhow!("the generator panicked"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cpu = crate::cpu::usage(&cpu_before, &crate::cpu::sample(pid, &brokers), cores);
        if sent.seconds > 0.0 {
            cpu.generator_pct = (sent.generator_cpu_ns as f64 / 1e9 / sent.seconds * 1000.0).round() / 10.0;
        }
        let sent = Sent { cpu, system_cpu_s: window_cpu, ..sent };
        self.last_sent = sent.sent;
        let deadline = Instant::now() + drain;
        let mut checked = Instant::now();
        while self.reader().progress.load(Ordering::Relaxed) < sent.sent && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
            // A system that exited will not answer: no point waiting out the drain.
            if checked.elapsed() > Duration::from_millis(500) {
                checked = Instant::now();
                if self.exited().is_some() {
                    break;
                }
            }
        }
        let rec = self.reader().snapshot(id).context("the reader lost the step")?;
        Ok((sent, rec))
    }

    /// Waits until every line of the last step has an output and then no output has arrived for
    /// `quiet` (a saturated step's backlog drained; a paused consumer is not mistaken for a drained
    /// one), at most `limit`; true if it did.
    pub fn settle(&self, quiet: Duration, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let reader = self.reader();
        while reader.progress.load(Ordering::Relaxed) < self.last_sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let total = &reader.total;
        let mut last = total.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = total.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return reader.progress.load(Ordering::Relaxed) >= self.last_sent;
            }
        }
        false
    }

    /// The system's `/metrics` text (claimgate only).
    pub fn metrics(&self) -> Option<String> {
        self.http.as_deref().and_then(|a| http_get(a, "/metrics")).map(|(_, b)| b)
    }

    /// Stops the system (SIGTERM, then SIGKILL after 30 s) and the reader; returns the reader's
    /// final counts.
    pub fn finish(mut self) -> Result<ReaderEnd> {
        self.settle(Duration::from_millis(300), Duration::from_secs(10));
        self.stop();
        if let Some(d) = self.scratch_state.take() {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = rdkafka::producer::Producer::flush(&*self.producer, Duration::from_secs(5));
        let end = self.reader.take().context("reader already stopped")?.stop();
        if let Some(own) = self.own_topics.take()
            && let Err(e) = crate::kafka::delete_topics_under(&own.brokers, &own.props, &own.prefix)
        {
            eprintln!("loadtest: the step's topics were not deleted ({e:#}); later steps share the broker with them");
        }
        end
    }

    fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        stop_child(child);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_arguments_log_level_is_not_given_twice() {
        assert_eq!(log_args(&[]), ["--log-level", "warn"]);
        let extra: Vec<String> = ["--checkpoint-dir", "/d", "--log-level", "info"].map(String::from).to_vec();
        assert!(log_args(&extra).is_empty());
    }

    #[test]
    fn reads_the_peak_rss_and_names_every_system() {
        let status = "Name:\tjava\nVmPeak:\t 9000000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  400000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(512.0));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        assert!(peak_rss_mib(std::process::id()).is_some_and(|m| m > 0.0), "this process has a peak RSS");
        for s in System::ALL {
            assert_eq!(System::parse(s.name()), Some(s));
        }
        assert!(System::KafkaStreamsEos.exactly_once() && System::KafkaStreamsEos.is_kafka_streams());
        assert!(
            !System::PassThrough.decides() && System::ClaimgateEos.decides() && System::ClaimgateEos.is_claimgate()
        );
    }
}
