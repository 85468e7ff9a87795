//! At least once, always: automatic offset storing is off; an offset is stored (then committed by the
//! periodic auto-commit, and synchronously at shutdown and on revocation) only when the output of it and
//! of every earlier offset of its partition was acknowledged by the broker ([`Tracker`]). In-flight
//! claims are bounded: at the bound, consumption pauses until acknowledgements catch up, and
//! acknowledgements are always handled before new input.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use crossbeam_channel::Receiver;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode as Code;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::super::admin::OutputWatch;
use super::super::errors::Class;
use super::super::tracker::Tracker;
use super::decide::Batch;
use super::delivery::{self, Ack, Failed, OutputProducer, Token};
use super::rebalance::ConsumerCtx;
use super::{PipelineConfig, PipelineState, consumer_config};
use crate::io::clock;
use crate::io::metrics::{self as m, ClaimMetrics};
use claimgate::routing::Rules;
use claimgate::table::TableHandle;

/// A dead letter to send in place of an output the broker refused.
struct Replacement {
    token: Token,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

/// The in-flight book-keeping, shared by the pipeline loop and the rebalance callback (both run on
/// the pipeline thread, inside and outside `poll`; the mutexes are never contended).
pub struct Inflight {
    tracker: Mutex<Tracker>,
    /// When the claim flagged as the latency probe was sent; one probe in flight at a time.
    probe: Mutex<Option<Instant>>,
    acks: Receiver<Ack>,
    replacements: Mutex<Vec<Replacement>>,
    fatal: Mutex<Option<String>>,
    claims: String,
    dlq: String,
    state: Arc<PipelineState>,
    metrics: ClaimMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inflight {
    /// Handles every acknowledgement already received (waiting up to `wait` for the first), and stores
    /// the offsets that became committable. Returns the claims still in flight.
    pub fn drain<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, wait: Option<Duration>) -> usize {
        let mut tracker = lock(&self.tracker);
        let mut next = match wait {
            Some(w) => self.acks.recv_timeout(w).ok(),
            None => self.acks.try_recv().ok(),
        };
        while let Some(ack) = next {
            match ack.failed {
                None => {
                    if ack.token.is_probe()
                        && let Some(sent) = lock(&self.probe).take()
                    {
                        self.metrics.latency.record(sent.elapsed().as_secs_f64());
                    }
                    tracker.acknowledged(ack.token.partition(), ack.token.offset());
                }
                Some(f) => self.failed(ack.token, f),
            }
            next = self.acks.try_recv().ok();
        }
        for (partition, offset) in tracker.take_committable() {
            if let Err(e) = consumer.store_offset(&self.claims, partition, offset) {
                // The partition was revoked meanwhile; its new owner starts from the last commit.
                ::metrics::counter!(m::COMMIT_FAILURES, "when" => "store").increment(1);
                tracing::warn!(event = "offset_store_failed", partition, offset, error = %e, "the claims after the last commit are decided again by the partition's owner");
            }
        }
        let oldest = tracker.oldest_unacked();
        self.state.set_oldest_unacked(oldest);
        let n = tracker.in_flight();
        self.metrics.in_flight.set(n as f64);
        n
    }

    /// A delivery the broker refused: bad input is replaced by a dead letter, anything else stops the
    /// pipeline (its offset is not committed: the claim is decided again after a restart).
    fn failed(&self, token: Token, f: Failed) {
        let source = format!("{}/{}@{}", self.claims, token.partition(), token.offset());
        match f.class {
            Class::BadInput if !f.was_replacement => {
                ::metrics::counter!(m::REFUSED_OUTPUTS, "topic" => f.topic.clone()).increment(1);
                tracing::warn!(
                    event = "output_refused",
                    topic = f.topic,
                    source,
                    size = f.size,
                    error = %f.error,
                    "the broker refused an output as bad input: a dead letter saying so replaces it"
                );
                let payload = delivery::refused_output(&f, &source, &clock::now_text());
                let headers = delivery::refused_headers(&f);
                lock(&self.replacements).push(Replacement { token, key: f.key.clone(), payload, headers });
            }
            class => {
                let what =
                    if f.was_replacement { "even the dead letter replacing a refused output" } else { "an output" };
                let message = format!(
                    "the broker refused {what} to {} ({}, {}): {}; {source} stays uncommitted and is decided again after a restart",
                    f.topic,
                    class.as_str(),
                    f.error,
                    hint(&f.error)
                );
                lock(&self.fatal).get_or_insert(message);
            }
        }
    }

    /// True if this claim should carry the latency probe (none is in flight): starts its clock.
    fn take_probe(&self) -> bool {
        let mut slot = lock(&self.probe);
        if slot.is_some() {
            return false;
        }
        *slot = Some(Instant::now());
        true
    }

