//! Exactly once: each batch of claims is one Kafka transaction holding its outputs and its input
//! offsets (KIP-447: `send_offsets_to_transaction` with the consumer's group metadata, Kafka 2.5 or
//! later), so a crash either loses the whole batch's outputs (and its offsets: it is decided again) or
//! keeps both. Consumers of the output topics must read with `isolation.level=read_committed`.
//!
//! The producer's `transactional.id` is stable for the instance's slot (see `transactional_id` in the
//! stream's configuration): a restarted instance fences its crashed predecessor when it initialises, so
//! the predecessor's open transaction is aborted at once rather than when it times out.
//!
//! **A producer that stops answering is replaced.** Every blocking call of the transactional producer
//! runs on a watchdog ([`bounded`]): librdkafka (2.12) can block `send_offsets_to_transaction` forever
//! when the group coordinator dies — its `TxnOffsetCommit` waits, with no deadline, for a connection to
//! the coordinator it found (the dead node, until the cluster fences it) to come up, and is woken only
//! when some broker connection goes up or down (librdkafka issues 5456 and 5511: the coordinator
//! request's timeout is never checked). A call that outlives its own timeout by [`STUCK_GRACE`], or an
//! abort that fails, ends that producer: a new one with the same `transactional.id` fences it (its open
//! transaction is aborted by the coordinator, or completed if its commit had got through), and the
//! batch's partitions are rewound to the group's committed offsets — the one account of whether the
//! batch committed. Before this, the stream decided nothing and logged nothing after a coordinator's
//! node was killed (issue 11).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use crossbeam_channel::Receiver;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::super::KafkaConfig;
use super::super::admin::OutputWatch;
use super::super::errors::Class;
use super::at_least_once::hint;
use super::decide::Batch;
use super::delivery::{self, Ack, Failed, OutputProducer, Token};
use super::rebalance::ConsumerCtx;
use super::{PipelineConfig, PipelineState, consumer_config};
use crate::io::clock;
use crate::io::metrics::{self as m, ClaimMetrics};
use claimgate::routing::Rules;
use claimgate::table::TableHandle;

