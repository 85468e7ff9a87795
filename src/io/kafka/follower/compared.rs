//! How far the status topics have been compared for late changes, kept in Kafka so that the next
//! instance knows where to start comparing even without a checkpoint (docs/status-retro.md, "When
//! changes are found").
//!
//! The mark is a committed offset per status partition, in a consumer group of claimgate's own,
//! [`group`] (`<retro topic>.compared`), that no consumer ever joins: committing is the whole use. An
//! offset `o` committed for partition `p` says: every record of `p` before `o` was applied by an
//! instance that compared it with the record it replaced, and the late changes among them are on the
//! retro topic. An instance that then reads the topics from the beginning compares the records from
//! `o` on — the ones written while no instance ran — instead of none.
//!
//! A mark is committed only once a view is published and the retro producer has nothing in flight (so
//! the late changes it covers are acknowledged, or failed and logged with their keys), at most every
//! [`EVERY`], and at shutdown. Several instances commit to the same group: the last commit wins, and a
//! mark lower than another instance's only makes the next cold start compare more (repeats are not
//! written twice: the retro topic's keys are known at start-up). The broker expires a group's offsets
//! `offsets.retention.minutes` after its last commit (Kafka's default: 7 days): a stream stopped longer
//! than that finds no mark and compares nothing in its cold read, and says so (`status_retro_unmarked`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::super::{Context, KafkaConfig};

/// At most one mark per this interval while following.
pub const EVERY: Duration = Duration::from_secs(10);

/// The group holding the marks for the retro topic `retro`.
pub fn group(retro: &str) -> String {
    format!("{retro}.compared")
}

/// Positions: (topic, partition, next offset).
type Positions = Vec<(String, i32, i64)>;

/// The marks' group, committed to directly.
pub struct Compared {
    consumer: BaseConsumer<Context>,
    group: String,
    /// The positions last committed, and when.
    last: Option<(Positions, Instant)>,
}

impl Compared {
    pub fn new(kafka: &KafkaConfig, retro: &str) -> Result<Compared> {
        let group = group(retro);
        let consumer = kafka
            .client(&[
                ("group.id", group.as_str()),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
            ])
            .create_with_context(Context { client: "status-compared" })
            .with_context(|| format!("cannot create the client of group {group}"))?;
        Ok(Compared { consumer, group, last: None })
    }

    /// The marks of `topic`'s `partitions`: partition → the first offset not yet compared. Partitions
    /// without a mark are absent.
    pub fn read(&self, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .with_context(|| format!("cannot read the marks of group {}", self.group))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// A mark is due: none yet, the last at least [`EVERY`] old, or `now` (shutdown).
    pub fn due(&self, now: bool) -> bool {
        now || self.last.as_ref().is_none_or(|(_, at)| at.elapsed() >= EVERY)
    }

    /// Commits `positions` (topic, partition, next offset) if they moved since the last mark — with
    /// `now` synchronously (shutdown) — and starts a new interval either way. The caller asks
    /// [`Compared::due`] first. False if nothing was committed.
    pub fn mark(&mut self, positions: &[(String, i32, i64)], now: bool) -> bool {
        if positions.is_empty() {
            return false;
        }
        if let Some((p, at)) = &mut self.last
            && p.as_slice() == positions
        {
            // Nothing moved: looked at again in an interval, not at every turn of the loop.
            *at = Instant::now();
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in positions {
            if tpl.add_partition_offset(t, *p, Offset::Offset(*o)).is_err() {
                return false;
            }
        }
        let mode = if now { CommitMode::Sync } else { CommitMode::Async };
        // Serves the previous asynchronous commit's result (this consumer is never polled otherwise).
        let _ = self.consumer.poll(Duration::ZERO);
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => {
                self.last = Some((positions.to_vec(), Instant::now()));
                true
            }
            Err(e) => {
                tracing::warn!(event = "status_retro_mark_failed", group = self.group, error = %e, "cannot record how far the status topics were compared: a later start without a checkpoint compares from the previous mark");
                // Tried again at the next interval, not at every turn of the loop.
                self.last = Some((Vec::new(), Instant::now()));
                false
            }
        }
    }
}
