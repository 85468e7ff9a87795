//! The status follower: reads the `practitioners` and `institutions` topics (and the local-id mapping
//! topic, where one is configured) like a global table —
//! every partition assigned directly, no consumer group — from the beginning to the end before any claim
//! is decided, then keeps following them, publishing each batch of changes as one new view.
//!
//! "The end" is judged by two signs together: every partition's position has reached the end offset
//! the broker reports, and no record has arrived for `settle` (BROKER.md: the test broker reports an
//! end offset short of the real one; on Apache Kafka the first sign alone is exact and the second costs
//! `settle` once, at start-up).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use metrics::{counter, gauge, histogram};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{Context, KafkaConfig, admin};
use crate::io::metrics as m;
use claimgate::record::{InstitutionCode, InstitutionText, MappingText, PractitionerKey, PractitionerRow};
use claimgate::table::{Applied, InstitutionTable, PractitionerTable, TableHandle, Updater};

/// What the rest of the process may read about the tables.
#[derive(Debug, Default)]
pub struct TableState {
    /// The status topics were read to their end once: claims may be decided.
    pub ready: AtomicBool,
    /// Unix milliseconds when the status topics were last confirmed reachable and read.
    pub confirmed_ms: AtomicU64,
    /// Views published.
    pub generation: AtomicU64,
}

impl TableState {
    /// Seconds since the tables were last confirmed current.
    pub fn age_secs(&self) -> f64 {
        let confirmed = self.confirmed_ms.load(Ordering::Relaxed);
        if confirmed == 0 {
            return f64::INFINITY;
        }
        (unix_ms().saturating_sub(confirmed)) as f64 / 1000.0
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Settings of the follower.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// Practitioner topic.
    pub practitioners: String,
    /// Institution topic.
    pub institutions: String,
    /// Local-id mapping topic, if followed.
    pub mappings: Option<String>,
    /// Quiet time that, with the end offsets reached, marks the end at start-up.
    pub settle: Duration,
    /// Longest wait before a batch of changes is published.
    pub publish_every: Duration,
    /// Age after which the table counts as stale.
    pub stale_after: Duration,
}

struct Follower {
    cfg: FollowerConfig,
    updater: Updater,
    handle: Arc<TableHandle>,
    state: Arc<TableState>,
    /// Next offset to read, per (topic, partition).
    positions: HashMap<(String, i32), i64>,
    /// Broker timestamp (ms) of the oldest record not yet published.
    oldest_pending_ms: Option<i64>,
    dirty_since: Option<Instant>,
    stale: bool,
}

/// Starts the follower on a thread of its own. The returned handle ends when `shutdown` is set.
pub fn spawn(
    kafka: &KafkaConfig,
    cfg: FollowerConfig,
    handle: Arc<TableHandle>,
    state: Arc<TableState>,
    shutdown: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let consumer: BaseConsumer<Context> = kafka
        .client(&[
            // Direct assignment, no group: the id only names the client; nothing is committed.
            ("group.id", "claimgate-status-follower"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "50"),
            ("isolation.level", "read_committed"),
        ])
        .create_with_context(Context { client: "status" })
        .context("cannot create the status consumer")?;
    let mut f = Follower {
        cfg,
        updater: Updater::new(PractitionerTable::with_capacity(1 << 16), InstitutionTable::default()),
        handle,
        state,
        positions: HashMap::new(),
        oldest_pending_ms: None,
        dirty_since: None,
        stale: false,
    };
    Ok(std::thread::Builder::new().name("status-follower".into()).spawn(move || f.run(&consumer, &shutdown))?)
}

impl Follower {
    fn run(&mut self, consumer: &BaseConsumer<Context>, shutdown: &AtomicBool) -> Result<()> {
        self.assign(consumer, shutdown)?;
        self.catch_up(consumer, shutdown)?;
        self.follow(consumer, shutdown)
    }

    fn assign(&mut self, consumer: &BaseConsumer<Context>, shutdown: &AtomicBool) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        let topics =
            [Some(self.cfg.practitioners.clone()), Some(self.cfg.institutions.clone()), self.cfg.mappings.clone()];
        for topic in topics.into_iter().flatten() {
            let parts = loop {
                match admin::partitions(consumer, &topic, Duration::from_secs(10)) {
                    Ok(p) => break p,
                    Err(e) if !shutdown.load(Ordering::Relaxed) => {
                        tracing::warn!(event = "status_topic_missing", topic, error = %format!("{e:#}"), "waiting for the status topic; no claim is decided until it is read");
                        // Serve the client's queued logs and errors (a failed TLS handshake, a refused
                        // login): they say why, and are otherwise held until the first poll. Nothing is
                        // assigned yet, so no record can be taken here.
                        let _ = consumer.poll(Duration::ZERO);
                    }
                    Err(e) => return Err(e),
                }
            };
            for p in parts {
                tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
                self.positions.insert((topic.clone(), p), 0);
            }
        }
        consumer.assign(&tpl).context("cannot assign the status partitions")?;
        tracing::info!(
            event = "status_assigned",
            partitions = self.positions.len(),
            "reading the status topics from the beginning"
        );
        Ok(())
    }

