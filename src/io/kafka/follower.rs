//! The status follower: reads the `practitioners` and `institutions` topics (and the local-id mapping
//! topic, where one is configured) like a global table —
//! every partition assigned directly, no consumer group — from the beginning to the end before any claim
//! is decided, then keeps following them, publishing each batch of changes as one new view.
//!
//! "The end" is exact on Apache Kafka: the end offsets (the last stable offset, as the consumer reads
//! committed records only) are taken once before reading; a partition has reached its end when the
//! consumer's position passes that offset, or when the client reports it reached the end of the
//! partition (`enable.partition.eof`). The second sign covers what the position alone cannot see: a
//! transaction's commit or abort marker, aborted records and a compacted-away range take offsets that no
//! record is ever delivered for, so a position can stay short of the end for ever. Each topic has a
//! consumer of its own, because the client's end-of-partition event names the partition but not the
//! topic. An empty partition reports its end at once. Under steady traffic the end is reached as soon
//! as the records present at start-up are read: nothing waits for a quiet moment.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use metrics::{counter, gauge, histogram};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{Context, KafkaConfig, admin};
use crate::io::clock::unix_ms;
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

/// Settings of the follower.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// Practitioner topic.
    pub practitioners: String,
    /// Institution topic.
    pub institutions: String,
    /// Local-id mapping topic, if followed (rules.md, "Local ids").
    pub mappings: Option<String>,
    /// Longest wait before a batch of changes is published.
    pub publish_every: Duration,
}

/// One status topic and its consumer.
struct Source {
    topic: String,
    consumer: BaseConsumer<Context>,
    /// Next offset to read, per partition.
    positions: HashMap<i32, i64>,
    /// Partitions whose end the client reported since their last record.
    at_eof: HashSet<i32>,
}

impl Source {
    fn new(kafka: &KafkaConfig, topic: &str) -> Result<Source> {
        let consumer: BaseConsumer<Context> = kafka
            .client(&[
                // Direct assignment, no group: the id only names the client; nothing is committed.
                ("group.id", "claimgate-status-follower"),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
                ("fetch.wait.max.ms", "50"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
            ])
            .create_with_context(Context { client: "status" })
            .context("cannot create the status consumer")?;
        Ok(Source { topic: topic.to_owned(), consumer, positions: HashMap::new(), at_eof: HashSet::new() })
    }

    /// The end offset of every partition (the last stable offset: committed records only), or `None`
    /// if the broker could not be asked.
    fn end_offsets(&self) -> Option<HashMap<i32, i64>> {
        let mut out = HashMap::new();
        for p in self.positions.keys() {
            let (_, high) = self.consumer.fetch_watermarks(&self.topic, *p, Duration::from_secs(2)).ok()?;
            out.insert(*p, high);
        }
        Some(out)
    }

    /// Every partition has reached `ends`, or reported its end since its last record.
    fn at_end(&self, ends: &HashMap<i32, i64>) -> bool {
        ends.iter().all(|(p, high)| self.at_eof.contains(p) || self.positions.get(p).is_some_and(|pos| pos >= high))
    }
}

struct Follower {
    cfg: FollowerConfig,
    sources: Vec<Source>,
    table: Table,
}

/// The tables being built, and what is published of them.
struct Table {
    updater: Updater,
    handle: Arc<TableHandle>,
    state: Arc<TableState>,
    /// Broker timestamp (ms) of the oldest record not yet published.
    oldest_pending_ms: Option<i64>,
    dirty_since: Option<Instant>,
}

/// What one poll of a source gave.
enum Polled {
    Record,
    Nothing,
}

/// Reports the table's age every second (`claimgate_table_age_seconds`, `claimgate_table_stale`) and
/// logs when it turns stale (`table_stale`) and fresh again (`table_fresh`): a task of its own, so that
/// a broker that does not answer the follower's calls cannot delay the report.
pub async fn watch_staleness(state: Arc<TableState>, stale_after: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stale = false;
    while !shutdown.is_cancelled() {
        tick.tick().await;
        if !state.ready.load(Ordering::Acquire) {
            continue;
        }
        let age = state.age_secs();
        gauge!(m::TABLE_AGE).set(age);
        let now = age >= stale_after.as_secs_f64();
        gauge!(m::TABLE_STALE).set(if now { 1.0 } else { 0.0 });
        if now && !stale {
            tracing::warn!(
                event = "table_stale",
                age_s = age,
                "cannot confirm the status topics; deciding on the last table"
            );
        } else if !now && stale {
            tracing::info!(event = "table_fresh", "status topics reachable again");
        }
        stale = now;
    }
}

/// Starts the follower on a thread of its own. The returned handle ends when `shutdown` is cancelled.
pub fn spawn(
    kafka: &KafkaConfig,
    cfg: FollowerConfig,
    handle: Arc<TableHandle>,
    state: Arc<TableState>,
    shutdown: CancellationToken,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    // In this order: `Table::apply` tells the records apart by their source's index.
    let mut sources = vec![Source::new(kafka, &cfg.practitioners)?, Source::new(kafka, &cfg.institutions)?];
    if let Some(m) = &cfg.mappings {
        sources.push(Source::new(kafka, m)?);
    }
    let table = Table {
        updater: Updater::new(PractitionerTable::with_capacity(1 << 16), InstitutionTable::default()),
        handle,
        state,
        oldest_pending_ms: None,
        dirty_since: None,
    };
    let mut f = Follower { cfg, sources, table };
    Ok(std::thread::Builder::new().name("status-follower".into()).spawn(move || f.run(&shutdown))?)
}

impl Follower {
    fn run(&mut self, shutdown: &CancellationToken) -> Result<()> {
        for i in 0..self.sources.len() {
            if !self.assign(i, shutdown)? {
                return Ok(());
            }
        }
        self.catch_up(shutdown)?;
        self.follow(shutdown)
    }

