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
//!
//! - [`source`] — one status topic and its consumer;
//! - [`table`] — records applied, batches kept whole, invalid records sent to the status dead-letter
//!   topic and flagged;
//! - here — start-up (from the checkpoint if there is a usable one, `io::checkpoint`), the read to the
//!   end, following, compaction in the background, checkpoints every `checkpoint.every_s`.

mod chunk;
mod compared;
mod source;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use metrics::gauge;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{KafkaConfig, admin};
use crate::io::checkpoint;
use crate::io::clock::unix_ms;
use crate::io::metrics as m;
use claimgate::table::{BaseTable, InstitutionTable, PractitionerTable, STREAM_SHARD_BITS, TableHandle, Updater};
use source::Source;
use table::{InvalidSink, Table};

pub use table::Flagged;

/// A checkpoint being read on a thread of its own ([`Follower::read_checkpoint_behind`]).
struct Reading {
    started: Instant,
    read: std::io::Result<std::thread::JoinHandle<Result<checkpoint::Loaded>>>,
}

/// What the rest of the process may read about the tables.
#[derive(Debug, Default)]
pub struct TableState {
    /// The status topics were read to their end once: claims may be decided.
    pub ready: AtomicBool,
    /// Unix milliseconds when the status topics were last confirmed reachable and read.
    pub confirmed_ms: AtomicU64,
    /// Views published.
    pub generation: AtomicU64,
    /// Codes whose latest status record was invalid: where, and why.
    pub invalid: Flagged,
    /// Whether the table was last seen stale (by the staleness watch or a scrape).
    stale: AtomicBool,
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

    /// The table's age now, into `claimgate_table_age_seconds` and `claimgate_table_stale`; a turn to
    /// stale or back is logged (`table_stale`, `table_fresh`) by whichever caller sees it first — the
    /// staleness watch or a scrape of `/metrics` — so that the log never lags what the metrics show.
    pub fn observe_staleness(&self, stale_after_s: f64) -> f64 {
        let age = self.age_secs();
        gauge!(m::TABLE_AGE).set(age);
        let now = age >= stale_after_s;
        gauge!(m::TABLE_STALE).set(if now { 1.0 } else { 0.0 });
        // Before the first load there is no table to be stale: the wait is logged by the follower.
        if !self.ready.load(Ordering::Acquire) {
            return age;
        }
        let was = self.stale.swap(now, Ordering::AcqRel);
        if now && !was {
            tracing::warn!(
                event = "table_stale",
                age_s = age,
                "cannot confirm the status topics; deciding on the last table"
            );
        } else if !now && was {
            tracing::info!(event = "table_fresh", "status topics reachable again");
        }
        age
    }

    /// Why a code is flagged, if its latest status record was invalid.
    pub fn invalid_record(&self, code: &str) -> Option<String> {
        self.invalid.lock().ok()?.get(code).cloned()
    }
}

/// Checkpoints: where, how often, how old one may be.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The file.
    pub path: PathBuf,
    /// A checkpoint is written this often when the table changed, and at shutdown.
    pub every: Duration,
    /// An older checkpoint is refused (at most the status topics' `delete.retention.ms`).
    pub max_age: Duration,
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
    /// Status dead-letter topic: invalid status records go there.
    pub status_dlq: String,
    /// Longest wait before a batch of changes is published.
    pub publish_every: Duration,
    /// Longest wait for the rest of a status batch before publishing without it.
    pub batch_wait: Duration,
    /// Delta size that starts a compaction (`limits.compact_after`); `None`: the table's own rule.
    pub compact_after: Option<usize>,
    /// Checkpoints, if enabled.
    pub checkpoint: Option<CheckpointConfig>,
    /// Late status changes are written here (`topics.retro`).
    pub retro: Option<String>,
}

