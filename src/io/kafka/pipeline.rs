//! The claim pipeline: consume `claims` in a consumer group, decide each line, produce the decision to
//! `claims.accepted` / `claims.rejected` (or the dead letter to `claims.dlq`) with the input's key.
//!
//! At least once, always: automatic offset storing is off; an offset is stored (and then committed by
//! the periodic auto-commit, and synchronously at shutdown and on revocation) only when the output of it
//! and of every earlier offset of its partition was acknowledged by the broker ([`Tracker`]). A failed
//! delivery is retried, never dropped. In-flight claims are bounded: at the bound, consumption pauses
//! until acknowledgements catch up, and acknowledgements are always handled before new input.
//!
//! Exactly once (`exactly_once = true`): each batch is one Kafka transaction holding its outputs and
//! its input offsets; see [`run_transactional`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::tracker::Tracker;
use super::{Context, KafkaConfig};
use crate::io::clock;
use crate::io::metrics::ClaimMetrics;
use claimgate::batch::process;
use claimgate::record::{DeadLetter, Reason, Stamp, Verdict};
use claimgate::routing::Rules;
use claimgate::table::TableHandle;

/// Topic names and bounds of the pipeline.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Claims in.
    pub claims: String,
    /// Accepted decisions.
    pub accepted: String,
    /// Rejected decisions.
    pub rejected: String,
    /// Dead letters.
    pub dlq: String,
    /// Consumer group.
    pub group: String,
    /// In-flight bound.
    pub max_in_flight: usize,
    /// Claims per batch.
    pub batch_size: usize,
    /// Larger claims go to the dead-letter topic.
    pub max_message_bytes: usize,
    /// Shutdown deadline.
    pub shutdown_timeout: Duration,
    /// Exactly-once: longest transaction.
    pub transaction_time: Duration,
    /// Exactly-once: the producer's transactional id.
    pub transactional_id: Option<String>,
    /// Benchmark baseline: forward every claim unchanged to the accepted topic, deciding nothing —
    /// the same consumer, producer and commit path, so the ratio to it isolates the decision's cost.
    pub pass_through: bool,
}

/// What travels with a produced output and comes back with its acknowledgement, packed in the opaque
/// word librdkafka carries (no allocation per claim): the source partition (15 bits), offset (48 bits),
/// and a flag marking the one claim in flight whose latency is being sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token(usize);

const PROBE: usize = 1 << 63;
const OFFSET_BITS: u32 = 48;

impl Token {
    fn new(partition: i32, offset: i64, probe: bool) -> Token {
        // Kafka partitions stay far below 2^15 and offsets below 2^48 (a million claims a second for
        // nine years); out-of-range values are clamped rather than allowed to corrupt the other field.
        let p = (partition.clamp(0, 0x7FFF) as usize) << OFFSET_BITS;
        let o = offset.clamp(0, (1 << OFFSET_BITS) - 1) as usize;
        Token(p | o | if probe { PROBE } else { 0 })
    }
    fn partition(self) -> i32 {
        ((self.0 >> OFFSET_BITS) & 0x7FFF) as i32
    }
    fn offset(self) -> i64 {
        (self.0 & ((1 << OFFSET_BITS) - 1)) as i64
    }
    fn is_probe(self) -> bool {
        self.0 & PROBE != 0
    }
}

/// A delivery report.
struct Ack {
    token: Token,
    /// On failure: the error and the message to send again.
    failed: Option<(KafkaError, Retry)>,
}

/// An output to send again.
struct Retry {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    not_before: Instant,
}

struct ProducerCtx {
    acks: Sender<Ack>,
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "producer" }.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Context { client: "producer" }.error(error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let token = Token(token);
        let failed = match result {
            Ok(_) => None,
            Err((e, msg)) => Some((
                e.clone(),
                Retry {
                    topic: msg.topic().to_owned(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    not_before: Instant::now() + Duration::from_millis(500),
                },
            )),
        };
        // The receiver lives as long as the pipeline; a send fails only during teardown.
        let _ = self.acks.send(Ack { token, failed });
    }
}

