//! The Kafka side of the load test: the open-loop generator, the decision reader, and the producers
//! of the status-change test. Everything runs on plain threads with rdkafka's base clients: the
//! load test must cost the machine as little as possible, since it shares it with the broker and the
//! system under test.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::hgrm::new_histogram;
use crate::pool::Pool;
use crate::schedule::Schedule;
use crate::stamp::{HEADER, Kind, Stamp};
use crate::tally::{Outcome, Tally, Verdicts, decision_identity, u64_field};

/// The load test's monotonic clock, shared by the generator and the reader (one process).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock { origin: Instant::now() }
    }

    /// Nanoseconds since the clock started.
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Sleeps until `ns` on this clock (returns at once if it has passed).
    pub fn sleep_until(&self, ns: u64) {
        let now = self.now_ns();
        if ns > now {
            std::thread::sleep(Duration::from_nanos(ns - now));
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// The topics of one system under test.
#[derive(Clone, Debug)]
pub struct Topics {
    pub claims: String,
    pub accepted: String,
    pub rejected: String,
    pub dlq: String,
    pub practitioners: String,
    pub institutions: String,
}

impl Topics {
    /// The six topics under a prefix, named as `claimgate topics create --prefix` makes them.
    pub fn with_prefix(prefix: &str) -> Topics {
        let t = |n: &str| format!("{prefix}{n}");
        Topics {
            claims: t("claims"),
            accepted: t("claims.accepted"),
            rejected: t("claims.rejected"),
            dlq: t("claims.dlq"),
            practitioners: t("practitioners"),
            institutions: t("institutions"),
        }
    }
}

fn client(brokers: &str, props: &[(&str, &str)], extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in props {
        c.set(*k, *v);
    }
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

/// A client configuration with the brokers and the run's `-X` properties, nothing else.
pub fn plain_client(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    client(brokers, &[], extra)
}

/// Deletes every topic whose name starts with `prefix`, as the broker lists them, waiting up to 30 s for
/// the controller's answer. Topics already gone count as deleted.
pub fn delete_topics_under(brokers: &str, extra: &[(String, String)], prefix: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = plain_client(brokers, extra).create()?;
    let listed = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    let names: Vec<&str> = listed.topics().iter().map(|t| t.name()).filter(|n| n.starts_with(prefix)).collect();
    if names.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in rt.block_on(admin.delete_topics(&names, &opts))? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, e)) => anyhow::bail!("cannot delete topic {name}: {e}"),
        }
    }
    Ok(())
}

/// Counts failed deliveries of the generator (there should be none).
#[derive(Default)]
pub struct GenCtx {
    failed: AtomicU64,
}

impl ClientContext for GenCtx {}

impl ProducerContext for GenCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The generator's producer.
pub type GenProducer = BaseProducer<GenCtx>;

/// The generator's producer: small linger (latency is what is measured: the generator's linger is part
/// of every line's end-to-end time, the broker-alone floor included), large queue (an open-loop
/// generator must not block on the system under test).
pub fn gen_producer(brokers: &str, linger_ms: u32, extra: &[(String, String)]) -> Result<GenProducer> {
    let linger = linger_ms.to_string();
    client(
        brokers,
        &[
            ("linger.ms", &linger),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "2000000"),
            ("queue.buffering.max.kbytes", "2097151"),
            ("compression.type", "lz4"),
            ("acks", "all"),
        ],
        extra,
    )
    .create_with_context(GenCtx::default())
    .context("cannot create the generator's producer")
}

/// What the generator did in one step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// Lines queued.
    pub sent: u64,
    /// Lines whose delivery failed.
    pub failed: u64,
    /// Seconds from the first intended time to the last line queued.
    pub seconds: f64,
    /// Most the generator was ever behind its schedule, ms.
    pub max_behind_ms: f64,
    /// CPU use while the lines were sent.
    pub cpu: crate::cpu::CpuUse,
    /// CPU time of the generator's own thread, ns.
    pub generator_cpu_ns: u64,
    /// CPU seconds the system under test used over the measurement window.
    pub system_cpu_s: f64,
}

/// The generator's shortest sleep, ns.
const WAKE_NS: u64 = 1_000_000;

/// One step of the generator: where, which step, how many when, from when (session clock, ns).
#[derive(Clone, Copy, Debug)]
pub struct GenStep<'a> {
    pub topic: &'a str,
    pub step: u32,
    pub schedule: &'a Schedule,
    pub start_ns: u64,
}

