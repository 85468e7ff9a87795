//! Writing the status topics: every writer (`tables publish`, `tables sync`, `score --publish`) goes
//! through here, so that versions never go backwards and a batch is seen whole or not at all.
//!
//! 1. **One writer at a time.** All writers of one pair of status topics share a transactional id
//!    (`claimgate-status-writer:<practitioners topic>` unless `--writer-id` says otherwise). Opening a
//!    writer initialises transactions, which fences any other writer still open: its commit fails and
//!    it is told that nothing of its run was published (never a silent loss).
//! 2. **Versions from the topic.** After the fence, the writer reads the status topics to their end
//!    (committed records only) and writes every changed record with the version it holds + 1 — never
//!    a version taken from a file. A record equal to the one held (version aside) is not written.
//! 3. **One transaction per batch**, each record marked with the batch's id and size (headers
//!    [`BATCH_HEADER`], [`BATCH_SIZE_HEADER`]): followers publish a new table view only when every batch
//!    they have begun is complete, so decisions never see half of one (`follower.rs`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::{Context, KafkaConfig, admin};
use claimgate::record::{InstitutionText, PeriodText, PractitionerText};

/// Header naming the batch (writer id, time, a sequence) a status record belongs to.
pub const BATCH_HEADER: &str = "claimgate-batch";
/// Header with the number of records in that batch, over both status topics.
pub const BATCH_SIZE_HEADER: &str = "claimgate-batch-size";

/// The status topics a writer writes.
#[derive(Clone, Debug)]
pub struct StatusTopics {
    /// Practitioner records.
    pub practitioners: String,
    /// Institution records; `None` for a writer of practitioners only (`score --publish`, `tables
    /// sync`), which then neither reads nor writes them.
    pub institutions: Option<String>,
}

impl StatusTopics {
    /// The default writer id of these topics: shared by every writer of them, so that they fence
    /// each other.
    pub fn default_writer_id(&self) -> String {
        format!("claimgate-status-writer:{}", self.practitioners)
    }
}

/// What the topic holds for one code.
#[derive(Clone, Debug, Default)]
pub struct Held {
    /// Its version.
    pub version: u64,
    /// A digest of the whole record but its version: equal digests, equal records.
    pub content: u64,
    /// A digest of the fields a registry export gives (name, kind, registrations).
    pub registry: u64,
    /// Its status periods, when it has any (few records do: kept whole, for merging).
    pub periods: Option<Box<[PeriodText]>>,
}

/// What the status topics hold, read to their end.
#[derive(Debug, Default)]
pub struct HeldState {
    /// Practitioner records by code.
    pub practitioners: FxHashMap<String, Held>,
    /// Institution records by code.
    pub institutions: FxHashMap<String, Held>,
    /// Records that could not be read (they hold no version; the last valid one stays).
    pub invalid: usize,
    /// Whole records of the codes asked for ([`read_held_keeping`]).
    pub full: FxHashMap<String, PractitionerText>,
}

fn digest(value: &impl Hash) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// The digest of a practitioner record's content, version aside.
pub fn practitioner_digest(t: &PractitionerText) -> u64 {
    let mut t = t.clone();
    t.version = 0;
    digest(&serde_json::to_string(&t).unwrap_or_default())
}

/// The digest of the fields a registry export gives.
pub fn registry_digest(t: &PractitionerText) -> u64 {
    let regs = serde_json::to_string(&t.registrations).unwrap_or_default();
    digest(&(t.name.as_deref(), t.kind.as_deref(), regs))
}

/// The digest of an institution record's content, version aside.
pub fn institution_digest(t: &InstitutionText) -> u64 {
    let mut t = t.clone();
    t.version = 0;
    digest(&serde_json::to_string(&t).unwrap_or_default())
}

/// One record to write: its topic, key and value (`None`: a tombstone).
#[derive(Clone, Debug)]
pub struct Write {
    /// Practitioners (true) or institutions.
    pub practitioner: bool,
    /// The code.
    pub key: String,
    /// The record as JSON, its version already set; `None` deletes the code.
    pub value: Option<Vec<u8>>,
}

/// A writer that fenced every other writer of the same topics.
pub struct StatusWriter {
    producer: ThreadedProducer<Context>,
    topics: StatusTopics,
    kafka: KafkaConfig,
    writer_id: String,
}