type Producer_ = ThreadedProducer<ProducerCtx>;

/// The in-flight book-keeping, shared by the pipeline loop and the rebalance callback (both run on
/// the pipeline thread, inside and outside `poll`; the mutex is never contended).
struct Inflight {
    tracker: Mutex<Tracker>,
    retries: Mutex<VecDeque<(Token, Retry)>>,
    /// When the claim flagged as the latency probe was sent; one probe in flight at a time.
    probe: Mutex<Option<Instant>>,
    acks: Receiver<Ack>,
    producer: Arc<Producer_>,
    topic: String,
    metrics: ClaimMetrics,
}

impl Inflight {
    /// Handles every acknowledgement already received (waiting up to `wait` for the first), sends due
    /// retries, and stores the offsets that became committable. Returns the claims still in flight.
    fn drain<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, wait: Option<Duration>) -> usize {
        let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = match wait {
            Some(w) => self.acks.recv_timeout(w).ok(),
            None => self.acks.try_recv().ok(),
        };
        while let Some(ack) = next {
            match ack.failed {
                None => {
                    if ack.token.is_probe()
                        && let Some(sent) = self.probe.lock().unwrap_or_else(|p| p.into_inner()).take()
                    {
                        self.metrics.latency.record(sent.elapsed().as_secs_f64());
                    }
                    tracker.acknowledged(ack.token.partition(), ack.token.offset());
                }
                Some((error, retry)) => {
                    tracing::warn!(
                        event = "delivery_failed",
                        topic = retry.topic,
                        source_partition = ack.token.partition(),
                        source_offset = ack.token.offset(),
                        %error,
                        "output not acknowledged; sending it again (its claim's offset stays uncommitted)"
                    );
                    self.metrics.retries.increment(1);
                    self.retries.lock().unwrap_or_else(|p| p.into_inner()).push_back((ack.token, retry));
                }
            }
            next = self.acks.try_recv().ok();
        }
        self.resend_due();
        for (partition, offset) in tracker.take_committable() {
            if let Err(e) = consumer.store_offset(&self.topic, partition, offset) {
                // The partition was revoked meanwhile; its new owner starts from the last commit.
                tracing::debug!(event = "offset_store_skipped", partition, offset, error = %e);
            }
        }
        let n = tracker.in_flight();
        self.metrics.in_flight.set(n as f64);
        n
    }

    /// True if this claim should carry the latency probe (none is in flight): starts its clock.
    fn take_probe(&self) -> bool {
        let mut slot = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(Instant::now());
        true
    }

    fn resend_due(&self) {
        let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while retries.front().is_some_and(|(_, r)| r.not_before <= now) {
            let Some((token, retry)) = retries.pop_front() else { break };
            let mut record = BaseRecord::with_opaque_to(&retry.topic, token.0).payload(&retry.payload);
            if let Some(k) = &retry.key {
                record = record.key(k);
            }
            if let Err((_, record)) = self.producer.send(record) {
                let token = Token(record.delivery_opaque);
                retries.push_front((token, Retry { not_before: now + Duration::from_millis(200), ..retry }));
                break;
            }
        }
    }
}

