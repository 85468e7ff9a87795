//! One status topic and its consumer: every partition assigned directly, the position of each, and
//! which have reported their end.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::super::{Context, KafkaConfig};

/// One status topic and its consumer.
pub struct Source {
    pub topic: String,
    pub consumer: BaseConsumer<Context>,
    /// Next offset to read, per partition.
    pub positions: HashMap<i32, i64>,
    /// Partitions whose end the client reported since their last record.
    pub at_eof: HashSet<i32>,
}

impl Source {
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Result<Source> {
        let consumer: BaseConsumer<Context> = kafka
            // Direct assignment, no group: the id only names the client; nothing is committed.
            // Prefetched records bounded to 4 MiB of payload, fetched 2 MiB at a time: librdkafka's
            // defaults (a 64 MiB queue of 8 MiB fetches) held about 250 MiB of messages in the
            // allocator's arenas at the cold start's peak, these about 100 MiB, for the same load time
            // (BENCHMARKS.md, "The stream's memory at peak"). The next fetch is asked for within 10 ms
            // (`bulk_reader`).
            .bulk_reader(
                "claimgate-status-follower",
                &[
                    ("auto.offset.reset", "earliest"),
                    ("fetch.wait.max.ms", "50"),
                    ("queued.max.messages.kbytes", "4096"),
                    ("max.partition.fetch.bytes", "2097152"),
                ],
            )
            .create_with_context(Context { client: "status" })
            .context("cannot create the status consumer")?;
        Ok(Source { topic: topic.to_owned(), consumer, positions: HashMap::new(), at_eof: HashSet::new() })
    }

    /// The end offset of every partition (the last stable offset: committed records only), or `None`
    /// if the broker could not be asked.
    pub fn end_offsets(&self) -> Option<HashMap<i32, i64>> {
        let mut out = HashMap::new();
        for p in self.positions.keys() {
            let (_, high) = self.consumer.fetch_watermarks(&self.topic, *p, Duration::from_secs(2)).ok()?;
            out.insert(*p, high);
        }
        Some(out)
    }

    /// Every partition has reached `ends`, or reported its end since its last record.
    pub fn at_end(&self, ends: &HashMap<i32, i64>) -> bool {
        ends.iter().all(|(p, high)| self.at_eof.contains(p) || self.positions.get(p).is_some_and(|pos| pos >= high))
    }
}