/// Sends a step's lines on schedule (open loop): line `i` is stamped with its intended time
/// `start_ns + schedule.intended_ns(i)` and sent as soon as that time has come, all due lines at once
/// when behind. Never waits for decisions.
pub fn generate(producer: &GenProducer, pool: &Pool, clock: &Clock, plan: &GenStep<'_>, stop: &AtomicBool) -> Sent {
    let GenStep { topic, step, schedule, start_ns } = *plan;
    let cpu_start = crate::cpu::thread_cpu_ns();
    let failed_before = producer.context().failed.load(Ordering::Relaxed);
    let mut i = 0u64;
    let mut max_behind = 0u64;
    let total = schedule.total();
    clock.sleep_until(start_ns);
    while i < total && !stop.load(Ordering::Relaxed) {
        let now = clock.now_ns();
        let due = schedule.due(now.saturating_sub(start_ns));
        if i >= due {
            producer.poll(Duration::ZERO);
            // Wake at most every WAKE_NS: at 10 000 lines/s a wake-up per line cost the load test
            // more CPU than the lines themselves. A line sent up to WAKE_NS after its intended time
            // still counts from its intended time.
            clock.sleep_until((start_ns + schedule.intended_ns(i)).max(now + WAKE_NS));
            continue;
        }
        max_behind = max_behind.max(now.saturating_sub(start_ns + schedule.intended_ns(i)));
        while i < due {
            let intended_ns = start_ns + schedule.intended_ns(i);
            let stamp = Stamp { step, kind: Kind::Load, seq: i, intended_ns }.encode();
            let (key, value) = pool.line(pool.index(i));
            send(producer, topic, key, value, &stamp);
            i += 1;
            if i.is_multiple_of(512) {
                producer.poll(Duration::ZERO);
            }
        }
    }
    let seconds = clock.now_ns().saturating_sub(start_ns) as f64 / 1e9;
    producer.poll(Duration::ZERO);
    Sent {
        sent: i,
        failed: producer.context().failed.load(Ordering::Relaxed) - failed_before,
        seconds,
        max_behind_ms: max_behind as f64 / 1e6,
        cpu: crate::cpu::CpuUse::default(),
        generator_cpu_ns: crate::cpu::thread_cpu_ns().saturating_sub(cpu_start),
        system_cpu_s: 0.0,
    }
}

/// Queues one stamped line, serving delivery reports while the queue is full.
fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    topic: &str,
    key: &[u8],
    value: &[u8],
    stamp: &[u8; 24],
) {
    let headers = OwnedHeaders::new_with_capacity(1).insert(Header { key: HEADER, value: Some(&stamp[..]) });
    let mut record = BaseRecord::to(topic).key(key).payload(value).headers(headers);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => {
                eprintln!("loadtest: cannot queue a claim line: {e}");
                return;
            }
        }
    }
}

/// Measurements of one step, kept by the reader.
#[derive(Clone, Debug)]
pub struct StepRec {
    /// Step number within the session.
    pub step: u32,
    /// Lines with an intended time in `[warm_ns, end_ns)` are measured.
    pub warm_ns: u64,
    /// End of the measurement window.
    pub end_ns: u64,
    /// Outputs, by sequence number.
    pub tally: Tally,
    /// Latencies (µs) of the measured lines.
    pub hist: Histogram<u64>,
    /// Latencies of the lines meant for the first fifth of the window.
    pub first_fifth: Histogram<u64>,
    /// Latencies of the lines meant for the last fifth.
    pub last_fifth: Histogram<u64>,
    /// Outputs received during the measurement window.
    pub received_in_window: u64,
    /// When the last output arrived.
    pub last_ns: u64,
}

impl StepRec {
    /// A record for a step of `planned` lines measured over `[warm_ns, end_ns)`.
    pub fn new(step: u32, planned: u64, warm_ns: u64, end_ns: u64) -> StepRec {
        StepRec {
            step,
            warm_ns,
            end_ns,
            tally: Tally::new(planned),
            hist: new_histogram(),
            first_fifth: new_histogram(),
            last_fifth: new_histogram(),
            received_in_window: 0,
            last_ns: 0,
        }
    }

    fn observe(&mut self, intended_ns: u64, now_ns: u64) {
        self.last_ns = now_ns;
        if (self.warm_ns..=self.end_ns).contains(&now_ns) {
            self.received_in_window += 1;
        }
        if !(self.warm_ns..self.end_ns).contains(&intended_ns) {
            return;
        }
        let us = (now_ns.saturating_sub(intended_ns) / 1000).max(1);
        self.hist.saturating_record(us);
        let fifth = (self.end_ns - self.warm_ns) / 5;
        if intended_ns < self.warm_ns + fifth {
            self.first_fifth.saturating_record(us);
        } else if intended_ns >= self.end_ns - fifth {
            self.last_fifth.saturating_record(us);
        }
    }
}