struct Follower {
    cfg: FollowerConfig,
    kafka: KafkaConfig,
    sources: Vec<Source>,
    table: Table,
    cluster_id: String,
    /// Positions of the practitioner and institution sources at the last publish: what a checkpoint of
    /// the published view covers.
    published_at: Vec<(String, i32, i64)>,
    /// The generation last checkpointed, and when.
    checkpointed: (u64, Instant),
    /// A checkpoint being written in the background.
    writing: Option<std::thread::JoinHandle<Result<()>>>,
    /// Records read while following, reused.
    chunk: chunk::Chunk,
    /// How far the topics were compared for late changes, for the next instance (with a retro topic).
    compared: Option<compared::Compared>,
}

/// Reports the table's age every second (`claimgate_table_age_seconds`, `claimgate_table_stale`) and
/// logs when it turns stale (`table_stale`) and fresh again (`table_fresh`): a task of its own, so that
/// a broker that does not answer the follower's calls cannot delay the report.
pub async fn watch_staleness(state: Arc<TableState>, stale_after: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !shutdown.is_cancelled() {
        tick.tick().await;
        state.observe_staleness(stale_after.as_secs_f64());
    }
}

/// What the compaction thread hands the follower.
enum Step {
    /// Shard `k`, rebuilt with its part of the delta.
    Shard(usize, PractitionerTable),
    /// Every shard is done; the delta as the compaction took it.
    Done(Arc<PractitionerTable>),
    /// A shard could not be rebuilt; the compaction stops there.
    Failed(String),
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
    let topics: Vec<&str> = sources.iter().map(|s| s.topic.as_str()).collect();
    let table = Table::new(
        Updater::with_base(BaseTable::sharded(STREAM_SHARD_BITS, 1 << 16), InstitutionTable::default()),
        handle,
        state,
        cfg.batch_wait,
        InvalidSink::new(kafka, &cfg.status_dlq),
        &topics,
    );
    let mut f = Follower {
        cfg,
        kafka: kafka.clone(),
        sources,
        table,
        cluster_id: String::new(),
        published_at: Vec::new(),
        checkpointed: (0, Instant::now()),
        writing: None,
        chunk: chunk::Chunk::default(),
        compared: None,
    };
    Ok(std::thread::Builder::new().name("status-follower".into()).spawn(move || f.run(&shutdown))?)
}

impl Follower {
    fn run(&mut self, shutdown: &CancellationToken) -> Result<()> {
        // The checkpoint is read on a thread of its own while the cluster is asked its id and the retro
        // topic is read: in a restart on 12 million codes the three took 1.0, 1.0 and 0.4 s one after
        // the other (BENCHMARKS.md, the comparison with Kafka Streams).
        let reading = self.read_checkpoint_behind();
        self.wait_cluster_id(shutdown);
        self.open_retro();
        let started = self.load_checkpoint(reading);
        self.retro_from(started.is_some());
        for i in 0..self.sources.len() {
            let from = started.as_ref().map(|positions| {
                positions.iter().filter(|(t, _, _)| *t == self.sources[i].topic).map(|(_, p, o)| (*p, *o)).collect()
            });
            if !self.assign(i, from, shutdown)? {
                return Ok(());
            }
        }
        if started.is_none() {
            self.compare_from_marks();
        }
        self.catch_up(shutdown)?;
        self.table.detect_retro = self.cfg.retro.is_some();
        self.table.detect_from = Default::default();
        let result = self.follow(shutdown);
        self.checkpoint_now(true);
        // The late changes applied last are written before the producer goes (dropping it purges them),
        // then how far they were compared.
        self.table.retro.drain();
        self.table.retro.flush(Duration::from_secs(5));
        self.mark_compared(true);
        result
    }

