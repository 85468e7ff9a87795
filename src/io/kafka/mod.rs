//! Kafka: client configuration, the status follower, the claim pipeline, publishing status records and
//! creating topics, against Apache Kafka (`scripts/broker.sh`, `../shared/BROKER.md`).
//!
//! - [`errors`] — every broker error classified: bad input, transient, fatal;
//! - [`follower`] — the status topics read as a global table;
//! - [`pipeline`] — claims in, decisions out, at least once or exactly once;
//! - [`tracker`] — which consumed offsets may be committed;
//! - [`publish`], [`admin`] — status records out, topics created and listed.

pub mod admin;
pub mod errors;
pub mod follower;
pub mod pipeline;
pub mod publish;
pub mod status_writer;
pub mod tables;
pub mod tracker;
pub mod window;

use std::collections::BTreeMap;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

use super::metrics;

/// Where the brokers are and which librdkafka properties to pass through.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// User properties, passed unchanged to every client (TLS, SASL, tuning).
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// A client configuration with the brokers, claimgate's defaults for `role`, then the user's
    /// properties on top.
    pub fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Routes librdkafka's logs and errors into `tracing` and the metrics, and its statistics into the
/// consumer-lag gauge.
#[derive(Clone, Debug)]
pub struct Context {
    /// Which client this is, for logs and metrics: `claims`, `status`, `producer`, `admin`.
    pub client: &'static str,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka logs an offset reset caused by an error (the committed offset is out of range) at
        // warning level, facility OFFSET: claims were skipped or are read again. Counted and named.
        if fac == "OFFSET" && log_message.contains("offset reset") {
            ::metrics::counter!(metrics::OFFSET_RESETS, "reason" => "out_of_range").increment(1);
            tracing::warn!(event = "offset_reset", client = self.client, reason = "out_of_range", "{log_message}");
        }
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            ::metrics::counter!(metrics::BROKER_WARNINGS, "client" => self.client, "facility" => fac.to_owned())
                .increment(1);
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "rdkafka", client = self.client, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "rdkafka", client = self.client, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "rdkafka", client = self.client, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "rdkafka", client = self.client, facility = fac, "{log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // With `enable.partition.eof` (the status follower), the end of a partition comes as an error
        // event too: it is how the follower knows it has read to the end, not an error.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        ::metrics::counter!(metrics::BROKER_ERRORS, "client" => self.client).increment(1);
        tracing::warn!(event = "broker_error", client = self.client, %error, reason, "Kafka client error (the client retries)");
    }

    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (id, p) in &topic.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    ::metrics::gauge!(metrics::CONSUMER_LAG, "topic" => topic.topic.clone(), "partition" => id.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Context {}

/// Delivery failures of a transactional writer surface as a failed commit: nothing to do per record.
impl rdkafka::producer::ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}