/// The first decision seen for each version of the trickle's practitioner.
#[derive(Debug, Default)]
pub struct TrickleSeen {
    /// Version → (receive time ns, outcome) of its first decision.
    pub first: HashMap<u64, (u64, Outcome)>,
    /// Trickle outputs received.
    pub received: u64,
}

enum Cmd {
    Begin(Box<StepRec>),
    Snapshot(u32, Sender<Option<Box<StepRec>>>),
    Stop,
}

/// What the reader hands back when the session ends.
pub struct ReaderEnd {
    /// Every step, with the outputs that arrived until the end.
    pub steps: BTreeMap<u32, StepRec>,
    /// Outcomes by pool line.
    pub verdicts: Verdicts,
    /// Outputs with no load-test stamp.
    pub unstamped: u64,
    /// Outputs stamped with a step the reader was not told about.
    pub stray: u64,
}

/// The reader: one thread consuming the decision and dead-letter topics of a session.
pub struct Reader {
    cmds: Sender<Cmd>,
    thread: Option<JoinHandle<Result<ReaderEnd>>>,
    /// Distinct lines of the current step received so far.
    pub progress: Arc<AtomicU64>,
    /// Every output received, all steps.
    pub total: Arc<AtomicU64>,
    /// Clock time of the first output received (0: none yet).
    pub first_ns: Arc<AtomicU64>,
    /// The trickle's first decisions by version.
    pub trickle: Arc<Mutex<TrickleSeen>>,
}