    /// Waits for the topic to exist, then assigns every partition from the beginning. False if shutdown
    /// came first.
    fn assign(&mut self, i: usize, shutdown: &CancellationToken) -> Result<bool> {
        let src = &mut self.sources[i];
        let parts = loop {
            match admin::partitions(&src.consumer, &src.topic, Duration::from_secs(10)) {
                Ok(p) => break p,
                Err(_) if shutdown.is_cancelled() => return Ok(false),
                Err(e) => {
                    tracing::warn!(event = "status_topic_missing", topic = src.topic, error = %format!("{e:#}"), "waiting for the status topic; no claim is decided until it is read");
                    // Serve the client's queued logs and errors (a failed TLS handshake, a refused
                    // login): they say why, and are otherwise held until the first poll. Nothing is
                    // assigned yet, so no record can be taken here.
                    let _ = src.consumer.poll(Duration::ZERO);
                }
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            tpl.add_partition_offset(&src.topic, p, Offset::Beginning)?;
            src.positions.insert(p, 0);
        }
        src.consumer.assign(&tpl).context("cannot assign the status partitions")?;
        tracing::info!(
            event = "status_assigned",
            topic = src.topic,
            partitions = src.positions.len(),
            "reading the status topic from the beginning"
        );
        Ok(true)
    }

    /// Polls source `i` once: applies a record, notes an end of partition.
    fn poll(&mut self, i: usize, wait: Duration) -> Polled {
        let src = &mut self.sources[i];
        match src.consumer.poll(wait) {
            Some(Ok(msg)) => {
                src.positions.insert(msg.partition(), msg.offset() + 1);
                src.at_eof.remove(&msg.partition());
                self.table.apply(i, &msg);
                Polled::Record
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                src.at_eof.insert(p);
                Polled::Nothing
            }
            // A consumer error here is transient (e.g. `AllBrokersDown` while the broker cannot be
            // reached): librdkafka reconnects and the fetch resumes.
            Some(Err(e)) => {
                tracing::warn!(event = "status_read_error", topic = src.topic, error = %e, "cannot read the status topic; retrying");
                Polled::Nothing
            }
            None => Polled::Nothing,
        }
    }

    fn catch_up(&mut self, shutdown: &CancellationToken) -> Result<()> {
        let started = Instant::now();
        let mut records = 0u64;
        // The ends to reach: taken once, after assignment and before anything was read, so that they
        // are the records present at start-up (under steady traffic the ends keep moving: not waited for).
        let mut ends: Vec<Option<HashMap<i32, i64>>> = vec![None; self.sources.len()];
        while !shutdown.is_cancelled() {
            let mut idle = true;
            for (i, end) in ends.iter_mut().enumerate() {
                if end.is_none() {
                    *end = self.sources[i].end_offsets();
                }
                while let Polled::Record = self.poll(i, Duration::from_millis(if idle { 20 } else { 0 })) {
                    records += 1;
                    idle = false;
                }
            }
            let reached = self.sources.iter().zip(&ends).all(|(s, e)| e.as_ref().is_some_and(|e| s.at_end(e)));
            if reached {
                self.table.publish();
                self.table.state.confirmed_ms.store(unix_ms(), Ordering::Relaxed);
                self.table.state.ready.store(true, Ordering::Release);
                gauge!(m::READY).set(1.0);
                tracing::info!(
                    event = "status_loaded",
                    records,
                    practitioners = self.table.updater.view().practitioner_count(),
                    seconds = started.elapsed().as_secs_f64(),
                    "status topics read to the end; deciding claims"
                );
                return Ok(());
            }
        }
        Ok(())
    }

    fn follow(&mut self, shutdown: &CancellationToken) -> Result<()> {
        let mut last_check = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded::<Result<(PractitionerTable, PractitionerTable), String>>(1);
        let mut compacting = false;
        while !shutdown.is_cancelled() {
            let mut got = false;
            for i in 0..self.sources.len() {
                if let Polled::Record = self.poll(i, Duration::from_millis(10)) {
                    got = true;
                    if self.table.dirty_since.is_some_and(|t| t.elapsed() >= self.cfg.publish_every) {
                        self.table.publish();
                    }
                }
            }
            // Both consumers' queues are drained: the batch is complete.
            if !got && self.table.dirty_since.is_some() {
                self.table.publish();
            }
            if let Ok(done) = rx.try_recv() {
                compacting = false;
                match done.and_then(|(merged, input)| {
                    self.table.updater.install_compacted(merged, &input).map_err(|e| e.to_string())
                }) {
                    Ok(()) => {
                        tracing::info!(
                            event = "table_compacted",
                            delta = self.table.updater.delta_len(),
                            "status delta folded into the base table"
                        );
                        self.table.publish();
                    }
                    Err(e) => tracing::error!(event = "table_compaction_failed", error = e),
                }
            }
            if !compacting && self.table.updater.wants_compaction() {
                compacting = true;
                let (base, delta) = self.table.updater.compaction_input();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let merged = base.rebuilt(Some(&delta)).map_err(|e| e.to_string());
                    let _ = tx.send(merged.map(|m| (m, delta)));
                });
            }
            if last_check.elapsed() >= Duration::from_secs(2) {
                last_check = Instant::now();
                self.check_freshness();
            }
        }
        Ok(())
    }

    /// Confirms the status topics are reachable and read to their end. The table's age, and whether it
    /// is stale, are reported from the confirmation time by [`watch_staleness`], which does not wait on
    /// the broker as this does.
    fn check_freshness(&mut self) {
        let mut reachable = true;
        let mut at_end = true;
        for s in &self.sources {
            match s.end_offsets() {
                Some(e) => at_end &= s.at_end(&e),
                None => reachable = false,
            }
        }
        if reachable && (at_end || self.table.dirty_since.is_none()) {
            self.table.state.confirmed_ms.store(unix_ms(), Ordering::Relaxed);
        }
    }
}

impl Table {
    /// A record of source `source`: 0 practitioners, 1 institutions, 2 local-id mappings.
    fn apply(&mut self, source: usize, msg: &BorrowedMessage<'_>) {
        let topic = msg.topic();
        let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::trim);
        let outcome = match source {
            0 => self.apply_practitioner(key, msg.payload()),
            1 => self.apply_institution(key, msg.payload()),
            _ => self.apply_mapping(key, msg.payload()),
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