/// Runs the exactly-once pipeline until `shutdown`; the last transaction is committed or aborted.
pub fn run(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    handle: &TableHandle,
    rules: &Rules,
    state: &Arc<PipelineState>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let (mut producer, mut acks) = delivery::producer(kafka, cfg)?;
    let p = Arc::clone(&producer);
    let init = "cannot initialise transactions (the broker needs transaction.state.log settings its size can meet)";
    match bounded("init", INIT_TIMEOUT + STUCK_GRACE, move || p.init_transactions(INIT_TIMEOUT)) {
        Some(r) => r.context(init)?,
        None => bail!("{init}: init_transactions did not return within {:?}", INIT_TIMEOUT + STUCK_GRACE),
    }
    let consumer: BaseConsumer<ConsumerCtx> = consumer_config(kafka, cfg, true)
        .create_with_context(ConsumerCtx::new(None, &cfg.offsets_reset, state, &cfg.claims))?;
    consumer.subscribe(&[&cfg.claims])?;
    let mut outputs = OutputWatch::new(kafka, &[&cfg.accepted, &cfg.rejected, &cfg.dlq])?;
    state.taking_claims.store(true, Ordering::Release);
    tracing::info!(
        event = "pipeline_started",
        topic = cfg.claims,
        group = cfg.group,
        mode = "exactly_once",
        "taking claims"
    );
    let metrics = ClaimMetrics::new();
    let mut probe: Option<Instant> = None;
    // Source positions whose output the broker refused as bad input: decided again, they get the dead
    // letter that says so (otherwise the same refusal would abort every retry of the batch).
    let mut refused: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    let mut buf = Vec::with_capacity(1024);
    let txn_timeout = Duration::from_secs(30);
    while !shutdown.is_cancelled() {
        outputs.check()?;
        consumer.context().rebalanced.store(false, Ordering::Relaxed);
        // The transaction's first line is waited for before its table view is taken, and the
        // transaction ends at the first line after a newer view: a status change takes effect for every
        // line taken after its view (as in `at_least_once`).
        let first = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                claims_error(&e)?;
                continue;
            }
            Some(Ok(m)) => m,
        };
        let Some(view) = handle.load() else {
            super::at_least_once::seek_back(&consumer, &first);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let decided_at = clock::now_text();
        let mut batch = Batch::new(cfg, &view, rules, &decided_at, &metrics);
        // First and next offsets per partition of this batch.
        let mut span: Vec<(i32, i64, i64)> = Vec::new();
        let started = Instant::now();
        let mut open = false;
        let mut failed: Option<String> = None;
        let mut next = Some(first);
        while span.iter().map(|s| (s.2 - s.1) as usize).sum::<usize>() < cfg.batch_size
            && started.elapsed() < cfg.transaction_time
            && failed.is_none()
            && (next.is_some() || handle.is_current(&view))
        {
            let msg = match next.take() {
                Some(m) => m,
                None => match consumer.poll(Duration::from_millis(5)) {
                    None => break,
                    Some(Err(e)) => {
                        claims_error(&e)?;
                        break;
                    }
                    Some(Ok(m)) => m,
                },
            };
            if !open {
                producer.begin_transaction().context("cannot begin a transaction")?;
                open = true;
            }
            match span.iter_mut().find(|s| s.0 == msg.partition()) {
                Some(s) => s.2 = msg.offset() + 1,
                None => span.push((msg.partition(), msg.offset(), msg.offset() + 1)),
            }
            let is_probe = probe.is_none();
            if is_probe {
                probe = Some(Instant::now());
            }
            let token = Token::new(msg.partition(), msg.offset(), is_probe);
            let out;
            let record = match refused.get(&(msg.partition(), msg.offset())) {
                Some(dead) => BaseRecord::with_opaque_to(&cfg.dlq, token.0).payload(&dead[..]),
                None => {
                    out = batch.decide(&msg, &mut buf);
                    delivery::record(&msg, out.topic, out.key.as_deref(), &buf, token)
                }
            };
            let Err(r) = delivery::send(&producer, record, || std::thread::sleep(Duration::from_millis(1))) else {
                continue;
            };
            let (e, class, r) = *r;
            match class {
                Class::BadInput => {
                    let f = Failed::of_record(&r, e, class);
                    let source = Batch::source(&msg);
                    refused.insert((msg.partition(), msg.offset()), delivery::refused_output(&f, &source, &decided_at));
                    failed = Some(format!(
                        "an output was refused as bad input ({}); replaced by a dead letter on retry",
                        f.error
                    ));
                }
                Class::Fatal => bail!("cannot queue an output to {}: {e} ({})", r.topic, hint(&e)),
                // An output that is not in the transaction must not be committed past.
                Class::Transient => failed = Some(format!("an output could not be queued: {e}")),
            }
        }
        if !open {
            continue;
        }
        let mut offsets = TopicPartitionList::new();
        for (p, _, next) in &span {
            offsets.add_partition_offset(&cfg.claims, *p, Offset::Offset(*next))?;
        }
        let ending = if let Some(f) = failed {
            Ending::Failed(f)
        } else if consumer.context().rebalanced.load(Ordering::Relaxed) {
            Ending::Failed("the group rebalanced during the batch".into())
        } else {
            match consumer.group_metadata() {
                None => Ending::Failed("no consumer group metadata".into()),
                Some(gm) => commit(&producer, offsets, gm, txn_timeout),
            }
        };
        // Delivery reports of this transaction: the latency probe, and outputs refused as bad input.
        while let Ok(ack) = acks.try_recv() {
            match ack.failed {
                None if ack.token.is_probe() => {
                    if let Some(sent) = probe.take() {
                        metrics.latency.record(sent.elapsed().as_secs_f64());
                    }
                }
                None => {}
                Some(f) if f.class == Class::BadInput && !f.was_replacement => {
                    let source = format!("{}/{}@{}", cfg.claims, ack.token.partition(), ack.token.offset());
                    ::metrics::counter!(m::REFUSED_OUTPUTS, "topic" => f.topic.clone()).increment(1);
                    tracing::warn!(event = "output_refused", topic = f.topic, source, size = f.size, error = %f.error, "the broker refused an output as bad input: a dead letter saying so replaces it");
                    refused.insert(
                        (ack.token.partition(), ack.token.offset()),
                        delivery::refused_output(&f, &source, &decided_at),
                    );
                }
                Some(f) if f.class == Class::Fatal => {
                    bail!("the broker refused an output to {}: {} ({})", f.topic, f.error, hint(&f.error))
                }
                Some(_) => {}
            }
        }
        if ack_probe_lost(&probe) {
            probe = None;
        }
        // Why the producer must be replaced, if it must.
        let mut stuck: Option<String> = None;
        match ending {
            Ending::Committed => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "committed").increment(1);
                let taken: i64 = span.iter().map(|s| s.2 - s.1).sum();
                ::metrics::histogram!(m::TRANSACTION_CLAIMS).record(taken as f64);
                for (p, first, next) in &span {
                    refused.retain(|(rp, ro), _| !(rp == p && (*first..*next).contains(ro)));
                }
                batch.finish(taken as usize);
            }
            Ending::Fatal(e) => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "aborted").increment(1);
                bail!("transaction error (another instance with the same transactional.id?): {e}");
            }
            Ending::Stuck(e) => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "aborted").increment(1);
                stuck = Some(e);
            }
            Ending::Failed(e) => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "aborted").increment(1);
                tracing::warn!(event = "transaction_aborted", error = %e, "the batch will be decided again");
                let p = Arc::clone(&producer);
                match bounded("abort", txn_timeout + STUCK_GRACE, move || p.abort_transaction(txn_timeout)) {
                    Some(Ok(())) => rewind(&consumer, &cfg.claims, &span, None)?,
                    Some(Err(e)) if super::super::errors::classify(&e) == Class::Fatal => {
                        bail!("cannot abort the transaction (another instance with the same transactional.id?): {e}")
                    }
                    // E.g. a commit that timed out is still under way (librdkafka refuses the abort
                    // as conflicting) or the coordinator does not answer.
                    Some(Err(e)) => stuck = Some(format!("cannot abort the transaction: {e}")),
                    None => {
                        stuck = Some(format!("abort_transaction did not return within {:?}", txn_timeout + STUCK_GRACE))
                    }
                }
            }
        }
        if let Some(why) = stuck {
            tracing::warn!(
                event = "transactional_producer_replaced",
                reason = %why,
                "the transactional producer stopped answering: a new one fences it and the batch is decided again from the committed offsets"
            );
            ::metrics::counter!(m::PRODUCERS_REPLACED).increment(1);
            let old = std::mem::replace(&mut producer, replacement(kafka, cfg, shutdown, &mut acks)?);
            // A call still blocked holds its own clone: the old producer ends when that call returns
            // (fenced), never on this thread.
            std::thread::spawn(move || drop(old));
            rewind(&consumer, &cfg.claims, &span, Some(Duration::from_secs(10)))?;
        }
    }
    tracing::info!(event = "pipeline_stopped", mode = "exactly_once", "last transaction committed");
    Ok(())
}