    /// The end offset of every partition, or `None` if the broker could not be asked.
    fn end_offsets(&self, consumer: &BaseConsumer<Context>) -> Option<HashMap<(String, i32), i64>> {
        let mut out = HashMap::new();
        for (topic, p) in self.positions.keys() {
            let (_, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(3)).ok()?;
            out.insert((topic.clone(), *p), high);
        }
        Some(out)
    }

    fn at_end(&self, ends: &HashMap<(String, i32), i64>) -> bool {
        ends.iter().all(|(k, high)| self.positions.get(k).is_some_and(|pos| pos >= high))
    }

    fn catch_up(&mut self, consumer: &BaseConsumer<Context>, shutdown: &AtomicBool) -> Result<()> {
        let started = Instant::now();
        let mut last_record = Instant::now();
        let mut ends = None;
        let mut records = 0u64;
        while !shutdown.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(msg)) => {
                    self.apply(&msg);
                    records += 1;
                    last_record = Instant::now();
                    continue;
                }
                // A consumer error here is transient (e.g. `AllBrokersDown` while the broker cannot be
                // reached at start-up): librdkafka reconnects and the fetch resumes. Returning it ended
                // the follower thread, leaving the process up but never ready, with nothing said until
                // shutdown.
                Some(Err(e)) => {
                    tracing::warn!(event = "status_read_error", error = %e, "cannot read the status topics yet; retrying");
                    continue;
                }
                None => {}
            }
            if ends.as_ref().is_none_or(|e| !self.at_end(e)) {
                ends = self.end_offsets(consumer);
            }
            let reached = ends.as_ref().is_some_and(|e| self.at_end(e));
            if reached && last_record.elapsed() >= self.cfg.settle {
                self.publish();
                self.state.confirmed_ms.store(unix_ms(), Ordering::Relaxed);
                self.state.ready.store(true, Ordering::Release);
                gauge!(m::READY).set(1.0);
                tracing::info!(
                    event = "status_loaded",
                    records,
                    practitioners = self.updater.view().practitioner_count(),
                    seconds = started.elapsed().as_secs_f64(),
                    "status topics read to the end; deciding claims"
                );
                return Ok(());
            }
        }
        Ok(())
    }

    fn follow(&mut self, consumer: &BaseConsumer<Context>, shutdown: &AtomicBool) -> Result<()> {
        let mut last_check = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded::<Result<(PractitionerTable, PractitionerTable), String>>(1);
        let mut compacting = false;
        while !shutdown.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(msg)) => {
                    self.apply(&msg);
                    if self.dirty_since.is_some_and(|t| t.elapsed() >= self.cfg.publish_every) {
                        self.publish();
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(event = "status_read_error", error = %e, "cannot read the status topics")
                }
                // The consumer's queue is drained: the batch is complete.
                None if self.dirty_since.is_some() => self.publish(),
                None => {}
            }
            if let Ok(done) = rx.try_recv() {
                compacting = false;
                match done.and_then(|(merged, input)| {
                    self.updater.install_compacted(merged, &input).map_err(|e| e.to_string())
                }) {
                    Ok(()) => {
                        tracing::info!(
                            event = "table_compacted",
                            delta = self.updater.delta_len(),
                            "status delta folded into the base table"
                        );
                        self.publish();
                    }
                    Err(e) => tracing::error!(event = "table_compaction_failed", error = e),
                }
            }
            if !compacting && self.updater.wants_compaction() {
                compacting = true;
                let (base, delta) = self.updater.compaction_input();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let merged = base.rebuilt(Some(&delta)).map_err(|e| e.to_string());
                    let _ = tx.send(merged.map(|m| (m, delta)));
                });
            }
            if last_check.elapsed() >= Duration::from_secs(2) {
                last_check = Instant::now();
                self.check_freshness(consumer);
            }
        }
        Ok(())
    }

    /// Confirms the status topics are reachable and read to their end; exposes the table's age.
    fn check_freshness(&mut self, consumer: &BaseConsumer<Context>) {
        if let Some(ends) = self.end_offsets(consumer)
            && (self.at_end(&ends) || self.dirty_since.is_none())
        {
            self.state.confirmed_ms.store(unix_ms(), Ordering::Relaxed);
        }
        let age = self.state.age_secs();
        gauge!(m::TABLE_AGE).set(age);
        let stale = age >= self.cfg.stale_after.as_secs_f64();
        gauge!(m::TABLE_STALE).set(if stale { 1.0 } else { 0.0 });
        if stale && !self.stale {
            tracing::warn!(
                event = "table_stale",
                age_s = age,
                "cannot confirm the status topics; deciding on the last table"
            );
        } else if !stale && self.stale {
            tracing::info!(event = "table_fresh", "status topics reachable again");
        }
        self.stale = stale;
    }

    fn apply(&mut self, msg: &rdkafka::message::BorrowedMessage<'_>) {
        let topic = msg.topic();
        self.positions.insert((topic.to_owned(), msg.partition()), msg.offset() + 1);
        let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::trim);
        let outcome = if topic == self.cfg.practitioners {
            self.apply_practitioner(key, msg.payload())
        } else if self.cfg.mappings.as_deref() == Some(topic) {
            self.apply_mapping(key, msg.payload())
        } else {
            self.apply_institution(key, msg.payload())
        };
        let label = match &outcome {
            Ok(Some(Applied::Changed)) => "applied",
            Ok(Some(Applied::Unchanged)) => "stale",
            Ok(None) => "deleted",
            Err(_) => "invalid",
        };
        counter!(m::STATUS_RECORDS, "topic" => topic.to_owned(), "outcome" => label).increment(1);
        match outcome {
            Err(e) => tracing::warn!(
                event = "status_record_invalid",
                source = %format!("{topic}/{}@{}", msg.partition(), msg.offset()),
                error = %e,
                "status record ignored"
            ),
            Ok(Some(Applied::Unchanged)) => {}
            Ok(_) => {
                self.dirty_since.get_or_insert_with(Instant::now);
                if let Some(ts) = msg.timestamp().to_millis() {
                    self.oldest_pending_ms = Some(self.oldest_pending_ms.map_or(ts, |o| o.min(ts)));
                }
            }
        }
    }

    fn apply_practitioner(&mut self, key: Option<&str>, payload: Option<&[u8]>) -> Result<Option<Applied>, String> {
        match payload {
            None => {
                let key = key.ok_or("a tombstone without a key")?;
                let code = PractitionerKey::parse(key).map_err(|e| format!("key `{key}`: {e}"))?;
                self.updater.delete_practitioner(code).map_err(|e| e.to_string())?;
                Ok(None)
            }
            Some(bytes) => {
                let rec = PractitionerRow::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
                if let Some(k) = key
                    && PractitionerKey::parse(k).ok() != Some(rec.code.key())
                {
                    return Err(format!("key `{k}` is not the record's code"));
                }
                self.updater.practitioner(&rec).map(Some).map_err(|e| e.to_string())
            }
        }
    }

    fn apply_institution(&mut self, key: Option<&str>, payload: Option<&[u8]>) -> Result<Option<Applied>, String> {
        match payload {
            None => {
                let key = key.ok_or("a tombstone without a key")?;
                let code = InstitutionCode::parse(key).map_err(|e| format!("key `{key}`: {e}"))?;
                self.updater.delete_institution(code);
                Ok(None)
            }
            Some(bytes) => {
                let rec = InstitutionText::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
                if let Some(k) = key
                    && InstitutionCode::parse(k).ok() != Some(rec.code)
                {
                    return Err(format!("key `{k}` is not the record's code"));
                }
                Ok(Some(self.updater.institution(rec)))
            }
        }
    }

    /// A local-id mapping record, keyed `institution|local_id`; a tombstone deletes the mapping.
    fn apply_mapping(&mut self, key: Option<&str>, payload: Option<&[u8]>) -> Result<Option<Applied>, String> {
        match payload {
            None => {
                let key = key.ok_or("a tombstone without a key")?;
                let (inst, id) =
                    key.split_once('|').ok_or_else(|| format!("key `{key}`: not `institution|local_id`"))?;
                let inst = InstitutionCode::parse(inst.trim()).map_err(|e| format!("key `{key}`: {e}"))?;
                self.updater.delete_mapping(inst, id.trim());
                Ok(None)
            }
            Some(bytes) => {
                let rec = MappingText::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
                if let Some(k) = key
                    && k != rec.key()
                {
                    return Err(format!("key `{k}` is not the record's `institution|local_id`"));
                }
                Ok(Some(self.updater.mapping(rec)))
            }
        }
    }

    /// Publishes the tables as they stand, as one new view.
    fn publish(&mut self) {
        let view = self.updater.view();
        let generation = self.state.generation.fetch_add(1, Ordering::Relaxed) + 1;
        gauge!(m::TABLE_EPOCH).set(view.epoch() as f64);
        gauge!(m::TABLE_GENERATION).set(generation as f64);
        gauge!(m::TABLE_PRACTITIONERS).set(view.practitioner_count() as f64);
        gauge!(m::TABLE_INSTITUTIONS).set(view.institution_count() as f64);
        gauge!(m::TABLE_DELTA).set(view.delta_len() as f64);
        tracing::debug!(event = "table_published", epoch = view.epoch(), generation, "new status view");
        self.handle.publish(Arc::new(view));
        if let Some(ts) = self.oldest_pending_ms.take() {
            let lag = (unix_ms() as i64 - ts).max(0) as f64 / 1000.0;
            histogram!(m::STATUS_TO_VIEW).record(lag);
        }
        self.dirty_since = None;
    }
}