/// The claims consumer's context: rebalances wait for the revoked partitions' outputs and commit them.
struct ConsumerCtx {
    inflight: Arc<Inflight>,
    rebalanced: AtomicBool,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "claims" }.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Context { client: "claims" }.error(error, reason);
    }
    fn stats(&self, statistics: rdkafka::Statistics) {
        Context { client: "claims" }.stats(statistics);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            // Let the revoked partitions' outputs be acknowledged, so that their offsets are committed
            // here rather than their claims decided again by the new owner. Bounded: past it, the new
            // owner redecides them (at least once) and produces identical decisions.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                self.inflight.drain(consumer, Some(Duration::from_millis(20)));
                let waiting: usize = {
                    let t = self.inflight.tracker.lock().unwrap_or_else(|p| p.into_inner());
                    revoked.iter().map(|p| t.in_flight_of(*p)).sum()
                };
                if waiting == 0 || Instant::now() >= deadline {
                    break;
                }
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(event = "commit_on_revoke", error = %e);
            }
            let mut t = self.inflight.tracker.lock().unwrap_or_else(|p| p.into_inner());
            for p in &revoked {
                t.forget(*p);
            }
            tracing::info!(event = "partitions_revoked", partitions = ?revoked);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        ::metrics::gauge!(crate::io::metrics::CLAIMS_PARTITIONS).set(assigned as f64);
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(event = "partitions_assigned", partitions = ?assigned);
        }
    }
}

/// Per-batch counts, added to the metrics once per batch.
#[derive(Default)]
struct BatchCounts {
    by_reason: [u64; Reason::COUNT],
    overridden: [u64; Reason::COUNT],
    would_reject: [u64; Reason::COUNT],
    legacy: u64,
}

/// What deciding one batch needs: one table snapshot and one clock reading for all its claims.
struct Batch<'a> {
    cfg: &'a PipelineConfig,
    view: &'a claimgate::table::View,
    rules: &'a Rules,
    stamp: Stamp<'a>,
    metrics: &'a ClaimMetrics,
    counts: BatchCounts,
}

impl Batch<'_> {
    /// Decides one consumed message into `buf`; returns the output topic, and a key when the input has
    /// none and the line parsed (`fixmedins_code|mdtrt_id`); otherwise the output takes the input's key.
    fn decide(&mut self, msg: &BorrowedMessage<'_>, buf: &mut Vec<u8>) -> (&str, Option<Vec<u8>>) {
        buf.clear();
        let cfg = self.cfg;
        let stamp = &self.stamp;
        let dead = |error: &str, field: Option<&str>, raw: &[u8], buf: &mut Vec<u8>| {
            let source = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
            DeadLetter::new(error, field, &source, raw, stamp.decided_at).write(buf);
        };
        if cfg.pass_through {
            buf.extend_from_slice(msg.payload().unwrap_or_default());
            return (&cfg.accepted, None);
        }
        let Some(payload) = msg.payload() else {
            dead("empty message (null value)", None, b"", buf);
            self.metrics.dead_letter(None);
            return (&cfg.dlq, None);
        };
        if payload.len() > cfg.max_message_bytes {
            let error = format!(
                "message of {} bytes exceeds limits.max_message_bytes ({}); raw holds its first {} bytes, the whole message stays at its source offset",
                payload.len(),
                cfg.max_message_bytes,
                cfg.max_message_bytes
            );
            dead(&error, None, &payload[..cfg.max_message_bytes], buf);
            self.metrics.dead_letter(None);
            return (&cfg.dlq, None);
        }
        match process(payload, self.view, self.rules, stamp, buf) {
            Ok(d) => {
                let o = &d.outcome;
                self.counts.by_reason[o.reason.index()] += 1;
                if let Some(r) = o.overridden {
                    self.counts.overridden[r.index()] += 1;
                }
                if let Some(r) = o.would_reject {
                    self.counts.would_reject[r.index()] += 1;
                }
                self.counts.legacy += u64::from(o.legacy_code);
                let topic = if o.verdict == Verdict::Accept { &cfg.accepted } else { &cfg.rejected };
                let key = msg.key().is_none().then(|| {
                    // records.md: the key is `fixmedins_code|mdtrt_id`.
                    let mut k = Vec::with_capacity(32);
                    d.claim.fixmedins_code.write_bytes(&mut k);
                    k.push(b'|');
                    k.extend_from_slice(d.claim.mdtrt_id.as_bytes());
                    k
                });
                (topic, key)
            }
            Err(m) => {
                buf.clear();
                dead(&m.message, m.field, payload, buf);
                self.metrics.dead_letter(m.field);
                (&cfg.dlq, None)
            }
        }
    }

    /// Adds the batch's counts to the metrics.
    fn finish(self, taken: usize, started: Instant) {
        if taken > 0 {
            self.metrics.decision.record(started.elapsed().as_secs_f64() / taken as f64);
            self.metrics.add(&self.counts.by_reason, &self.counts.overridden, &self.counts.would_reject);
            self.metrics.legacy.increment(self.counts.legacy);
        }
    }
}

