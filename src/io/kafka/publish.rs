//! Producing status records to the compacted status topics, keyed by code (records.md), every delivery
//! confirmed before success is reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::{Context, KafkaConfig};

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counts {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "publisher" }.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Context { client: "publisher" }.error(error, reason);
    }
}

impl ProducerContext for Counts {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::error!(event = "publish_failed", error = %e, "a status record was not delivered");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// A producer of keyed records that counts deliveries.
pub struct Publisher {
    producer: ThreadedProducer<Counts>,
}

impl Publisher {
    /// Connects.
    pub fn new(kafka: &KafkaConfig) -> Result<Self> {
        let producer = kafka
            .client(&[("enable.idempotence", "true"), ("linger.ms", "20"), ("compression.type", "lz4")])
            .create_with_context(Counts::default())
            .context("cannot create the producer")?;
        Ok(Publisher { producer })
    }

    /// Queues one record (`None` value: a tombstone), waiting while the queue is full.
    pub fn send(&self, topic: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.send_at(topic, key, value, None)
    }

    /// As [`Publisher::send`], the record stamped `timestamp_ms` (Unix milliseconds) instead of now.
    pub fn send_at(&self, topic: &str, key: &[u8], value: Option<&[u8]>, timestamp_ms: Option<i64>) -> Result<()> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e).with_context(|| format!("cannot produce to {topic}")),
            }
        }
    }

    /// Waits for every delivery; fails if any record was not delivered.
    pub fn finish(self, timeout: Duration) -> Result<u64> {
        self.producer.flush(timeout).context("not every status record was delivered in time")?;
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} status records were not delivered");
        }
        Ok(ctx.delivered.load(Ordering::Relaxed))
    }
}