impl Reader {
    /// Starts reading the session's three output topics from the beginning (direct assignment: no
    /// group join).
    pub fn start(
        brokers: &str,
        topics: &Topics,
        partitions: i32,
        pool: Arc<Pool>,
        clock: Clock,
        extra: &[(String, String)],
    ) -> Result<Reader> {
        let consumer: BaseConsumer = client(
            brokers,
            &[
                ("group.id", "claimgate-loadtest-reader"),
                ("enable.auto.commit", "false"),
                ("fetch.max.bytes", "104857600"),
                ("max.partition.fetch.bytes", "8388608"),
                ("queued.min.messages", "200000"),
            ],
            extra,
        )
        .create()
        .context("cannot create the reader")?;
        let mut tpl = TopicPartitionList::new();
        for t in [&topics.accepted, &topics.rejected, &topics.dlq] {
            for p in 0..partitions {
                tpl.add_partition_offset(t, p, Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl).context("cannot assign the output topics")?;
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let trickle = Arc::new(Mutex::new(TrickleSeen::default()));
        let names = [topics.accepted.clone(), topics.rejected.clone(), topics.dlq.clone()];
        let first_ns = Arc::new(AtomicU64::new(0));
        let (p, t, tr, f) = (Arc::clone(&progress), Arc::clone(&total), Arc::clone(&trickle), Arc::clone(&first_ns));
        let counters = Counters { progress: p, total: t, first_ns: f };
        let thread = std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || read(consumer, names, pool, clock, rx, counters, tr))?;
        Ok(Reader { cmds: tx, thread: Some(thread), progress, total, first_ns, trickle })
    }

    /// Starts measuring a step (before its first line is sent).
    pub fn begin(&self, rec: StepRec) {
        self.progress.store(0, Ordering::Relaxed);
        let _ = self.cmds.send(Cmd::Begin(Box::new(rec)));
    }

    /// The step's measurements so far.
    pub fn snapshot(&self, step: u32) -> Option<StepRec> {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Snapshot(step, tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(30)).ok().flatten().map(|b| *b)
    }

    /// Stops the reader; returns everything it counted.
    pub fn stop(mut self) -> Result<ReaderEnd> {
        let _ = self.cmds.send(Cmd::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => anyhow::bail!("the reader thread panicked"),
        }
    }
}

/// The reader's counters, shared with the session.
struct Counters {
    progress: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    first_ns: Arc<AtomicU64>,
}

fn read(
    consumer: BaseConsumer,
    names: [String; 3],
    pool: Arc<Pool>,
    clock: Clock,
    cmds: Receiver<Cmd>,
    counters: Counters,
    trickle: Arc<Mutex<TrickleSeen>>,
) -> Result<ReaderEnd> {
    crate::cpu::register_reader();
    let Counters { progress, total, first_ns } = counters;
    let mut steps: BTreeMap<u32, StepRec> = BTreeMap::new();
    let mut current: Option<u32> = None;
    let mut verdicts = Verdicts::new(pool.len());
    let (mut unstamped, mut stray) = (0u64, 0u64);
    let mut errors = 0u64;
    loop {
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Begin(rec) => {
                    current = Some(rec.step);
                    steps.insert(rec.step, *rec);
                }
                Cmd::Snapshot(step, reply) => {
                    let _ = reply.send(steps.get(&step).cloned().map(Box::new));
                }
                Cmd::Stop => return Ok(ReaderEnd { steps, verdicts, unstamped, stray }),
            }
        }
        let msg = match consumer.poll(Duration::from_millis(5)) {
            None => continue,
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("loadtest: reader: {e}");
                }
                continue;
            }
            Some(Ok(m)) => m,
        };
        let now = clock.now_ns();
        if total.fetch_add(1, Ordering::Relaxed) == 0 {
            first_ns.store(now.max(1), Ordering::Relaxed);
        }
        let topic = msg.topic();
        let outcome = if topic == names[0] {
            Outcome::Accepted
        } else if topic == names[1] {
            Outcome::Rejected
        } else {
            Outcome::DeadLetter
        };
        let stamp = msg
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == HEADER))
            .and_then(|h| h.value)
            .and_then(Stamp::decode);
        let Some(stamp) = stamp else {
            unstamped += 1;
            continue;
        };
        let payload = msg.payload().unwrap_or_default();
        if stamp.kind == Kind::Trickle {
            let mut t = trickle.lock().unwrap_or_else(|p| p.into_inner());
            t.received += 1;
            if let Some(v) = u64_field(payload, b"\"practitioner_version\":") {
                t.first.entry(v).or_insert((now, outcome));
            }
            continue;
        }
        let Some(rec) = steps.get_mut(&stamp.step) else {
            stray += 1;
            continue;
        };
        if rec.tally.mark(stamp.seq, outcome) != crate::tally::Mark::New {
            continue;
        }
        let line = pool.index(stamp.seq);
        verdicts.record(line, crate::tally::code_of(outcome, payload));
        let expected = pool.identity(line);
        if outcome != Outcome::DeadLetter && expected != 0 && decision_identity(payload) != Some(expected) {
            rec.tally.identity_mismatch();
        }
        rec.observe(stamp.intended_ns, now);
        if current == Some(stamp.step) {
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Remembers when the broker acknowledged a status record.
#[derive(Default)]
pub struct AckCtx {
    clock: Mutex<Option<Clock>>,
    acked: Mutex<Option<Result<u64, String>>>,
}

impl ClientContext for AckCtx {}

impl ProducerContext for AckCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = self.clock.lock().unwrap_or_else(|p| p.into_inner()).map_or(0, |c| c.now_ns());
        let r = match result {
            Ok(_) => Ok(now),
            Err((e, _)) => Err(e.to_string()),
        };
        *self.acked.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }
}

/// A producer of single records whose acknowledgement time is measured: status changes, and the
/// trickle (sent without linger).
pub struct AckProducer {
    producer: BaseProducer<AckCtx>,
}

impl AckProducer {
    /// Connects.
    pub fn new(brokers: &str, clock: Clock, extra: &[(String, String)]) -> Result<AckProducer> {
        let producer: BaseProducer<AckCtx> = client(brokers, &[("linger.ms", "0"), ("acks", "all")], extra)
            .create_with_context(AckCtx::default())
            .context("cannot create the status producer")?;
        *producer.context().clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(clock);
        Ok(AckProducer { producer })
    }

    /// Sends one record and waits for its acknowledgement; returns the clock time of the ack.
    pub fn send_acked(&self, topic: &str, key: &[u8], value: &[u8], timeout: Duration) -> Result<u64> {
        *self.producer.context().acked.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.producer
            .send(BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .with_context(|| format!("cannot produce to {topic}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            self.producer.poll(Duration::from_millis(1));
            if let Some(r) = self.producer.context().acked.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return r.map_err(|e| anyhow::anyhow!("status record not delivered: {e}"));
            }
            if Instant::now() >= deadline {
                anyhow::bail!("status record not acknowledged within {timeout:?}");
            }
        }
    }

    /// Queues a stamped line without waiting (the trickle).
    pub fn send_stamped(&self, topic: &str, key: &[u8], value: &[u8], stamp: &Stamp) {
        send(&self.producer, topic, key, value, &stamp.encode());
        self.producer.poll(Duration::ZERO);
    }

    /// Waits for everything queued.
    pub fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}