fn consumer_config(kafka: &KafkaConfig, group: &str, exactly_once: bool) -> rdkafka::config::ClientConfig {
    kafka.client(&[
        ("group.id", group),
        ("enable.auto.commit", if exactly_once { "false" } else { "true" }),
        ("auto.commit.interval.ms", "1000"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("statistics.interval.ms", "5000"),
        // Large fetches: the broker, not the client, should be the limit (performance.md).
        ("fetch.max.bytes", "104857600"),
        ("max.partition.fetch.bytes", "8388608"),
        ("queued.min.messages", "200000"),
    ])
}

fn producer_config(kafka: &KafkaConfig, cfg: &PipelineConfig) -> rdkafka::config::ClientConfig {
    let mut c = kafka.client(&[
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("batch.num.messages", "10000"),
        ("queue.buffering.max.messages", "200000"),
        ("compression.type", "lz4"),
    ]);
    if let Some(id) = &cfg.transactional_id {
        c.set("transactional.id", id);
    }
    c
}

/// Runs the pipeline on the calling thread until `shutdown` is set; then drains in-flight claims,
/// commits, and returns. Waits for `state.ready` before taking any claim.
pub fn run(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    handle: &TableHandle,
    ready: &AtomicBool,
    rules: &Rules,
    shutdown: &AtomicBool,
) -> Result<()> {
    if cfg.transactional_id.is_some() {
        return run_transactional(kafka, cfg, handle, ready, rules, shutdown);
    }
    let (ack_tx, ack_rx) = crossbeam_channel::unbounded();
    let producer: Arc<Producer_> = Arc::new(
        producer_config(kafka, cfg)
            .create_with_context(ProducerCtx { acks: ack_tx })
            .context("cannot create the producer")?,
    );
    let inflight = Arc::new(Inflight {
        tracker: Mutex::new(Tracker::new()),
        retries: Mutex::new(VecDeque::new()),
        probe: Mutex::new(None),
        acks: ack_rx,
        producer: Arc::clone(&producer),
        topic: cfg.claims.clone(),
        metrics: ClaimMetrics::new(),
    });
    // No claim is taken before the tables are loaded (service.md): wait before joining the group.
    while !ready.load(Ordering::Acquire) {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let consumer: BaseConsumer<ConsumerCtx> = consumer_config(kafka, &cfg.group, false)
        .create_with_context(ConsumerCtx { inflight: Arc::clone(&inflight), rebalanced: AtomicBool::new(false) })
        .context("cannot create the claims consumer")?;
    consumer.subscribe(&[&cfg.claims]).context("cannot subscribe to the claims topic")?;
    tracing::info!(event = "pipeline_started", topic = cfg.claims, group = cfg.group, "taking claims");

    let metrics = &inflight.metrics;
    let mut buf = Vec::with_capacity(1024);
    let mut paused = false;
    let mut deadline: Option<Instant> = None;
    loop {
        let in_flight = inflight.drain(&consumer, None);
        if deadline.is_none() && shutdown.load(Ordering::Relaxed) {
            deadline = Some(Instant::now() + cfg.shutdown_timeout);
            set_paused(&consumer, true);
            paused = true;
            tracing::info!(event = "draining", in_flight, "shutdown: no new claims; waiting for in-flight outputs");
        }
        if let Some(d) = deadline {
            if in_flight == 0 && inflight.retries.lock().map_or(true, |r| r.is_empty()) {
                break;
            }
            if Instant::now() >= d {
                bail!(
                    "shutdown: {in_flight} claims still unacknowledged after {:?}; their offsets stay uncommitted and they will be decided again",
                    cfg.shutdown_timeout
                );
            }
            inflight.drain(&consumer, Some(Duration::from_millis(50)));
            // Serve callbacks; a paused consumer returns no new claims.
            if let Some(Ok(msg)) = consumer.poll(Duration::ZERO) {
                tracing::debug!(
                    event = "late_claim",
                    partition = msg.partition(),
                    offset = msg.offset(),
                    "not taken during shutdown"
                );
            }
            continue;
        }
        if in_flight >= cfg.max_in_flight {
            if !paused {
                set_paused(&consumer, true);
                paused = true;
                metrics.paused.set(1.0);
            }
            inflight.drain(&consumer, Some(Duration::from_millis(20)));
            let _ = consumer.poll(Duration::ZERO).map(|m| m.map(|m| seek_back(&consumer, &m)));
            continue;
        }
        if paused && in_flight <= cfg.max_in_flight / 2 {
            set_paused(&consumer, false);
            paused = false;
            metrics.paused.set(0.0);
        }

        // One batch: one table snapshot, one clock reading.
        let Some(view) = handle.load() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let decided_at = clock::now_text();
        let stamp = Stamp { table_epoch: view.epoch(), decided_at: &decided_at };
        let mut batch = Batch { cfg, view: &view, rules, stamp, metrics, counts: BatchCounts::default() };
        let started = Instant::now();
        let mut taken = 0usize;
        let mut wait = Duration::from_millis(100);
        while taken < cfg.batch_size && taken + in_flight < cfg.max_in_flight {
            let msg = match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(event = "consume_error", error = %e, "cannot read claims");
                    break;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            let (topic, key) = batch.decide(&msg, &mut buf);
            let token = Token::new(msg.partition(), msg.offset(), inflight.take_probe());
            inflight.tracker.lock().unwrap_or_else(|p| p.into_inner()).consumed(msg.partition(), msg.offset());
            let mut record = BaseRecord::with_opaque_to(topic, token.0).payload(&buf[..]);
            if let Some(k) = key.as_deref().or(msg.key()) {
                record = record.key(k);
            }
            // Headers pass through (trace ids, the load test's send stamps): what passes on keeps
            // what it does not understand (records.md).
            if let Some(h) = msg.headers() {
                record = record.headers(h.detach());
            }
            send(&producer, record, &inflight, &consumer);
            taken += 1;
        }
        batch.finish(taken, started);
    }
    inflight.drain(&consumer, None);
    consumer.commit_consumer_state(CommitMode::Sync).or_else(|e| match e {
        KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset) => Ok(()),
        e => Err(e),
    })?;
    producer.flush(Duration::from_secs(5)).ok();
    tracing::info!(event = "pipeline_stopped", "drained and committed");
    Ok(())
}

/// Sends, waiting for queue space (acknowledgements first) while the producer's queue is full.
fn send<C: ConsumerContext>(
    producer: &Producer_,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
    inflight: &Inflight,
    consumer: &BaseConsumer<C>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                inflight.drain(consumer, Some(Duration::from_millis(5)));
            }
            Err((error, r)) => {
                // Not queued at all (e.g. unknown topic): retried like a failed delivery.
                tracing::warn!(event = "produce_failed", topic = r.topic, %error, "cannot queue an output; will retry");
                inflight.metrics.retries.increment(1);
                let retry = Retry {
                    topic: r.topic.to_owned(),
                    key: r.key.map(<[u8]>::to_vec),
                    payload: r.payload.map(<[u8]>::to_vec).unwrap_or_default(),
                    not_before: Instant::now() + Duration::from_millis(500),
                };
                inflight.retries.lock().unwrap_or_else(|p| p.into_inner()).push_back((Token(r.delivery_opaque), retry));
                return;
            }
        }
    }
}