impl StatusWriter {
    /// Opens the writer: creates a status topic that does not exist yet (log-compacted, one partition,
    /// the broker's replication factor — a broker's auto-creation would make it neither), then
    /// initialises transactions under `writer_id`, fencing any other writer of it.
    pub fn open(kafka: &KafkaConfig, topics: &StatusTopics, writer_id: &str) -> Result<StatusWriter> {
        let mut names = vec![&topics.practitioners];
        names.extend(&topics.institutions);
        // Strictly absent (not merely without a leader for a moment): a topic read as empty when it is
        // not would restart every version at 1.
        let missing = admin::Metadata::new(kafka)?.gone(&names)?;
        if !missing.is_empty() {
            let specs: Vec<admin::TopicSpec> = missing
                .iter()
                .map(|name| admin::TopicSpec { name: name.clone(), partitions: 1, compacted: true, replication: -1 })
                .collect();
            admin::create_topics(kafka, &specs)?;
            eprintln!("created the status topic(s) {} (log-compacted, 1 partition)", missing.join(", "));
        }
        let producer: ThreadedProducer<Context> = kafka
            .client(&[
                ("transactional.id", writer_id),
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "20"),
                ("compression.type", "lz4"),
                ("queue.buffering.max.messages", "500000"),
                // A national batch (12 million records) takes minutes: the broker's default ceiling
                // (transaction.max.timeout.ms) is 15 minutes.
                ("transaction.timeout.ms", "900000"),
                ("allow.auto.create.topics", "false"),
            ])
            .create_with_context(Context { client: "status-writer" })
            .context("cannot create the status writer's producer")?;
        producer
            .init_transactions(Duration::from_secs(60))
            .context("cannot initialise the status writer's transactions")?;
        Ok(StatusWriter { producer, topics: topics.clone(), kafka: kafka.clone(), writer_id: writer_id.to_owned() })
    }

    /// Reads both status topics to their end (committed records only: after [`StatusWriter::open`],
    /// no other claimgate writer has a transaction open).
    pub fn held(&self) -> Result<HeldState> {
        read_held(&self.kafka, &self.topics)
    }

    /// [`StatusWriter::held`], keeping the whole records of the codes in `keep`.
    pub fn held_keeping(&self, keep: &rustc_hash::FxHashSet<String>) -> Result<HeldState> {
        read_held_keeping(&self.kafka, &self.topics, keep)
    }

    /// Writes `records` in one transaction, as one batch. Fails — with nothing published — if another
    /// writer fenced this one meanwhile.
    pub fn commit(self, records: &[Write]) -> Result<usize> {
        let mut batch = self.begin(records.len())?;
        for w in records {
            batch.send(w)?;
        }
        batch.commit()
    }

    /// Begins a batch of `size` records (the size goes in every record's header: give the exact count).
    pub fn begin(self, size: usize) -> Result<Batch> {
        let id = format!("{}:{}:{}", self.writer_id, crate::io::clock::unix_ms(), std::process::id());
        if size > 0 {
            self.producer.begin_transaction().map_err(|e| self.fenced(e))?;
        }
        Ok(Batch { writer: self, id, size, sent: 0 })
    }

    fn fenced(&self, e: KafkaError) -> anyhow::Error {
        let text = e.to_string();
        if text.contains("fenced") || text.contains("Fenced") || text.contains("epoch") {
            anyhow::anyhow!(
                "another status writer ({}) started after this one and took over: nothing of this run was published; run it again, it will write on top of the other's result ({e})",
                self.writer_id
            )
        } else {
            anyhow::Error::new(e).context("the status batch was not committed: nothing of it was published")
        }
    }
}

/// A batch being written: one transaction.
pub struct Batch {
    writer: StatusWriter,
    id: String,
    size: usize,
    sent: usize,
}

