//! Exactly once: each batch of claims is one Kafka transaction holding its outputs and its input
//! offsets (KIP-447: `send_offsets_to_transaction` with the consumer's group metadata, Kafka 2.5 or
//! later), so a crash either loses the whole batch's outputs (and its offsets: it is decided again) or
//! keeps both. Consumers of the output topics must read with `isolation.level=read_committed`.
//!
//! The producer's `transactional.id` is stable for the instance's slot (see `transactional_id` in the
//! stream's configuration): a restarted instance fences its crashed predecessor when it initialises, so
//! the predecessor's open transaction is aborted at once rather than when it times out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
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
use super::delivery::{self, Failed, Token};
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
    let (producer, acks) = delivery::producer(kafka, cfg)?;
    producer.init_transactions(Duration::from_secs(30)).context(
        "cannot initialise transactions (the broker needs transaction.state.log settings its size can meet)",
    )?;
    let consumer: BaseConsumer<ConsumerCtx> =
        consumer_config(kafka, cfg, true).create_with_context(ConsumerCtx::new(None, &cfg.offsets_reset))?;
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
        let committed: Result<(), String> = if let Some(f) = failed {
            Err(f)
        } else if consumer.context().rebalanced.load(Ordering::Relaxed) {
            Err("the group rebalanced during the batch".into())
        } else {
            match consumer.group_metadata() {
                None => Err("no consumer group metadata".into()),
                Some(gm) => producer
                    .send_offsets_to_transaction(&offsets, &gm, txn_timeout)
                    .and_then(|()| producer.commit_transaction(txn_timeout))
                    .map_err(|e| {
                        if super::super::errors::classify(&e) == Class::Fatal {
                            return format!("fatal: {e}");
                        }
                        e.to_string()
                    }),
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
        match committed {
            Ok(()) => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "committed").increment(1);
                let taken: i64 = span.iter().map(|s| s.2 - s.1).sum();
                for (p, first, next) in &span {
                    refused.retain(|(rp, ro), _| !(rp == p && (*first..*next).contains(ro)));
                }
                batch.finish(taken as usize);
            }
            Err(e) => {
                ::metrics::counter!(m::TRANSACTIONS, "outcome" => "aborted").increment(1);
                if e.starts_with("fatal") {
                    bail!("transaction error (another instance with the same transactional.id?): {e}");
                }
                tracing::warn!(event = "transaction_aborted", error = %e, "the batch will be decided again");
                producer.abort_transaction(txn_timeout).context("cannot abort the transaction")?;
                let assigned = consumer.assignment().unwrap_or_default();
                for (p, first, _) in &span {
                    if assigned.find_partition(&cfg.claims, *p).is_some() {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition_offset(&cfg.claims, *p, Offset::Offset(*first))?;
                        consumer
                            .seek_partitions(tpl, Duration::from_secs(10))
                            .context("cannot rewind after an aborted transaction")?;
                    }
                }
            }
        }
    }
    tracing::info!(event = "pipeline_stopped", mode = "exactly_once", "last transaction committed");
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