fn set_paused<C: ConsumerContext>(consumer: &BaseConsumer<C>, pause: bool) {
    if let Ok(tpl) = consumer.assignment() {
        let result = if pause { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
        if let Err(e) = result {
            tracing::warn!(event = "pause_failed", pause, error = %e);
        }
    }
}

/// A claim received while paused is not taken: rewind its partition so that it is read again.
fn seek_back<C: ConsumerContext>(consumer: &BaseConsumer<C>, msg: &BorrowedMessage<'_>) {
    if let Err(e) = consumer.seek(msg.topic(), msg.partition(), Offset::Offset(msg.offset()), Duration::from_secs(5)) {
        tracing::warn!(event = "seek_failed", partition = msg.partition(), error = %e);
    }
}

/// Exactly once: each batch of claims is one transaction holding its outputs and its input offsets, so
/// a crash either loses the whole batch's outputs (and its offsets: it is decided again) or keeps both.
/// Consumers of the output topics must read with `isolation.level=read_committed`.
fn run_transactional(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    handle: &TableHandle,
    ready: &AtomicBool,
    rules: &Rules,
    shutdown: &AtomicBool,
) -> Result<()> {
    let (ack_tx, ack_rx) = crossbeam_channel::unbounded::<Ack>();
    let producer: Arc<Producer_> = Arc::new(
        producer_config(kafka, cfg)
            .create_with_context(ProducerCtx { acks: ack_tx })
            .context("cannot create the transactional producer")?,
    );
    producer
        .init_transactions(Duration::from_secs(30))
        .context("cannot initialise transactions (does the broker support them?)")?;
    while !ready.load(Ordering::Acquire) {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let inflight = Arc::new(Inflight {
        tracker: Mutex::new(Tracker::new()),
        retries: Mutex::new(VecDeque::new()),
        probe: Mutex::new(None),
        acks: ack_rx,
        producer: Arc::clone(&producer),
        topic: cfg.claims.clone(),
        metrics: ClaimMetrics::new(),
    });
    let consumer: BaseConsumer<ConsumerCtx> = consumer_config(kafka, &cfg.group, true)
        .create_with_context(ConsumerCtx { inflight: Arc::clone(&inflight), rebalanced: AtomicBool::new(false) })
        .context("cannot create the claims consumer")?;
    consumer.subscribe(&[&cfg.claims]).context("cannot subscribe to the claims topic")?;
    tracing::info!(
        event = "pipeline_started",
        topic = cfg.claims,
        group = cfg.group,
        mode = "exactly_once",
        "taking claims"
    );
    let metrics = &inflight.metrics;
    let mut buf = Vec::with_capacity(1024);
    let txn_timeout = Duration::from_secs(30);
    while !shutdown.load(Ordering::Relaxed) {
        // Acknowledgements only feed the latency metric here: the transaction commit is the guarantee.
        while let Ok(ack) = inflight.acks.try_recv() {
            if ack.token.is_probe()
                && let Some(sent) = inflight.probe.lock().unwrap_or_else(|p| p.into_inner()).take()
            {
                metrics.latency.record(sent.elapsed().as_secs_f64());
            }
        }
        let Some(view) = handle.load() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        consumer.context().rebalanced.store(false, Ordering::Relaxed);
        let decided_at = clock::now_text();
        let stamp = Stamp { table_epoch: view.epoch(), decided_at: &decided_at };
        let mut batch = Batch { cfg, view: &view, rules, stamp, metrics, counts: BatchCounts::default() };
        // First and next offsets per partition of this batch.
        let mut span: Vec<(i32, i64, i64)> = Vec::new();
        let started = Instant::now();
        let mut open = false;
        let mut failed = false;
        let mut wait = Duration::from_millis(100);
        while span.iter().map(|s| (s.2 - s.1) as usize).sum::<usize>() < cfg.batch_size
            && started.elapsed() < cfg.transaction_time
            && !failed
        {
            let msg = match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(event = "consume_error", error = %e, "cannot read claims");
                    break;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::from_millis(5);
            if !open {
                producer.begin_transaction().context("cannot begin a transaction")?;
                open = true;
            }
            match span.iter_mut().find(|s| s.0 == msg.partition()) {
                Some(s) => s.2 = msg.offset() + 1,
                None => span.push((msg.partition(), msg.offset(), msg.offset() + 1)),
            }
            let (topic, key) = batch.decide(&msg, &mut buf);
            let token = Token::new(msg.partition(), msg.offset(), inflight.take_probe());
            let mut record = BaseRecord::with_opaque_to(topic, token.0).payload(&buf[..]);
            if let Some(k) = key.as_deref().or(msg.key()) {
                record = record.key(k);
            }
            // Headers pass through (trace ids, the load test's send stamps): what passes on keeps
            // what it does not understand (records.md).
            if let Some(h) = msg.headers() {
                record = record.headers(h.detach());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        // An output that is not in the transaction must not be committed past.
                        tracing::warn!(event = "produce_failed", error = %e, "aborting the transaction");
                        failed = true;
                        break;
                    }
                }
            }
        }
        if !open {
            continue;
        }
        let mut offsets = TopicPartitionList::new();
        for (p, _, next) in &span {
            offsets.add_partition_offset(&cfg.claims, *p, Offset::Offset(*next))?;
        }
        let committed: Result<(), String> = if failed {
            Err("an output could not be queued".into())
        } else if consumer.context().rebalanced.load(Ordering::Relaxed) {
            Err("the group rebalanced during the batch".into())
        } else {
            match consumer.group_metadata() {
                None => Err("no consumer group metadata".into()),
                Some(gm) => producer
                    .send_offsets_to_transaction(&offsets, &gm, txn_timeout)
                    .and_then(|()| producer.commit_transaction(txn_timeout))
                    .map_err(|e| {
                        if let KafkaError::Transaction(te) = &e
                            && te.is_fatal()
                        {
                            return format!("fatal: {e}");
                        }
                        e.to_string()
                    }),
            }
        };
        match committed {
            Ok(()) => {
                ::metrics::counter!(crate::io::metrics::TRANSACTIONS, "outcome" => "committed").increment(1);
                let taken: i64 = span.iter().map(|s| s.2 - s.1).sum();
                batch.finish(taken as usize, started);
            }
            Err(e) => {
                ::metrics::counter!(crate::io::metrics::TRANSACTIONS, "outcome" => "aborted").increment(1);
                if e.starts_with("fatal") {
                    bail!("transaction error (another instance with the same transactional id?): {e}");
                }
                tracing::warn!(event = "transaction_aborted", error = %e, "the batch will be decided again");
                producer.abort_transaction(txn_timeout).context("cannot abort the transaction")?;
                let assigned = consumer.assignment().unwrap_or_default();
                for (p, first, _) in &span {
                    if assigned.find_partition(&cfg.claims, *p).is_some() {
                        consumer
                            .seek(&cfg.claims, *p, Offset::Offset(*first), Duration::from_secs(10))
                            .context("cannot rewind after an aborted transaction")?;
                    }
                }
            }
        }
    }
    tracing::info!(event = "pipeline_stopped", mode = "exactly_once", "last transaction committed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_pack_partition_offset_and_probe() {
        for (p, o, probe) in [(0, 0, false), (3, 18_812, true), (32_767, (1 << 48) - 1, false), (12, 1 << 40, true)] {
            let t = Token::new(p, o, probe);
            assert_eq!((t.partition(), t.offset(), t.is_probe()), (p, o, probe));
        }
    }
}
