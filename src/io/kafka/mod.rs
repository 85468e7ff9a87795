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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

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
    /// A consumer that reads whole partitions by direct assignment and commits nothing — the status
    /// follower, the status writers' read of the held table, `review --claims-topic` — with `group`
    /// naming it and `extra` on top. Committed records only, ends reported. Such a reader is as fast as
    /// it can parse: librdkafka keeps `queued.min.messages` (100 000) records of a partition in hand and,
    /// once it has them, fetches again only after `fetch.queue.backoff.ms` (1 000 ms by default), so a
    /// reader faster than 100 000 records a second starved (a 12-million-code cold start took 110 s for
    /// 40 s of CPU, BENCHMARKS.md). Refetch within 10 ms, in 8 MB fetches.
    pub fn bulk_reader(&self, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
        let mut defaults = vec![
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            ("fetch.queue.backoff.ms", "10"),
            ("max.partition.fetch.bytes", "8388608"),
        ];
        defaults.extend_from_slice(extra);
        self.client(&defaults)
    }

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

/// What a client's statistics say of the cluster under it (`statistics.interval.ms`): every lost
/// connection counted (`claimgate_broker_disconnects_total{client}`, a `broker_disconnected` log line
/// naming the broker), the brokers it has lost and not got back (`claimgate_brokers_down{client}`,
/// `broker_down` / `broker_up`), and every partition whose leader moved to another broker
/// (`claimgate_leader_changes_total{client}`, `partition_leader_changed` with the topic, partition and
/// both brokers). A broker that goes away cleanly — one node of a rolling restart, whose leaders the
/// controller moves first — costs the client no error, so without this it would not show at all.
#[derive(Debug)]
pub struct BrokerWatch {
    client: &'static str,
    disconnects: Mutex<HashMap<String, i64>>,
    down: Mutex<HashSet<String>>,
    leaders: Mutex<HashMap<(String, i32), i32>>,
}

impl BrokerWatch {
    /// A watch for the client named `client` in metrics and logs.
    pub fn new(client: &'static str) -> Self {
        BrokerWatch { client, disconnects: Mutex::default(), down: Mutex::default(), leaders: Mutex::default() }
    }

    /// Takes one statistics report.
    pub fn observe(&self, statistics: &Statistics) {
        self.observe_leaders(statistics);
        let brokers = statistics.brokers.values().filter(|b| b.nodeid >= 0);
        let mut seen = self.disconnects.lock().unwrap_or_else(|p| p.into_inner());
        let mut down_now = HashSet::new();
        for b in brokers {
            let total = b.disconnects.unwrap_or(0);
            let before = seen.insert(b.name.clone(), total).unwrap_or(0);
            if total > before {
                ::metrics::counter!(metrics::BROKER_DISCONNECTS, "client" => self.client)
                    .increment((total - before) as u64);
                tracing::warn!(
                    event = "broker_disconnected",
                    client = self.client,
                    broker = b.name,
                    state = b.state,
                    disconnects = total - before,
                    "lost the connection to a broker (the client reconnects, or moves to the partitions' new leaders)"
                );
            }
            if b.state != "UP" && b.state != "INIT" {
                down_now.insert(b.name.clone());
            }
        }
        ::metrics::gauge!(metrics::BROKERS_DOWN, "client" => self.client).set(down_now.len() as f64);
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        for name in down_now.difference(&down) {
            tracing::warn!(event = "broker_down", client = self.client, broker = name, "a broker does not answer");
        }
        for name in down.difference(&down_now) {
            tracing::info!(event = "broker_up", client = self.client, broker = name, "the broker answers again");
        }
        *down = down_now;
    }

    fn observe_leaders(&self, statistics: &Statistics) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        for t in statistics.topics.values() {
            for (id, p) in &t.partitions {
                if *id < 0 || p.leader < 0 {
                    continue;
                }
                let before = leaders.insert((t.topic.clone(), *id), p.leader);
                if let Some(from) = before
                    && from != p.leader
                {
                    ::metrics::counter!(metrics::LEADER_CHANGES, "client" => self.client).increment(1);
                    tracing::info!(
                        event = "partition_leader_changed",
                        client = self.client,
                        topic = t.topic,
                        partition = id,
                        from,
                        to = p.leader,
                        "the partition's leader moved to another broker"
                    );
                }
            }
        }
    }
}

/// Delivery failures of a transactional writer surface as a failed commit: nothing to do per record.
impl rdkafka::producer::ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}