    /// In-flight claims of one partition.
    pub fn in_flight_of(&self, partition: i32) -> usize {
        lock(&self.tracker).in_flight_of(partition)
    }

    /// Forgets revoked partitions: their unacknowledged claims go to the new owner.
    pub fn forget(&self, partitions: &[i32]) {
        let mut t = lock(&self.tracker);
        for p in partitions {
            t.forget(*p);
        }
    }

    fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }
}

/// A sentence on what to check, for the errors an operator meets.
pub fn hint(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(Code::UnknownTopic | Code::UnknownTopicOrPartition | Code::UnknownPartition) => {
            "the topic does not exist (deleted, or misnamed in `topics.*`): create it and restart"
        }
        Some(Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed) => {
            "the broker's ACLs do not allow this client to write there"
        }
        Some(Code::MessageSizeTooLarge) => "the topic's max.message.bytes is below the record",
        Some(Code::Fatal | Code::ProducerFenced | Code::InvalidProducerEpoch) => {
            "the idempotent producer cannot go on (another producer with the same id, or lost sequence)"
        }
        _ => "see the broker's log",
    }
}

/// Runs the at-least-once pipeline until `shutdown`; then drains, commits and returns.
pub fn run(
    kafka: &super::super::KafkaConfig,
    cfg: &PipelineConfig,
    handle: &TableHandle,
    rules: &Rules,
    state: &Arc<PipelineState>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let (producer, acks) = delivery::producer(kafka, cfg)?;
    let inflight = Arc::new(Inflight {
        tracker: Mutex::new(Tracker::new()),
        probe: Mutex::new(None),
        acks,
        replacements: Mutex::new(Vec::new()),
        fatal: Mutex::new(None),
        claims: cfg.claims.clone(),
        dlq: cfg.dlq.clone(),
        state: Arc::clone(state),
        metrics: ClaimMetrics::new(),
    });
    let consumer: BaseConsumer<ConsumerCtx> = consumer_config(kafka, cfg, false)
        .create_with_context(ConsumerCtx::new(Some(Arc::clone(&inflight)), &cfg.offsets_reset, state, &cfg.claims))?;
    consumer.subscribe(&[&cfg.claims])?;
    let mut outputs = OutputWatch::new(kafka, &[&cfg.accepted, &cfg.rejected, &cfg.dlq])?;
    state.taking_claims.store(true, Ordering::Release);
    tracing::info!(
        event = "pipeline_started",
        topic = cfg.claims,
        group = cfg.group,
        mode = "at_least_once",
        "taking claims"
    );

    let metrics = &inflight.metrics;
    let mut buf = Vec::with_capacity(1024);
    let mut paused = false;
    let mut deadline: Option<Instant> = None;
    let mut last_consume_error = None::<Instant>;
    loop {
        let in_flight = inflight.drain(&consumer, None);
        if let Some(f) = inflight.fatal() {
            bail!(f);
        }
        outputs.check()?;
        send_replacements(&producer, &inflight, &consumer)?;
        if deadline.is_none() && shutdown.is_cancelled() {
            deadline = Some(Instant::now() + cfg.shutdown_timeout);
            set_paused(&consumer, true);
            paused = true;
            tracing::info!(event = "draining", in_flight, "shutdown: no new claims; waiting for in-flight outputs");
        }
        if let Some(d) = deadline {
            if in_flight == 0 {
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
            if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
                seek_back(&consumer, &m);
            }
            continue;
        }
        if paused && in_flight <= cfg.max_in_flight / 2 {
            set_paused(&consumer, false);
            paused = false;
            metrics.paused.set(0.0);
        }

        // One batch: one table snapshot, one clock reading — taken once the batch's first line is in
        // hand, not before waiting for it, and the batch ends at the first line after a newer view is
        // published: a status change takes effect for every line taken after its view, never for a
        // line held in a batch begun before it (a line sent after the status query showed the change
        // was decided on the table before it when the view was taken before a 100 ms wait).
        let first = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                consume_error(&e, &mut last_consume_error)?;
                continue;
            }
            Some(Ok(m)) => m,
        };
        let Some(view) = handle.load() else {
            seek_back(&consumer, &first);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let decided_at = clock::now_text();
        let mut batch = Batch::new(cfg, &view, rules, &decided_at, metrics);
        let mut taken = 0usize;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            let out = batch.decide(&msg, &mut buf);
            let token = Token::new(msg.partition(), msg.offset(), inflight.take_probe());
            lock(&inflight.tracker).consumed(msg.partition(), msg.offset());
            let record = delivery::record(&msg, out.topic, out.key.as_deref(), &buf, token);
            queue(&producer, record, &inflight, &consumer)?;
            taken += 1;
            if taken >= cfg.batch_size || taken + in_flight >= cfg.max_in_flight || !handle.is_current(&view) {
                break;
            }
            next = match consumer.poll(Duration::ZERO) {
                None => None,
                Some(Err(e)) => {
                    consume_error(&e, &mut last_consume_error)?;
                    None
                }
                Some(Ok(m)) => Some(m),
            };
        }
        batch.finish(taken);
    }
    inflight.drain(&consumer, None);
    consumer.commit_consumer_state(CommitMode::Sync).or_else(|e| match e {
        KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset) => Ok(()),
        e => Err(e),
    })?;
    tracing::info!(event = "pipeline_stopped", "drained and committed");
    Ok(())
}

