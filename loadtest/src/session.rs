//! One system under test on its own topics: `claimgate stream`, the same with `--pass-through`, or the
//! Python peer (and its pass-through). Started as a child process, ready when it decides its first
//! lines, stopped by its PID with SIGTERM (its clean shutdown), SIGKILL if that does not end it.

use std::path::{Path, PathBuf};
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
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<System> {
        [System::Claimgate, System::PassThrough, System::Peer, System::PeerPassThrough, System::Broker]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

/// What a session needs to start.
#[derive(Clone, Debug)]
pub struct Setup {
    pub brokers: String,
    pub claimgate: PathBuf,
    pub peer: Option<PathBuf>,
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
    pub ready_seconds: f64,
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
    let prefix = format!("lt{}-tables-", setup.run_id);
    claimgate(setup, &["topics", "create", "--brokers", &setup.brokers, "--prefix", &prefix, "--partitions", "1"])?;
    publish_tables(setup, &Topics::with_prefix(&prefix))
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
    /// Its readiness file (the peer).
    pub ready_file: Option<PathBuf>,
    /// Its log.
    pub log: PathBuf,
}

/// Starts the system under test on `topics` (nothing for the broker alone).
pub fn launch(setup: &Setup, system: System, topics: &Topics, prefix: &str) -> Result<Launched> {
    let log = setup.work.join(format!("{prefix}stream.log"));
    let logfile = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let group = format!("{prefix}group");
    let (child, http, ready_file) = match system {
        System::Broker => (None, None, None),
        System::Claimgate | System::PassThrough => {
            let addr = format!("127.0.0.1:{}", free_port()?);
            let mut cmd = Command::new(&setup.claimgate);
            cmd.args(["stream", "--brokers", &setup.brokers, "--group", &group, "--http", &addr])
                .args(["--log-level", "warn"])
                .args(["--topic-claims", &topics.claims, "--topic-accepted", &topics.accepted])
                .args(["--topic-rejected", &topics.rejected, "--topic-dlq", &topics.dlq])
                .args(["--topic-practitioners", &topics.practitioners])
                .args(["--topic-institutions", &topics.institutions])
                // The test broker holds a group join for about half the session timeout (BROKER.md).
                .args(["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"])
                .args(["-X", &format!("fetch.wait.max.ms={}", setup.fetch_wait_ms)]);
            for (k, v) in setup.props.iter().chain(&setup.system_props) {
                cmd.args(["-X", &format!("{k}={v}")]);
            }
            if system == System::PassThrough {
                cmd.arg("--pass-through");
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .with_context(|| format!("cannot start {}", setup.claimgate.display()))?;
            (Some(child), Some(addr), None)
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
            for (k, v) in setup.props.iter().chain(&setup.system_props) {
                cmd.args(["--consumer-config", &format!("{k}={v}")]);
                cmd.args(["--producer-config", &format!("{k}={v}")]);
            }
            if system == System::PeerPassThrough {
                cmd.arg("--pass-through");
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile)
                .spawn()
                .with_context(|| format!("cannot start {}", peer.display()))?;
            (Some(child), None, Some(ready))
        }
    };
    Ok(Launched { child, http, ready_file, log })
}

impl Session {
    /// Creates the topics, starts the system and waits until it has decided a first batch of lines
    /// (tables loaded, consumer group joined). The status tables are the run's shared ones
    /// ([`publish_tables`]) unless `own_tables`: then the session's own status topics get a copy (the
    /// status-change test rewrites a record).
    pub fn start(
        setup: &Setup,
        system: System,
        pool: Arc<Pool>,
        clock: Clock,
        n: u32,
        own_tables: bool,
    ) -> Result<Session> {
        let t0 = Instant::now();
        let prefix = format!("lt{}-{n:02}-{}-", setup.run_id, system.name());
        let mut topics = Topics::with_prefix(&prefix);
        create_topics(setup, &prefix)?;
        if own_tables {
            publish_tables(setup, &topics)?;
        } else {
            let shared = Topics::with_prefix(&format!("lt{}-tables-", setup.run_id));
            topics.practitioners = shared.practitioners;
            topics.institutions = shared.institutions;
        }
        let Launched { child, http, ready_file, log } = launch(setup, system, &topics, &prefix)?;
        // For scripts/loadtest.sh: what to stop if this process is killed before it stops its children.
        let pid_file = setup.work.join(format!("{prefix}.pid"));
        if let Some(c) = &child {
            let _ = std::fs::write(&pid_file, format!("{}\n", c.id()));
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
        };
        if let Err(e) = s.wait_ready(ready_file.as_deref(), Duration::from_secs(180)) {
            s.stop();
            return Err(e);
        }
        // Prime: a few hundred lines, all of which must come back; the group is joined and every
        // connection made before the first measured step.
        let prime = s.step(500, 0.0, 1.0, Duration::from_secs(120))?;
        if prime.1.tally.distinct() < prime.0.sent {
            let tail = std::fs::read_to_string(&s.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            s.stop();
            bail!(
                "{}: only {} of {} priming lines were decided within 120 s; its log ends:\n{}",
                system.name(),
                prime.1.tally.distinct(),
                prime.0.sent,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        s.ready_seconds = t0.elapsed().as_secs_f64();
        Ok(s)
    }

    fn wait_ready(&mut self, ready_file: Option<&Path>, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("{} exited ({status}) before it was ready:\n{}", self.system.name(), log.trim());
            }
            let ready = match (&self.http, ready_file) {
                (Some(addr), _) => http_get(addr, "/readyz").is_some_and(|(code, _)| code == 200),
                (None, Some(f)) => f.exists(),
                (None, None) => true,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} not ready within {limit:?} (log: {})", self.system.name(), self.log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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
        let sent = std::thread::scope(|s| {
            let g = s.spawn(|| generate(producer, pool, &clock, &plan, &stop));
            let d = s.spawn(move || during(start));
            let sent = g.join();
            let _ = d.join();
            sent
        })
        .map_err(|_| anyhow::anyhow!("the generator panicked"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cpu = crate::cpu::usage(&cpu_before, &crate::cpu::sample(pid, &brokers), cores);
        if sent.seconds > 0.0 {
            cpu.generator_pct = (sent.generator_cpu_ns as f64 / 1e9 / sent.seconds * 1000.0).round() / 10.0;
        }
        let sent = Sent { cpu, ..sent };
        self.last_sent = sent.sent;
        let deadline = Instant::now() + drain;
        let reader = self.reader();
        while reader.progress.load(Ordering::Relaxed) < sent.sent && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        let rec = reader.snapshot(id).context("the reader lost the step")?;
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
        let _ = rdkafka::producer::Producer::flush(&*self.producer, Duration::from_secs(5));
        self.reader.take().context("reader already stopped")?.stop()
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
