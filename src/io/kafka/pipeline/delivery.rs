//! Delivery of outputs: the producer and its configuration, the token each output carries back in its
//! acknowledgement, building an output record (the input's key and headers kept), queueing it while the
//! producer's queue is full, and what a failed delivery means.
//!
//! Transient failures never reach us: the producer is idempotent (`acks=all`, at most 5 requests in
//! flight per connection, retries inside librdkafka keep the order of each partition) and gives up on no
//! output (`message.timeout.ms=0` in at-least-once mode), so a delivery report is either success or a
//! refusal that retrying cannot change. Such a refusal is bad input — the broker refuses the record
//! (too large, invalid): a small dead letter that says so replaces it — or fatal (unauthorised, a topic
//! that does not exist, a fenced producer): the pipeline stops and says why. A broker that stops
//! answering shows as the age of the oldest unacknowledged output (`/metrics`, `/healthz`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use super::super::errors::{Class, classify};
use super::super::{BrokerWatch, Context, KafkaConfig};
use super::PipelineConfig;
use claimgate::record::DeadLetter;

/// The header that marks a dead letter written in place of an output the broker refused.
pub const REFUSED_HEADER: &str = "claimgate-refused-output";

/// What travels with a produced output and comes back with its acknowledgement, packed in the opaque
/// word librdkafka carries (no allocation per claim): the source partition (15 bits), offset (48 bits),
/// and a flag marking the one claim in flight whose latency is being sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(pub usize);

const PROBE: usize = 1 << 63;
const OFFSET_BITS: u32 = 48;

impl Token {
    /// Packs a source position.
    pub fn new(partition: i32, offset: i64, probe: bool) -> Token {
        // Kafka partitions stay far below 2^15 and offsets below 2^48 (a million claims a second for
        // nine years); out-of-range values are clamped rather than allowed to corrupt the other field.
        let p = (partition.clamp(0, 0x7FFF) as usize) << OFFSET_BITS;
        let o = offset.clamp(0, (1 << OFFSET_BITS) - 1) as usize;
        Token(p | o | if probe { PROBE } else { 0 })
    }
    /// The source partition.
    pub fn partition(self) -> i32 {
        ((self.0 >> OFFSET_BITS) & 0x7FFF) as i32
    }
    /// The source offset.
    pub fn offset(self) -> i64 {
        (self.0 & ((1 << OFFSET_BITS) - 1)) as i64
    }
    /// Is this the claim whose latency is sampled?
    pub fn is_probe(self) -> bool {
        self.0 & PROBE != 0
    }
}

/// A delivery report.
pub struct Ack {
    /// The output's source position.
    pub token: Token,
    /// On failure: why, and the record as it was sent.
    pub failed: Option<Failed>,
}

/// An output the broker did not take.
pub struct Failed {
    /// The error.
    pub error: KafkaError,
    /// Its class.
    pub class: Class,
    /// The topic it was sent to.
    pub topic: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its headers.
    pub headers: Option<OwnedHeaders>,
    /// True if it was itself a dead letter replacing a refused output.
    pub was_replacement: bool,
}

impl Failed {
    /// A record the producer refused to queue.
    pub fn of_record(r: &BaseRecord<'_, [u8], [u8], usize>, error: KafkaError, class: Class) -> Failed {
        Failed {
            error,
            class,
            topic: r.topic.to_owned(),
            size: r.payload.map_or(0, <[u8]>::len),
            key: r.key.map(<[u8]>::to_vec),
            was_replacement: r.headers.as_ref().is_some_and(|h| h.iter().any(|h| h.key == REFUSED_HEADER)),
            headers: r.headers.clone(),
        }
    }
}

/// The producer's context: delivery reports go to the pipeline's channel.
pub struct ProducerCtx {
    acks: Sender<Ack>,
    brokers: BrokerWatch,
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "producer" }.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Context { client: "producer" }.error(error, reason);
    }
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.brokers.observe(&statistics);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let failed = match result {
            Ok(_) => None,
            Err((error, msg)) => Some(Failed {
                class: classify(error),
                error: error.clone(),
                topic: msg.topic().to_owned(),
                size: msg.payload_len(),
                key: msg.key().map(<[u8]>::to_vec),
                headers: msg.headers().map(|h| h.detach()),
                was_replacement: msg.headers().is_some_and(|h| h.iter().any(|h| h.key == REFUSED_HEADER)),
            }),
        };
        // The receiver lives as long as the pipeline; a send fails only during teardown.
        let _ = self.acks.send(Ack { token: Token(token), failed });
    }
}

/// The output producer.
pub type OutputProducer = ThreadedProducer<ProducerCtx>;