/// Queues an output; one the producer refuses to queue as bad input (larger than `message.max.bytes`)
/// is replaced by a dead letter, a transient refusal is retried after a pause, a fatal one stops.
fn queue<C: ConsumerContext>(
    producer: &OutputProducer,
    record: BaseRecord<'_, [u8], [u8], usize>,
    inflight: &Inflight,
    consumer: &BaseConsumer<C>,
) -> Result<()> {
    let mut record = record;
    loop {
        let drain = || {
            inflight.drain(consumer, Some(Duration::from_millis(5)));
        };
        let Err(refused) = delivery::send(producer, record, drain) else { return Ok(()) };
        let (e, class, r) = *refused;
        if class == Class::Transient {
            inflight.metrics.retries.increment(1);
            tracing::warn!(event = "produce_retry", topic = r.topic, error = %e, "cannot queue an output yet; trying again");
            std::thread::sleep(delivery::REQUEUE_BACKOFF);
            inflight.drain(consumer, None);
            record = r;
            continue;
        }
        inflight.failed(Token(r.delivery_opaque), Failed::of_record(&r, e, class));
        return match inflight.fatal() {
            Some(f) => Err(anyhow!(f)),
            None => Ok(()),
        };
    }
}

/// Sends the dead letters that replace refused outputs, with their claim's token: the claim's offset is
/// committed once the dead letter is acknowledged.
fn send_replacements<C: ConsumerContext>(
    producer: &OutputProducer,
    inflight: &Inflight,
    consumer: &BaseConsumer<C>,
) -> Result<()> {
    let pending = std::mem::take(&mut *lock(&inflight.replacements));
    for r in pending {
        let mut record =
            BaseRecord::with_opaque_to(&inflight.dlq, r.token.0).payload(&r.payload[..]).headers(r.headers);
        if let Some(k) = &r.key {
            record = record.key(&k[..]);
        }
        if let Err(refused) = delivery::send(producer, record, || {
            inflight.drain(consumer, Some(Duration::from_millis(5)));
        }) {
            bail!("cannot queue the dead letter replacing a refused output to {}: {}", inflight.dlq, refused.0);
        }
    }
    Ok(())
}

/// A consumer error: fatal ones stop the pipeline; the rest are logged (at most every 10 s) and the
/// client retries.
fn consume_error(e: &KafkaError, last: &mut Option<Instant>) -> Result<()> {
    let class = super::super::errors::classify(e);
    // A missing claims topic is waited for (the operator may be recreating it), not fatal.
    let missing = matches!(e.rdkafka_error_code(), Some(Code::UnknownTopicOrPartition | Code::UnknownTopic));
    if class == Class::Fatal && !missing {
        bail!("cannot read claims: {e} ({})", hint(e));
    }
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(event = "consume_error", error = %e, class = class.as_str(), "cannot read claims; the client retries");
    }
    Ok(())
}

/// Pauses or resumes every assigned partition.
pub fn set_paused<C: ConsumerContext>(consumer: &BaseConsumer<C>, pause: bool) {
    if let Ok(tpl) = consumer.assignment() {
        let result = if pause { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
        if let Err(e) = result {
            tracing::warn!(event = "pause_failed", pause, error = %e);
        }
    }
}

/// A claim received while paused is not taken: rewind its partition so that it is read again.
pub(super) fn seek_back<C: ConsumerContext>(consumer: &BaseConsumer<C>, msg: &BorrowedMessage<'_>) {
    let mut tpl = TopicPartitionList::new();
    if tpl.add_partition_offset(msg.topic(), msg.partition(), Offset::Offset(msg.offset())).is_ok()
        && let Err(e) = consumer.seek_partitions(tpl, Duration::from_secs(5))
    {
        tracing::warn!(event = "seek_failed", partition = msg.partition(), error = %e);
    }
}