impl Batch {
    /// Queues one record of the batch.
    pub fn send(&mut self, w: &Write) -> Result<()> {
        if self.sent >= self.size {
            bail!("more records than the batch's announced size ({})", self.size);
        }
        let topics = &self.writer.topics;
        let topic = match (w.practitioner, &topics.institutions) {
            (true, _) => &topics.practitioners,
            (false, Some(i)) => i,
            (false, None) => bail!("an institution record for a writer of practitioners only"),
        };
        let size = self.size.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: BATCH_HEADER, value: Some(self.id.as_str()) })
            .insert(Header { key: BATCH_SIZE_HEADER, value: Some(size.as_str()) });
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).key(w.key.as_str()).headers(headers);
        if let Some(v) = &w.value {
            record = record.payload(v.as_slice());
        }
        loop {
            match self.writer.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    let _ = self.writer.producer.abort_transaction(Duration::from_secs(30));
                    return Err(anyhow::Error::new(e).context(format!("cannot queue a status record to {topic}")));
                }
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Commits the batch: every record becomes visible at once. Returns how many were written.
    pub fn commit(self) -> Result<usize> {
        if self.size == 0 {
            return Ok(0);
        }
        if self.sent != self.size {
            let _ = self.writer.producer.abort_transaction(Duration::from_secs(30));
            bail!("the batch announced {} records and sent {}: aborted, nothing published", self.size, self.sent);
        }
        // For the tests of two writers racing only: hold the transaction open a while.
        if let Some(ms) = std::env::var("CLAIMGATE_TEST_PAUSE_BEFORE_COMMIT_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        self.writer.producer.commit_transaction(Duration::from_secs(900)).map_err(|e| self.writer.fenced(e))?;
        Ok(self.sent)
    }
}

/// Reads both status topics to their end (committed records only): what they hold for each code.
pub fn read_held(kafka: &KafkaConfig, topics: &StatusTopics) -> Result<HeldState> {
    read_held_keeping(kafka, topics, &rustc_hash::FxHashSet::default())
}

/// [`read_held`], keeping the whole records of the codes in `keep` (in [`HeldState::full`]).
pub fn read_held_keeping(
    kafka: &KafkaConfig,
    topics: &StatusTopics,
    keep: &rustc_hash::FxHashSet<String>,
) -> Result<HeldState> {
    let mut state = HeldState::default();
    read_to_end(kafka, &topics.practitioners, |key, value| {
        let Some(key) = key else { return };
        match value {
            None => {
                state.practitioners.remove(key);
                state.full.remove(key);
            }
            Some(v) => match PractitionerText::from_json(v).and_then(|t| t.validate().map(|_| t)) {
                Ok(t) => {
                    let held = Held {
                        version: t.version,
                        content: practitioner_digest(&t),
                        registry: registry_digest(&t),
                        periods: (!t.periods.is_empty()).then(|| t.periods.clone().into_boxed_slice()),
                    };
                    let e = state.practitioners.entry(key.to_owned()).or_default();
                    if held.version > e.version || e.version == 0 {
                        *e = held;
                        if keep.contains(key) {
                            state.full.insert(key.to_owned(), t);
                        }
                    }
                }
                Err(_) => state.invalid += 1,
            },
        }
    })?;
    let Some(institutions) = &topics.institutions else { return Ok(state) };
    read_to_end(kafka, institutions, |key, value| {
        let Some(key) = key else { return };
        match value {
            None => {
                state.institutions.remove(key);
            }
            Some(v) => match InstitutionText::from_json(v).and_then(|t| t.validate().map(|_| t)) {
                Ok(t) => {
                    let held = Held { version: t.version, content: institution_digest(&t), ..Held::default() };
                    let e = state.institutions.entry(key.to_owned()).or_default();
                    if held.version > e.version || e.version == 0 {
                        *e = held;
                    }
                }
                Err(_) => state.invalid += 1,
            },
        }
    })?;
    Ok(state)
}