/// Creates the output producer (transactional when `cfg.transactional_id` is set) and the channel of
/// its delivery reports.
pub fn producer(kafka: &KafkaConfig, cfg: &PipelineConfig) -> Result<(Arc<OutputProducer>, Receiver<Ack>)> {
    let mut c = kafka.client(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("max.in.flight.requests.per.connection", "5"),
        // Every output waits up to this long for its batch to fill: librdkafka's default (5 ms) alone
        // would spend the whole of performance.md's 5 ms p99 budget. Batches still form at high rates
        // while earlier requests are in flight; the latency/throughput trade-off of 0, 1, 5 and 20 ms is
        // measured by scripts/latency-tradeoff.sh (BENCHMARKS.md). `-X linger.ms=…` overrides it.
        ("linger.ms", "1"),
        ("batch.num.messages", "10000"),
        ("queue.buffering.max.messages", "200000"),
        ("compression.type", "lz4"),
        // Broker connections lost and regained show in /metrics and the log (BrokerWatch).
        ("statistics.interval.ms", "5000"),
        // Output topics are created by the operator (or `topics.create_missing`), never by a produce:
        // a deleted or misnamed output topic is an error, not a new topic with the broker's defaults.
        ("allow.auto.create.topics", "false"),
    ]);
    match &cfg.transactional_id {
        // A transaction's outputs are given up with the transaction (it is aborted and decided again),
        // so librdkafka's default, bound by transaction.timeout.ms, applies.
        Some(id) => {
            c.set("transactional.id", id);
        }
        // At least once: never give up on an output. Retries stay inside the idempotent producer, in
        // order; a stalled broker shows as the age of the oldest unacknowledged output.
        None => {
            c.set("message.timeout.ms", "0");
        }
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let producer = c
        .create_with_context(ProducerCtx { acks: tx, brokers: BrokerWatch::new("producer") })
        .context("cannot create the producer")?;
    Ok((Arc::new(producer), rx))
}

/// The output record of a consumed message: `topic`, the bytes in `payload`, the message's own key
/// unless `key` gives one, and the message's headers passed through (trace ids, the load test's send
/// stamps: what passes on keeps what it does not understand, records.md).
pub fn record<'b>(
    msg: &'b BorrowedMessage<'_>,
    topic: &'b str,
    key: Option<&'b [u8]>,
    payload: &'b [u8],
    token: Token,
) -> BaseRecord<'b, [u8], [u8], usize> {
    let mut record = BaseRecord::with_opaque_to(topic, token.0).payload(payload);
    if let Some(k) = key.or(msg.key()) {
        record = record.key(k);
    }
    if let Some(h) = msg.headers() {
        record = record.headers(h.detach());
    }
    record
}

/// A record refused at queue time, with the error and its class.
pub type Refused<'b> = (KafkaError, Class, BaseRecord<'b, [u8], [u8], usize>);

/// Queues a record; while the producer's queue is full, calls `wait` (which handles acknowledgements,
/// so that the queue drains) and tries again. An error other than a full queue is returned with its
/// class and the record, which was not queued.
pub fn send<'b>(
    producer: &OutputProducer,
    mut record: BaseRecord<'b, [u8], [u8], usize>,
    mut wait: impl FnMut(),
) -> Result<(), Box<Refused<'b>>> {
    // A queue that stays full means the producer is not delivering: said every 10 s, so that a stall
    // here is never silent (the caller's loop would otherwise show nothing but a flat claims counter).
    let mut full_since: Option<std::time::Instant> = None;
    let mut said = 0u64;
    loop {
        match producer.send(record) {
            Ok(()) => {
                if full_since.is_some_and(|t| t.elapsed().as_secs() >= 10) {
                    tracing::info!(event = "output_queue_drained", "the producer's queue has room again");
                }
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                let waited = full_since.get_or_insert_with(std::time::Instant::now).elapsed().as_secs();
                if waited >= 10 * (said + 1) {
                    said += 1;
                    tracing::warn!(
                        event = "output_queue_full",
                        waited_s = waited,
                        "the producer's queue has been full this long: outputs are not being delivered"
                    );
                }
                wait();
            }
            Err((e, r)) => {
                let class = classify(&e);
                return Err(Box::new((e, class, r)));
            }
        }
    }
}

/// The dead letter that replaces an output the broker refused as bad input. It carries no raw bytes
/// (they are what made the output too large): the line stays at its source offset, which it names.
pub fn refused_output(f: &Failed, source: &str, received_at: &str) -> Vec<u8> {
    let error = format!(
        "the broker refused the output for this line ({} bytes to {}): {}; the line stays at its source offset",
        f.size, f.topic, f.error
    );
    let dl = DeadLetter {
        error: error.into(),
        field: None,
        source: source.into(),
        raw: None,
        raw_base64: None,
        received_at: received_at.into(),
    };
    let mut out = Vec::with_capacity(256);
    dl.write(&mut out);
    out
}

/// The headers of a replacing dead letter: the refused output's, and the mark.
pub fn refused_headers(f: &Failed) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    if let Some(old) = &f.headers {
        for x in old.iter() {
            h = h.insert(Header { key: x.key, value: x.value });
        }
    }
    h.insert(Header { key: REFUSED_HEADER, value: Some("1") })
}

/// How long to wait before sending again after a transient refusal to queue (not a delivery failure:
/// those do not come back in at-least-once mode).
pub const REQUEUE_BACKOFF: Duration = Duration::from_millis(200);

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