/// `init_transactions`' timeout (the coordinator may be moving: a new producer retries).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than its own timeout a transactional call may block before its producer is deemed
/// stuck and replaced.
pub const STUCK_GRACE: Duration = Duration::from_secs(5);

/// How a batch's transaction ended.
enum Ending {
    Committed,
    /// Not committed, and the producer can abort it.
    Failed(String),
    /// Fenced, unauthorised: the pipeline stops.
    Fatal(String),
    /// A call did not return in time: the producer is replaced.
    Stuck(String),
}

/// Runs a blocking call of the transactional producer on a helper thread and waits at most `limit` for
/// it: `None` if it has not returned by then (the thread is left to finish on its own, with its clone of
/// the producer).
pub fn bounded<T: Send + 'static>(what: &str, limit: Duration, call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new().name(format!("txn-{what}")).spawn(move || {
        let _ = tx.send(call());
    });
    if let Err(e) = spawned {
        tracing::warn!(event = "transaction_watchdog_unavailable", call = what, error = %e, "cannot start a helper thread");
        return None;
    }
    rx.recv_timeout(limit).ok()
}

/// Adds the batch's offsets to its transaction and commits it, each call on a watchdog.
fn commit(
    producer: &Arc<OutputProducer>,
    offsets: TopicPartitionList,
    gm: ConsumerGroupMetadata,
    timeout: Duration,
) -> Ending {
    let classify = |e: KafkaError| {
        if super::super::errors::classify(&e) == Class::Fatal {
            Ending::Fatal(e.to_string())
        } else {
            Ending::Failed(e.to_string())
        }
    };
    let p = Arc::clone(producer);
    let limit = timeout + STUCK_GRACE;
    match bounded("send-offsets", limit, move || p.send_offsets_to_transaction(&offsets, &gm, timeout)) {
        None => return Ending::Stuck(format!("send_offsets_to_transaction did not return within {limit:?}")),
        Some(Err(e)) => return classify(e),
        Some(Ok(())) => {}
    }
    let p = Arc::clone(producer);
    // rust-rdkafka's commit_transaction flushes, then commits: each bounded by `timeout`.
    let limit = 2 * timeout + STUCK_GRACE;
    match bounded("commit", limit, move || p.commit_transaction(timeout)) {
        None => Ending::Stuck(format!("commit_transaction did not return within {limit:?}")),
        Some(Err(e)) => classify(e),
        Some(Ok(())) => Ending::Committed,
    }
}