    /// In a read from the beginning: the records written since the marks of the instances that ran
    /// before are compared, so that a change made while no instance ran is found ([`compared`]).
    fn compare_from_marks(&mut self) {
        let Some(c) = &self.compared else { return };
        let mut marked = 0usize;
        let mut unmarked = Vec::new();
        for (i, src) in self.sources.iter().take(2).enumerate() {
            let parts: Vec<i32> = src.positions.keys().copied().collect();
            let marks = match c.read(&src.topic, &parts) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(event = "status_retro_unmarked", topic = src.topic, error = %format!("{e:#}"), "cannot read how far the status topic was compared: changes made while no instance ran are not compared in this read");
                    continue;
                }
            };
            let len = parts.iter().copied().max().map_or(0, |p| p as usize + 1);
            let mut from = vec![i64::MAX; len];
            for p in &parts {
                match marks.get(p) {
                    Some(o) => {
                        from[*p as usize] = *o;
                        marked += 1;
                    }
                    None => unmarked.push(format!("{}/{p}", src.topic)),
                }
            }
            self.table.detect_from[i] = from;
        }
        if !unmarked.is_empty() {
            tracing::warn!(
                event = "status_retro_unmarked",
                partitions = %unmarked.join(","),
                group = compared::group(self.cfg.retro.as_deref().unwrap_or_default()),
                "no instance recorded how far these status partitions were compared (a first start, or a stop longer than the broker's offsets.retention.minutes): late changes made while no instance ran are not found in them; review their window by hand if that matters"
            );
        }
        tracing::info!(
            event = "status_retro_compared_from",
            partitions = marked,
            "changes written after the last instance's marks are compared during the read from the beginning"
        );
    }

    /// Records how far the published view's records were compared, once the changes among them are
    /// acknowledged (at most every `compared::EVERY`, or `now`).
    fn mark_compared(&mut self, now: bool) {
        let Some(c) = &mut self.compared else { return };
        // Cheapest first: this runs at every turn of the following loop.
        if c.due(now)
            && self.table.detect_retro
            && self.table.state.ready.load(Ordering::Acquire)
            && self.table.retro.idle()
        {
            c.mark(&self.published_at, now);
        }
    }

    /// Opens the retro topic: the keys it holds, so that a change another instance, or an earlier run,
    /// already wrote is not written again.
    fn open_retro(&mut self) {
        let Some(topic) = self.cfg.retro.clone() else { return };
        let mut known = std::collections::HashSet::new();
        match super::status_writer::read_to_end(&self.kafka, &topic, |key, _| {
            if let Some(k) = key {
                known.insert(k.to_owned());
            }
        }) {
            Ok(_) => {
                if !admin::Metadata::new(&self.kafka).and_then(|m| m.gone(&[&topic])).is_ok_and(|g| g.is_empty()) {
                    tracing::warn!(
                        event = "status_retro_topic_missing",
                        topic,
                        "the retro topic does not exist: late status changes will only be logged (create it: `claimgate topics create`)"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(event = "status_retro_unreadable", topic, error = %format!("{e:#}"), "cannot read the retro topic: changes other instances wrote may be written again (readers drop repeats)")
            }
        }
        self.table.retro = table::RetroSink::new(&self.kafka, &topic, known);
        if self.table.retro.writes() {
            self.compared = compared::Compared::new(&self.kafka, &topic)
                .map_err(|e| tracing::warn!(event = "status_retro_unmarked", error = %format!("{e:#}"), "how far the status topics were compared will not be recorded"))
                .ok();
        }
    }

    /// Whether late changes are compared from the start (a checkpoint's tail is news to this instance)
    /// or only once the table is whole.
    fn retro_from(&mut self, from_checkpoint: bool) {
        let Some(topic) = &self.cfg.retro else { return };
        tracing::info!(
            event = "status_retro_following",
            topic,
            known = self.table.retro.known(),
            from = if from_checkpoint { "checkpoint" } else { "ready" },
            "late status changes are compared and written from here on"
        );
        self.table.detect_retro = from_checkpoint;
    }

    /// Starts reading the checkpoint, if one is configured and there, on a thread of its own.
    fn read_checkpoint_behind(&self) -> Option<Reading> {
        let cfg = self.cfg.checkpoint.as_ref().filter(|cfg| cfg.path.exists())?;
        let path = cfg.path.clone();
        let started = Instant::now();
        let read = std::thread::Builder::new().name("checkpoint-read".into()).spawn(move || {
            let loaded = checkpoint::read(&path);
            if loaded.is_ok() {
                tracing::info!(event = "checkpoint_read", path = %path.display(), seconds = started.elapsed().as_secs_f64(), "checkpoint read: its offsets are checked against the cluster next");
            }
            loaded
        });
        Some(Reading { started, read })
    }

    /// Loads the checkpoint being read, if it can be used: its tables go into the updater, and the
    /// positions it covers are returned. Every refusal is said, and the topics are read from the
    /// beginning instead.
    fn load_checkpoint(&mut self, reading: Option<Reading>) -> Option<Vec<(String, i32, i64)>> {
        let cfg = self.cfg.checkpoint.clone()?;
        let Some(Reading { started, read }) = reading else {
            tracing::info!(event = "checkpoint_absent", path = %cfg.path.display(), "no checkpoint: reading the status topics from the beginning");
            return None;
        };
        let loaded = match read {
            Ok(handle) => handle.join().unwrap_or_else(|_| Err(anyhow::anyhow!("its reader panicked"))),
            Err(e) => Err(anyhow::Error::from(e).context("cannot start its reader")),
        };
        match loaded.and_then(|loaded| self.usable_checkpoint(&cfg, loaded)) {
            Ok(loaded) => {
                let positions = loaded.header.positions.clone();
                tracing::info!(
                    event = "checkpoint_loaded",
                    path = %cfg.path.display(),
                    epoch = loaded.header.epoch,
                    age_s = (unix_ms().saturating_sub(loaded.header.created_ms)) / 1000,
                    seconds = started.elapsed().as_secs_f64(),
                    "checkpoint loaded: reading the status topics from its offsets"
                );
                self.table.updater = loaded.updater;
                Some(positions)
            }
            Err(e) => {
                ::metrics::counter!(m::CHECKPOINTS, "outcome" => "refused").increment(1);
                tracing::warn!(event = "checkpoint_refused", path = %cfg.path.display(), reason = %format!("{e:#}"), "checkpoint not used: reading the status topics from the beginning");
                None
            }
        }
    }

    /// The cluster's id (a checkpoint is refused if written for another cluster), asked of the first
    /// source's client, waiting for the broker if need be; without a checkpoint to check, one try.
    ///
    /// A metadata request goes first: it makes the client connect at once. Asked for its id alone, a
    /// fresh client waits for its first connection, which librdkafka's sparse connections open on
    /// its one-second timer (`rd_kafka_1s_tmr_cb`): a second of every start.
    fn wait_cluster_id(&mut self, shutdown: &CancellationToken) {
        let started = Instant::now();
        while self.cluster_id.is_empty() && !shutdown.is_cancelled() {
            let src = &self.sources[0];
            if let Err(e) = src.consumer.fetch_metadata(Some(&src.topic), Duration::from_secs(10)) {
                tracing::debug!(event = "cluster_metadata_unread", error = %e, "no metadata yet");
            }
            match src.consumer.client().fetch_cluster_id(Duration::from_secs(1)) {
                Some(id) => {
                    tracing::info!(
                        event = "cluster_id_known",
                        cluster_id = id,
                        seconds = started.elapsed().as_secs_f64(),
                        "the cluster answered"
                    );
                    self.cluster_id = id;
                }
                None if self.cfg.checkpoint.is_none() => break,
                None => tracing::warn!(event = "cluster_id_unknown", "cannot ask the cluster its id yet; waiting"),
            }
        }
    }

    fn usable_checkpoint(&self, cfg: &CheckpointConfig, loaded: checkpoint::Loaded) -> Result<checkpoint::Loaded> {
        let h = &loaded.header;
        if h.cluster_id != self.cluster_id {
            bail!("written for Kafka cluster {}, this is cluster {}", h.cluster_id, self.cluster_id);
        }
        let age = Duration::from_millis(unix_ms().saturating_sub(h.created_ms));
        if age > cfg.max_age {
            bail!("{} s old, older than checkpoint.max_age_s ({})", age.as_secs(), cfg.max_age.as_secs());
        }
        for src in &self.sources[..2] {
            let parts = admin::partitions(&src.consumer, &src.topic, Duration::from_secs(30))?;
            let covered: Vec<i32> =
                h.positions.iter().filter(|(t, _, _)| *t == src.topic).map(|(_, p, _)| *p).collect();
            let mut sorted = covered.clone();
            sorted.sort_unstable();
            if sorted != parts {
                bail!("covers partitions {sorted:?} of {}, the topic has {parts:?}", src.topic);
            }
            for (_, p, o) in h.positions.iter().filter(|(t, _, _)| *t == src.topic) {
                let (low, high) = src
                    .consumer
                    .fetch_watermarks(&src.topic, *p, Duration::from_secs(10))
                    .context("cannot read the status topics' offsets")?;
                if *o < low {
                    bail!("offset {o} of {}/{p} is gone from the topic (it starts at {low}: retention)", src.topic);
                }
                if *o > high {
                    bail!("offset {o} of {}/{p} is past the topic's end {high} (a recreated topic?)", src.topic);
                }
            }
        }
        Ok(loaded)
    }

    /// Writes a checkpoint of the published view if it changed since the last one: in the background,
    /// or now (at shutdown).
    fn checkpoint_now(&mut self, wait: bool) {
        let Some(cfg) = self.cfg.checkpoint.clone() else { return };
        if let Some(h) = self.writing.take_if(|h| h.is_finished() || wait) {
            match h.join() {
                Ok(Ok(())) => ::metrics::counter!(m::CHECKPOINTS, "outcome" => "written").increment(1),
                Ok(Err(e)) => {
                    ::metrics::counter!(m::CHECKPOINTS, "outcome" => "failed").increment(1);
                    tracing::warn!(event = "checkpoint_failed", error = %format!("{e:#}"), "the checkpoint was not written")
                }
                Err(_) => tracing::error!(event = "checkpoint_panicked"),
            }
        }
        let generation = self.table.state.generation.load(Ordering::Relaxed);
        if self.writing.is_some()
            || generation == self.checkpointed.0
            || !self.table.state.ready.load(Ordering::Acquire)
        {
            return;
        }
        let Some(view) = self.table.handle.load() else { return };
        self.checkpointed = (generation, Instant::now());
        let (path, cluster, positions) = (cfg.path.clone(), self.cluster_id.clone(), self.published_at.clone());
        let write = move || {
            let started = Instant::now();
            checkpoint::write(&path, &cluster, positions, &view)?;
            tracing::info!(event = "checkpoint_written", path = %path.display(), epoch = view.epoch(), seconds = started.elapsed().as_secs_f64());
            Ok(())
        };
        if wait {
            if let Err(e) = write() {
                tracing::warn!(event = "checkpoint_failed", error = %format!("{e:#}"), "the checkpoint was not written");
            }
        } else {
            self.writing = std::thread::Builder::new().name("checkpoint".into()).spawn(write).ok();
        }
    }

    /// Publishes the tables, and notes the positions the view covers.
    fn publish(&mut self) {
        self.table.publish();
        self.published_at = self.sources[..2]
            .iter()
            .flat_map(|s| s.positions.iter().map(move |(p, o)| (s.topic.clone(), *p, *o)))
            .collect();
    }

    /// Waits for the topic to exist, then assigns every partition from the beginning, or from `from`
    /// (a checkpoint's offsets). False if shutdown came first.
    fn assign(&mut self, i: usize, from: Option<BTreeMap<i32, i64>>, shutdown: &CancellationToken) -> Result<bool> {
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
            let at = from.as_ref().and_then(|f| f.get(&p)).copied();
            tpl.add_partition_offset(&src.topic, p, at.map_or(Offset::Beginning, Offset::Offset))?;
            src.positions.insert(p, at.unwrap_or(0));
        }
        src.consumer.assign(&tpl).context("cannot assign the status partitions")?;
        tracing::info!(
            event = "status_assigned",
            topic = src.topic,
            partitions = src.positions.len(),
            from = if from.is_some() { "checkpoint" } else { "beginning" },
            "reading the status topic"
        );
        Ok(true)
    }

    /// Polls source `i` until its queue is empty (the first poll waiting up to `wait`) or `max` records
    /// are read, and applies them in order (`chunk`); returns the records read.
    fn drain(&mut self, i: usize, wait: Duration, max: usize) -> usize {
        let mut c = std::mem::take(&mut self.chunk);
        chunk::fill(&mut self.sources[i], i, &mut c, wait, max);
        c.decode();
        chunk::apply(&mut self.table, &c);
        let read = c.len();
        self.chunk = c;
        read
    }

    fn catch_up(&mut self, shutdown: &CancellationToken) -> Result<()> {
        let started = Instant::now();
        let mut records = 0u64;
        // The ends to reach: taken once, after assignment and before anything was read, so that they
        // are the records present at start-up (under steady traffic the ends keep moving: not waited for).
        let mut ends: Vec<Option<HashMap<i32, i64>>> = vec![None; self.sources.len()];
        // Records are decoded on a second thread while the next chunk is read (`chunk`).
        let mut decoder = chunk::Decoder::start().context("cannot start the status decoder")?;
        while !shutdown.is_cancelled() {
            let mut idle = true;
            for (i, end) in ends.iter_mut().enumerate() {
                if end.is_none() {
                    *end = self.sources[i].end_offsets();
                    // Room for the practitioner records to come, made once: no arena grown by copying.
                    if i == 0
                        && let Some(ends) = end
                    {
                        let src = &self.sources[0];
                        let to_read: i64 =
                            ends.iter().map(|(p, high)| high - src.positions.get(p).copied().unwrap_or(0)).sum();
                        let held = self.table.updater.practitioner_count();
                        self.table.updater.reserve_records(held + to_read.max(0) as usize);
                    }
                }
                loop {
                    let mut c = decoder.empty_chunk(&mut self.table)?;
                    let wait = Duration::from_millis(if idle { 20 } else { 0 });
                    chunk::fill(&mut self.sources[i], i, &mut c, wait, chunk::SIZE);
                    let read = c.len();
                    decoder.send(c);
                    if read == 0 {
                        break;
                    }
                    records += read as u64;
                    idle = false;
                }
            }
            // Positions count records read; the ends are reached once they are applied too.
            decoder.finish(&mut self.table)?;
            let reached = self.sources.iter().zip(&ends).all(|(s, e)| e.as_ref().is_some_and(|e| s.at_end(e)));
            // A batch committed while the ends were taken can straddle them (its records on one topic
            // read, on the other not yet): wait for its rest before the first view.
            if reached && self.table.settled() {
                self.table.forget_batches();
                self.table.updater.fit();
                // Before the first view: nothing decides claims yet, so no thread waits on an arena.
                crate::io::alloc::give_back_free_memory("status_loaded");
                self.publish();
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
        // Rendezvous: the compaction thread builds a shard and waits until it is installed before it
        // builds the next, so at most one new shard exists beside the table (see `BaseTable`).
        let (tx, rx) = crossbeam_channel::bounded::<Step>(0);
        let mut compacting: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            // Each source drained without waiting; only when every one is idle does the loop wait (on
            // the first, at most 10 ms). Waiting on an idle source per record read from another would
            // cap the follower at a hundred records a second.
            let mut got = false;
            for i in 0..self.sources.len() {
                // At most a slice of a flood per turn: compaction, freshness and checkpoints below keep
                // their turn under continuous traffic.
                for _ in 0..40 {
                    let read = self.drain(i, Duration::ZERO, 256);
                    got |= read > 0;
                    if self.table.dirty_since.is_some_and(|t| t.elapsed() >= self.cfg.publish_every)
                        && self.table.settled()
                    {
                        self.publish();
                    }
                    if read < 256 {
                        break;
                    }
                }
            }
            if !got && self.drain(0, Duration::from_millis(10), 256) > 0 {
                got = true;
            }
            // Every consumer's queue is drained and no batch is half read: publish.
            if !got && self.table.dirty_since.is_some() && self.table.settled() {
                self.publish();
            }
            // No checkpoint starts during a compaction: its view would hold the old shards until it is
            // written, and with them the whole old table.
            if compacting.is_none()
                && self.cfg.checkpoint.as_ref().is_some_and(|c| self.checkpointed.1.elapsed() >= c.every)
            {
                self.checkpoint_now(false);
            }
            self.mark_compared(false);
            // A shard is installed, and published, only where no batch is half read; publishing at once
            // lets the readers drop the view that held the old shard.
            if let Some(started) = compacting
                && self.table.settled()
            {
                match rx.try_recv() {
                    Ok(Step::Shard(k, shard)) => {
                        self.table.updater.install_shard(k, shard);
                        self.publish();
                    }
                    Ok(Step::Done(input)) => {
                        compacting = None;
                        match self.table.updater.finish_compaction(&input) {
                            Ok(()) => {
                                tracing::info!(
                                    event = "table_compacted",
                                    folded = input.entries(),
                                    delta = self.table.updater.delta_len(),
                                    seconds = started.elapsed().as_secs_f64(),
                                    "status delta folded into the base table, shard by shard"
                                );
                                self.publish();
                                crate::io::alloc::give_back_free_memory("table_compacted");
                            }
                            Err(e) => tracing::error!(event = "table_compaction_failed", error = %e),
                        }
                    }
                    Ok(Step::Failed(e)) => {
                        compacting = None;
                        tracing::error!(event = "table_compaction_failed", error = e, "the shards folded so far stay");
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => {}
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        compacting = None;
                        tracing::error!(event = "table_compaction_failed", error = "the compaction thread ended");
                    }
                }
            }
            let checkpoint_writing = self.writing.as_ref().is_some_and(|h| !h.is_finished());
            if compacting.is_none()
                && !checkpoint_writing
                && self.table.updater.wants_compaction(self.cfg.compact_after)
            {
                let mut job = self.table.updater.compaction();
                let tx = tx.clone();
                // For the test of changes arriving during a fold only: each shard's rebuild takes this long.
                let pause = std::env::var("CLAIMGATE_TEST_PAUSE_PER_SHARD_MS").ok().and_then(|v| v.parse().ok());
                let spawned = std::thread::Builder::new().name("compaction".into()).spawn(move || {
                    while let Some(built) = job.next() {
                        if let Some(ms) = pause {
                            std::thread::sleep(Duration::from_millis(ms));
                        }
                        let step = built.map_or_else(|e| Step::Failed(e.to_string()), |(k, t)| Step::Shard(k, t));
                        let failed = matches!(step, Step::Failed(_));
                        if tx.send(step).is_err() || failed {
                            return;
                        }
                    }
                    let _ = tx.send(Step::Done(job.into_delta()));
                });
                match spawned {
                    Ok(_) => {
                        let base = self.table.updater.view().base().clone();
                        tracing::info!(
                            event = "table_compaction_started",
                            delta = self.table.updater.delta_len(),
                            garbage_mib = base.dead_bytes() >> 20,
                            shards = base.shards().len(),
                            "folding the status delta (and dropping replaced records) into the base, shard by shard"
                        );
                        compacting = Some(Instant::now());
                    }
                    Err(e) => tracing::error!(event = "table_compaction_failed", error = %e),
                }
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