/// Reads `topic` from the beginning to its end (committed records only), calling `f(key, value)` for
/// each record in offset order per partition. A topic that does not exist holds nothing. The end is the last stable offset at the start; a
/// partition is done when the client reports its end or the position passes it (follower.rs says why
/// both). Fails if the topic does not exist, or if it cannot be read to its end within 10 minutes
/// (an open transaction of another producer holds it back).
pub fn read_to_end(kafka: &KafkaConfig, topic: &str, mut f: impl FnMut(Option<&str>, Option<&[u8]>)) -> Result<u64> {
    let consumer: BaseConsumer<Context> = kafka
        .bulk_reader("claimgate-status-writer", &[("fetch.wait.max.ms", "50")])
        .create_with_context(Context { client: "status-writer" })
        .context("cannot create a status reader")?;
    if !admin::Metadata::new(kafka)?.gone(&[&topic.to_owned()])?.is_empty() {
        return Ok(0);
    }
    let parts = admin::partitions(&consumer, topic, Duration::from_secs(30))?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for p in &parts {
        // A topic created a moment ago may not have its leader elected yet: ask again for a while.
        let started = Instant::now();
        let high = loop {
            match consumer.fetch_watermarks(topic, *p, Duration::from_secs(10)) {
                Ok((_, high)) => break high,
                Err(e) if started.elapsed() >= Duration::from_secs(30) => {
                    return Err(anyhow::Error::new(e).context(format!("cannot read the end offsets of {topic}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        ends.insert(*p, high);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut done: std::collections::HashSet<i32> = ends.iter().filter(|(_, e)| **e == 0).map(|(p, _)| *p).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut n = 0u64;
    while done.len() < parts.len() {
        if Instant::now() >= deadline {
            bail!("cannot read {topic} to its end in 10 minutes (an open transaction of another producer?)");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::trim);
                f(key, m.payload());
                n += 1;
                if ends.get(&m.partition()).is_some_and(|e| m.offset() + 1 >= *e) {
                    done.insert(m.partition());
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                done.insert(p);
            }
            Some(Err(e)) => tracing::warn!(event = "status_read_error", topic, error = %e, "retrying"),
            None => {}
        }
    }
    Ok(n)
}

/// The record to write for `t` over what is held: `None` when the held record has the same content
/// (version aside); else the record with the held version + 1 (1 for a new code), and the held state
/// updated so that the same code given again in one run is compared with what this run writes (the
/// last one given wins). `raw` is the record as given: its unknown fields are kept.
pub fn practitioner_write(
    held: &mut FxHashMap<String, Held>,
    t: &PractitionerText,
    raw: Option<&[u8]>,
) -> Result<Option<Write>> {
    let Some(h) = changed(held, &t.code, practitioner_digest(t)) else { return Ok(None) };
    h.registry = registry_digest(t);
    h.periods = (!t.periods.is_empty()).then(|| t.periods.clone().into_boxed_slice());
    let value = with_version(t, raw, h.version)?;
    Ok(Some(Write { practitioner: true, key: t.code.clone(), value: Some(value) }))
}

/// As [`practitioner_write`], for an institution record.
pub fn institution_write(
    held: &mut FxHashMap<String, Held>,
    t: &InstitutionText,
    raw: Option<&[u8]>,
) -> Result<Option<Write>> {
    let Some(h) = changed(held, &t.code, institution_digest(t)) else { return Ok(None) };
    let value = with_version(t, raw, h.version)?;
    Ok(Some(Write { practitioner: false, key: t.code.clone(), value: Some(value) }))
}

/// The held record of `code`, moved to the next version with `content`, if `content` differs from what
/// it holds (a code not held starts at version 1); `None` if unchanged: nothing to write.
fn changed<'h>(held: &'h mut FxHashMap<String, Held>, code: &str, content: u64) -> Option<&'h mut Held> {
    let h = held.entry(code.to_owned()).or_default();
    if h.version > 0 && h.content == content {
        return None;
    }
    h.version += 1;
    h.content = content;
    Some(h)
}

/// The JSON of a record with its `version` replaced: `raw` (fields it does not define kept) if
/// given, else `t` serialised.
fn with_version(t: &impl serde::Serialize, raw: Option<&[u8]>, version: u64) -> Result<Vec<u8>> {
    let mut v: serde_json::Value = match raw {
        Some(r) => serde_json::from_slice(r).context("a record that validated is not a JSON object")?,
        None => serde_json::to_value(t)?,
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("version".into(), version.into());
    }
    Ok(serde_json::to_vec(&v)?)
}

/// What a status topic holds: for each code, the record of the highest version (the first of equal
/// versions; a tombstone deletes), as written; invalid records skipped and counted. In key order.
pub fn dump(kafka: &KafkaConfig, topic: &str, practitioner: bool) -> Result<(Vec<Vec<u8>>, usize)> {
    let mut held: std::collections::BTreeMap<String, (u64, Vec<u8>)> = std::collections::BTreeMap::new();
    let mut invalid = 0;
    read_to_end(kafka, topic, |key, value| {
        let Some(key) = key else { return };
        let Some(v) = value else {
            held.remove(key);
            return;
        };
        let version = if practitioner {
            PractitionerText::from_json(v).and_then(|t| t.validate().map(|_| t.version))
        } else {
            InstitutionText::from_json(v).and_then(|t| t.validate().map(|_| t.version))
        };
        match version {
            Ok(version) => {
                if held.get(key).is_none_or(|(held, _)| version > *held) {
                    held.insert(key.to_owned(), (version, v.to_vec()));
                }
            }
            Err(_) => invalid += 1,
        }
    })?;
    Ok((held.into_values().map(|(_, v)| v).collect(), invalid))
}