/// A new transactional producer in place of one that stopped answering: `init_transactions` with the
/// same `transactional.id` fences the old one. Tried again until it succeeds or the stream stops.
fn replacement(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    shutdown: &CancellationToken,
    acks: &mut Receiver<Ack>,
) -> Result<Arc<OutputProducer>> {
    loop {
        let (producer, rx) = delivery::producer(kafka, cfg)?;
        let p = Arc::clone(&producer);
        let error = match bounded("init", INIT_TIMEOUT + STUCK_GRACE, move || p.init_transactions(INIT_TIMEOUT)) {
            Some(Ok(())) => {
                *acks = rx;
                tracing::info!(
                    event = "transactional_producer_ready",
                    "the new transactional producer fenced the old one"
                );
                return Ok(producer);
            }
            Some(Err(e)) if super::super::errors::classify(&e) == Class::Fatal => {
                bail!("cannot initialise the new transactional producer: {e} ({})", hint(&e))
            }
            Some(Err(e)) => e.to_string(),
            None => format!("init_transactions did not return within {:?}", INIT_TIMEOUT + STUCK_GRACE),
        };
        tracing::warn!(event = "transactional_producer_init_failed", error = %error, "trying again");
        std::thread::spawn(move || drop(producer));
        if shutdown.is_cancelled() {
            bail!("stopped before a new transactional producer could be initialised: {error}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Rewinds the batch's partitions that are still assigned: to the batch's first offsets after an abort
/// (`committed_wait` `None`), or to the group's committed offsets when whether the batch committed is
/// not known (its producer was replaced; no committed offset: the batch's first).
fn rewind(
    consumer: &BaseConsumer<ConsumerCtx>,
    claims: &str,
    span: &[(i32, i64, i64)],
    committed_wait: Option<Duration>,
) -> Result<()> {
    let assigned = consumer.assignment().unwrap_or_default();
    let mine: Vec<(i32, i64)> = span
        .iter()
        .filter(|(p, _, _)| assigned.find_partition(claims, *p).is_some())
        .map(|(p, first, _)| (*p, *first))
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let mut to = mine.clone();
    if let Some(wait) = committed_wait {
        let mut ask = TopicPartitionList::new();
        for (p, _) in &mine {
            ask.add_partition(claims, *p);
        }
        let mut tries = 0;
        let committed = loop {
            match consumer.committed_offsets(ask.clone(), wait) {
                Ok(c) => break c,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(event = "committed_offsets_unavailable", error = %e, "cannot read the group's committed offsets yet");
                }
                Err(e) => return Err(e).context("cannot read the group's committed offsets to rewind to"),
            }
        };
        for (p, at) in &mut to {
            if let Some(Offset::Offset(o)) = committed.find_partition(claims, *p).map(|e| e.offset()) {
                *at = o;
            }
        }
    }
    for (p, at) in to {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(claims, p, Offset::Offset(at))?;
        consumer.seek_partitions(tpl, Duration::from_secs(10)).context("cannot rewind after an aborted transaction")?;
    }
    Ok(())
}

/// A probe whose acknowledgement never came (its transaction was aborted) is dropped after a while so
/// that latency sampling goes on.
fn ack_probe_lost(probe: &Option<Instant>) -> bool {
    probe.is_some_and(|p| p.elapsed() > Duration::from_secs(60))
}

/// A consumer error while reading claims: fatal ones end the pipeline, the others are said and the
/// batch goes on without the poll that failed.
fn claims_error(e: &KafkaError) -> Result<()> {
    if super::super::errors::classify(e) == Class::Fatal
        && !matches!(e, KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition))
    {
        bail!("cannot read claims: {e} ({})", hint(e));
    }
    tracing::warn!(event = "consume_error", error = %e, "cannot read claims");
    Ok(())
}
