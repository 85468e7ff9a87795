//! The tables the follower builds from the status records, and what it publishes of them: records
//! applied (version wins, tombstones delete), batches tracked so that a view is published only where
//! no batch is half read, invalid records sent to the status dead-letter topic and their codes flagged.
//!
//! **Batches.** claimgate's status writers (`status_writer.rs`) write each batch in one transaction and
//! mark its records with the batch's id and size. Read committed, a batch arrives whole, but across
//! partitions and topics in any interleaving: a view is published only when every batch begun is
//! complete. A batch incomplete for `limits.status_batch_wait_s` (a record compacted away before it
//! was read, say) is published anyway, with a warning (`status_batch_incomplete`). Records of other
//! writers carry no mark and are published as they come.
//!
//! **Invalid records** (not JSON, not a record, a key that is not its code): the last valid version of
//! the code stays in the table, the code is flagged (`claimgate_status_invalid_codes`, and the status
//! query says so), the record goes to the status dead-letter topic keyed by its source offset (so a
//! compacted dead-letter topic keeps one copy however often instances restart), and
//! `claimgate_status_records_total{outcome="invalid"}` counts it. Instances can disagree only where
//! compaction removed the valid version that older instances still hold: every instance then shows the
//! code flagged, so the disagreement is never silent, and a valid record for the code clears it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseRecord, ThreadedProducer};

use super::super::status_writer::{BATCH_HEADER, BATCH_SIZE_HEADER};
use super::super::{Context, KafkaConfig};
use super::TableState;
use crate::io::clock::{from_unix_ms, unix_ms};
use crate::io::metrics as m;
use claimgate::record::retro::{self, APPLIED_WITHIN_S, Recorded};
use claimgate::record::{
    BjTime, DeadLetter, InstitutionCode, InstitutionRecord, InstitutionText, MappingRecord, MappingText,
    PractitionerCode, PractitionerKey, PractitionerRecord, PractitionerRow, RetroChange,
};
use claimgate::table::{Applied, TableHandle, Updater};

/// Batches begun and not yet complete.
#[derive(Default)]
struct Batches {
    /// By id: (records seen, announced size, when the first was seen).
    open: HashMap<String, (usize, usize, Instant)>,
    /// Batches published incomplete: their late records no longer hold views back.
    abandoned: HashSet<String>,
}

/// Where invalid status records go.
pub struct InvalidSink {
    producer: Option<ThreadedProducer<Context>>,
    topic: String,
}

impl InvalidSink {
    /// A sink producing to `topic` (no producer if it cannot be created: the records are then only
    /// logged and counted).
    pub fn new(kafka: &KafkaConfig, topic: &str) -> InvalidSink {
        let producer = kafka
            .client(&[("enable.idempotence", "true"), ("linger.ms", "20"), ("allow.auto.create.topics", "false")])
            .create_with_context(Context { client: "status-dlq" })
            .map_err(|e| tracing::warn!(event = "status_dlq_unavailable", error = %e, "invalid status records will only be logged"))
            .ok();
        InvalidSink { producer, topic: topic.to_owned() }
    }
}

/// Where late status changes go (`topics.retro`, service.md "The loop between inline and nightly"):
/// one record per change, keyed `code@version`, so that the compacted topic keeps one copy whatever the
/// number of instances that saw it; keys already on the topic are not written again.
pub struct RetroSink {
    producer: Option<ThreadedProducer<RetroCtx>>,
    topic: String,
    /// Keys already on the topic (read at start-up) or written since.
    known: HashSet<String>,
    /// Late changes applied and not yet in a published view.
    pending: Vec<RetroChange>,
    published: metrics::Counter,
}

/// A late status change whose delivery failed is said and counted, never dropped silently.
pub struct RetroCtx;

impl rdkafka::ClientContext for RetroCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "status-retro" }.log(level, fac, log_message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        Context { client: "status-retro" }.error(error, reason);
    }
}

impl rdkafka::producer::ProducerContext for RetroCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            counter!(m::STATUS_RETRO_FAILED).increment(1);
            let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
            tracing::error!(event = "status_retro_failed", key = %key, error = %e, "a late status change could not be written to the retro topic: run `review` over its window by hand");
        }
    }
}

impl RetroSink {
    /// A sink producing to `topic`, knowing the keys `known` already holds.
    pub fn new(kafka: &KafkaConfig, topic: &str, known: HashSet<String>) -> RetroSink {
        let producer = kafka
            .client(&[("enable.idempotence", "true"), ("linger.ms", "20"), ("allow.auto.create.topics", "false")])
            .create_with_context(RetroCtx)
            .map_err(|e| tracing::warn!(event = "status_retro_unavailable", error = %e, "late status changes will only be logged"))
            .ok();
        RetroSink {
            producer,
            topic: topic.to_owned(),
            known,
            pending: Vec::new(),
            published: counter!(m::STATUS_RETRO),
        }
    }

    /// A sink that writes nothing (no retro topic configured).
    pub fn none() -> RetroSink {
        RetroSink {
            producer: None,
            topic: String::new(),
            known: HashSet::new(),
            pending: Vec::new(),
            published: counter!(m::STATUS_RETRO),
        }
    }

    /// Nothing is in flight: every change written was acknowledged or failed (and was logged).
    pub fn idle(&self) -> bool {
        use rdkafka::producer::Producer as _;
        self.pending.is_empty() && self.producer.as_ref().is_none_or(|p| p.in_flight_count() == 0)
    }

    /// The keys the retro topic held when it was opened, and those written since.
    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// Whether late changes can be written at all.
    pub fn writes(&self) -> bool {
        self.producer.is_some()
    }

    /// Waits up to `wait` for the changes queued to be acknowledged: a producer dropped with records
    /// still queued purges them (each then counted and logged as failed).
    pub fn flush(&self, wait: std::time::Duration) {
        use rdkafka::producer::Producer as _;
        if let Some(p) = &self.producer
            && let Err(e) = p.flush(wait)
        {
            tracing::error!(event = "status_retro_failed", error = %e, "late status changes still queued at shutdown were not all written to the retro topic: see the failures logged with their keys");
        }
    }

    /// Keeps a late change to write once the view holding it is published ([`RetroSink::drain`]): its
    /// logging, encoding and producing then never slow the reading of a batch (a batch of 100 000
    /// back-dated suspensions was published half read when each was written as it was applied, past
    /// `limits.status_batch_wait_s`). Past [`RETRO_PENDING_MAX`] kept, they are written at once.
    fn queue(&mut self, change: RetroChange) {
        self.pending.push(change);
        if self.pending.len() >= RETRO_PENDING_MAX {
            tracing::warn!(
                event = "status_retro_backlog",
                kept = self.pending.len(),
                "many late status changes in one view: writing them to the retro topic now, while the batch is read"
            );
            self.drain();
        }
    }

    /// Writes the late changes kept.
    pub fn drain(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for c in &pending {
            self.publish(c);
        }
    }

    fn publish(&mut self, change: &RetroChange) {
        let key = change.key();
        tracing::info!(
            event = "status_retro",
            key,
            from = change.from,
            until = change.until,
            version_before = change.version_before,
            version_after = change.version_after,
            "a status change takes effect in the past: the claims of its window need a review"
        );
        if self.producer.is_none() || !self.known.insert(key.clone()) {
            return;
        }
        let Ok(value) = serde_json::to_vec(change) else { return };
        if let Some(p) = &self.producer {
            let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.topic).key(key.as_str()).payload(&value);
            // A full producer queue (thousands of changes at once) drains within moments: wait for it,
            // for 30 s at most.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match p.send(record) {
                    Ok(()) => {
                        self.published.increment(1);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) if Instant::now() < deadline => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        counter!(m::STATUS_RETRO_FAILED).increment(1);
                        tracing::error!(event = "status_retro_failed", key, error = %e, "a late status change could not be queued for the retro topic");
                        break;
                    }
                }
            }
        }
    }
}

/// Late changes kept for the view being built, at most (about 400 bytes each).
pub const RETRO_PENDING_MAX: usize = 250_000;

/// The tables being built, and what is published of them.
pub struct Table {
    pub updater: Updater,
    pub handle: Arc<TableHandle>,
    pub state: Arc<TableState>,
    /// Broker timestamp (ms) of the oldest record not yet published.
    pub oldest_pending_ms: Option<i64>,
    pub dirty_since: Option<Instant>,
    batches: Batches,
    batch_wait: Duration,
    invalid: InvalidSink,
    /// `claimgate_status_records_total{topic,outcome}` per source and outcome, registered once (a
    /// registry lookup per record would cost as much as the record's parse at start-up).
    counters: Vec<[metrics::Counter; 4]>,
    /// Some code is flagged invalid: only then does a valid record need the flags' lock (only the
    /// follower writes them).
    flagged_any: bool,
    /// Late status changes go here.
    pub retro: RetroSink,
    /// Compare each change with the record held before it and report late ones: once the table is
    /// whole (following), and from a checkpoint on (its tail is news to this instance); never during a
    /// read from the beginning, where every code would look new.
    pub detect_retro: bool,
    /// Before `detect_retro`, in a read from the beginning: per source (practitioners, institutions)
    /// and partition, the offset from which records are compared — the mark of the instances that ran
    /// before ([`super::compared`]); `i64::MAX` where there is none.
    pub detect_from: [Vec<i64>; 2],
}

const OUTCOMES: [&str; 4] = ["applied", "stale", "deleted", "invalid"];

fn header<'m>(msg: &'m BorrowedMessage<'_>, name: &str) -> Option<&'m str> {
    msg.headers()?.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok())
}

impl Table {
    /// Empty tables over `updater`.
    pub fn new(
        updater: Updater,
        handle: Arc<TableHandle>,
        state: Arc<TableState>,
        batch_wait: Duration,
        invalid: InvalidSink,
        topics: &[&str],
    ) -> Table {
        let counters = topics
            .iter()
            .map(|t| OUTCOMES.map(|o| counter!(m::STATUS_RECORDS, "topic" => (*t).to_owned(), "outcome" => o)))
            .collect();
        Table {
            counters,
            updater,
            handle,
            state,
            oldest_pending_ms: None,
            dirty_since: None,
            batches: Batches::default(),
            batch_wait,
            invalid,
            flagged_any: false,
            retro: RetroSink::none(),
            detect_retro: false,
            detect_from: [Vec::new(), Vec::new()],
        }
    }

    /// Starts loading the table memory that applying `record` will touch (see `Follower::drain`).
    #[inline]
    pub fn prefetch(&self, record: &Record) {
        if let Record::Practitioner(rec) = record {
            self.updater.prefetch_practitioner(rec.code.key());
        }
    }

    /// Applies a record [`decode`]d from the message `at`: the table, the counters, the batch it
    /// belongs to, and the dead-letter topic if it was invalid.
    pub fn apply(&mut self, source: usize, at: &Origin<'_>, record: &Record) {
        let outcome = match record {
            Record::Practitioner(rec) => self.apply_practitioner(self.compares(source, at), at, rec).map(Some),
            Record::PractitionerGone(code) => {
                self.updater.delete_practitioner(code.key()).map(|_| None).map_err(|e| e.to_string())
            }
            Record::Institution(rec) => Ok(Some(self.apply_institution(self.compares(source, at), at, rec))),
            Record::InstitutionGone(code) => {
                self.updater.delete_institution(*code);
                Ok(None)
            }
            Record::Mapping(rec) => Ok(Some(self.updater.mapping(rec.clone()))),
            Record::MappingGone(inst, id) => {
                self.updater.delete_mapping(*inst, id);
                Ok(None)
            }
            Record::Invalid(e) => Err(e.clone()),
        };
        let outcome_index = match &outcome {
            Ok(Some(Applied::Changed)) => 0,
            Ok(Some(Applied::Unchanged)) => 1,
            Ok(None) => 2,
            Err(_) => 3,
        };
        if let Some(c) = self.counters.get(source) {
            c[outcome_index].increment(1);
        }
        if let Some((id, size)) = at.batch
            && !self.batches.abandoned.contains(id)
        {
            // Looked up before inserting: the id is copied, and the clock read, once per batch, not
            // once per record (a start-up reads millions of records of a few batches).
            match self.batches.open.get_mut(id) {
                Some(e) => e.0 += 1,
                None => {
                    self.batches.open.insert(id.to_owned(), (1, size, Instant::now()));
                }
            }
        }
        match outcome {
            Err(e) => self.invalid_record(source, at, &e),
            Ok(applied) => {
                if source == 0
                    && self.flagged_any
                    && let Some(k) = at.key
                {
                    self.clear_flag(k);
                }
                if applied != Some(Applied::Unchanged) {
                    self.dirty_since.get_or_insert_with(Instant::now);
                    if let Some(ts) = at.timestamp_ms {
                        self.oldest_pending_ms = Some(self.oldest_pending_ms.map_or(ts, |o| o.min(ts)));
                    }
                }
            }
        }
    }

    /// True when no batch is half read: every batch begun is complete, or waited for long enough.
    pub fn settled(&mut self) -> bool {
        self.batches.open.retain(|_, (seen, size, _)| seen < size);
        let Some((id, (seen, size, since))) = self.batches.open.iter().min_by_key(|(_, b)| b.2) else {
            return true;
        };
        if since.elapsed() < self.batch_wait {
            return false;
        }
        tracing::warn!(
            event = "status_batch_incomplete",
            batch = id,
            seen,
            size,
            "a status batch is still incomplete: publishing without the rest (compacted away, or lost upstream)"
        );
        let stale: Vec<String> = self
            .batches
            .open
            .iter()
            .filter(|(_, b)| b.2.elapsed() >= self.batch_wait)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.batches.open.remove(&k);
            if self.batches.abandoned.len() > 10_000 {
                self.batches.abandoned.clear();
            }
            self.batches.abandoned.insert(k);
        }
        self.batches.open.is_empty()
    }

    /// Forgets the batches begun: at the end of the start-up read, what is read is published whole.
    pub fn forget_batches(&mut self) {
        self.batches.open.clear();
    }

    fn invalid_record(&mut self, source: usize, at: &Origin<'_>, error: &str) {
        let place = format!("{}/{}@{}", at.topic, at.partition, at.offset);
        tracing::warn!(event = "status_record_invalid", source = %place, error, "status record refused: the last valid version stays");
        counter!(m::STATUS_INVALID, "topic" => at.topic.to_owned()).increment(1);
        if source == 0
            && let Some(k) = at.key
            && let Ok(mut flagged) = self.state.invalid.lock()
        {
            flagged.insert(k.to_owned(), format!("{place}: {error}"));
            self.flagged_any = true;
            gauge!(m::STATUS_INVALID_CODES).set(flagged.len() as f64);
        }
        if let Some(p) = &self.invalid.producer {
            let received = crate::io::clock::now_text();
            let mut out = Vec::with_capacity(256);
            DeadLetter::new(error, None, &place, at.payload.unwrap_or_default(), &received).write(&mut out);
            let record: BaseRecord<'_, str, [u8]> =
                BaseRecord::to(&self.invalid.topic).key(place.as_str()).payload(&out);
            if let Err((e, _)) = p.send(record) {
                tracing::warn!(event = "status_dlq_failed", error = %e, "cannot send the invalid status record to the dead-letter topic");
            }
        }
    }

    fn clear_flag(&mut self, key: &str) {
        if let Ok(mut flagged) = self.state.invalid.lock() {
            if flagged.remove(key).is_some() {
                gauge!(m::STATUS_INVALID_CODES).set(flagged.len() as f64);
            }
            self.flagged_any = !flagged.is_empty();
        }
    }

    /// Whether the record at `at` of source `source` is compared with the record it replaces.
    #[inline]
    fn compares(&self, source: usize, at: &Origin<'_>) -> bool {
        self.detect_retro
            || self
                .detect_from
                .get(source)
                .and_then(|from| from.get(usize::try_from(at.partition).ok()?))
                .is_some_and(|from| at.offset >= *from)
    }

    /// Applies a practitioner record; a change that takes effect in the past, when `compare`, is kept
    /// for the retro topic.
    fn apply_practitioner(
        &mut self,
        compare: bool,
        at: &Origin<'_>,
        rec: &PractitionerRecord,
    ) -> Result<Applied, String> {
        let old = compare.then(|| self.updater.practitioner_record(&rec.code));
        let applied = self.updater.practitioner(rec).map_err(|e| e.to_string())?;
        if let (Some(old), Applied::Changed) = (old, applied) {
            let (recorded, source) = recorded(at);
            if let Some(c) = retro::practitioner_change(old.as_ref(), rec, recorded, &source) {
                self.retro.queue(c);
            }
        }
        Ok(applied)
    }

    /// Applies an institution record, keeping a late change as [`Table::apply_practitioner`] does.
    fn apply_institution(&mut self, compare: bool, at: &Origin<'_>, rec: &InstitutionRecord) -> Applied {
        let old = compare.then(|| self.updater.institution_record(rec.code).cloned());
        let applied = self.updater.institution(rec.clone());
        if let (Some(old), Applied::Changed) = (old, applied) {
            let (recorded, source) = recorded(at);
            if let Some(c) = retro::institution_change(old.as_ref(), rec, recorded, &source) {
                self.retro.queue(c);
            }
        }
        applied
    }

    /// Publishes the tables as they stand, as one new view.
    pub fn publish(&mut self) {
        let view = self.updater.view();
        let generation = self.state.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
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
        // The late changes of this view, now that decisions use it.
        self.retro.drain();
    }
}

/// Where a status record came from, and what of its message the table needs besides its content.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp, milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The message key, trimmed, if it is text.
    pub key: Option<&'a str>,
    pub payload: Option<&'a [u8]>,
    /// The batch the record belongs to, if a claimgate writer marked it: id and announced size.
    pub batch: Option<(&'a str, usize)>,
}

/// When a record was written and by when every instance applied it; the record's place.
fn recorded(at: &Origin<'_>) -> (Recorded, String) {
    let t = at.timestamp_ms.map_or_else(|| crate::io::clock::now().0, from_unix_ms);
    let applied_by = BjTime::from_secs(t.secs() + APPLIED_WITHIN_S);
    (Recorded { at: t, applied_by }, format!("{}/{}@{}", at.topic, at.partition, at.offset))
}

/// A message's batch mark (`status_writer.rs`): id and announced size (1 if unreadable).
pub fn batch_mark<'m>(msg: &'m BorrowedMessage<'_>) -> Option<(&'m str, usize)> {
    let id = header(msg, BATCH_HEADER)?;
    Some((id, header(msg, BATCH_SIZE_HEADER).and_then(|s| s.parse().ok()).unwrap_or(1)))
}

/// What a status record says. Owned, so that records can be decoded on one thread and applied on
/// another (`Follower::catch_up`).
pub enum Record {
    Practitioner(PractitionerRecord),
    PractitionerGone(PractitionerCode),
    Institution(InstitutionRecord),
    InstitutionGone(InstitutionCode),
    Mapping(MappingRecord),
    MappingGone(InstitutionCode, String),
    /// Not JSON, not a record, a key that is not its code: why.
    Invalid(String),
}

/// Decodes a record of source `source` (0 practitioners, 1 institutions, 2 local-id mappings) from its
/// message key (trimmed) and value. Needs no table.
pub fn decode(source: usize, key: Option<&str>, payload: Option<&[u8]>) -> Record {
    match source {
        0 => practitioner(key, payload),
        1 => institution(key, payload),
        _ => mapping(key, payload),
    }
    .unwrap_or_else(Record::Invalid)
}

fn practitioner(key: Option<&str>, payload: Option<&[u8]>) -> Result<Record, String> {
    match payload {
        None => {
            let key = key.ok_or("a tombstone without a key")?;
            let code = PractitionerKey::parse(key).map_err(|e| format!("key `{key}`: {e}"))?;
            Ok(Record::PractitionerGone(code.to_owned()))
        }
        Some(bytes) => {
            let rec = PractitionerRow::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
            if let Some(k) = key
                && PractitionerKey::parse(k).ok() != Some(rec.code.key())
            {
                return Err(format!("key `{k}` is not the record's code"));
            }
            Ok(Record::Practitioner(rec))
        }
    }
}

fn institution(key: Option<&str>, payload: Option<&[u8]>) -> Result<Record, String> {
    match payload {
        None => {
            let key = key.ok_or("a tombstone without a key")?;
            let code = InstitutionCode::parse(key).map_err(|e| format!("key `{key}`: {e}"))?;
            Ok(Record::InstitutionGone(code))
        }
        Some(bytes) => {
            let rec = InstitutionText::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
            if let Some(k) = key
                && InstitutionCode::parse(k).ok() != Some(rec.code)
            {
                return Err(format!("key `{k}` is not the record's code"));
            }
            Ok(Record::Institution(rec))
        }
    }
}

/// A local-id mapping record, keyed `institution|local_id`; a tombstone deletes the mapping.
fn mapping(key: Option<&str>, payload: Option<&[u8]>) -> Result<Record, String> {
    match payload {
        None => {
            let key = key.ok_or("a tombstone without a key")?;
            let (inst, id) = key.split_once('|').ok_or_else(|| format!("key `{key}`: not `institution|local_id`"))?;
            let inst = InstitutionCode::parse(inst.trim()).map_err(|e| format!("key `{key}`: {e}"))?;
            Ok(Record::MappingGone(inst, id.trim().to_owned()))
        }
        Some(bytes) => {
            let rec = MappingText::from_json(bytes).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
            if let Some(k) = key
                && k != rec.key()
            {
                return Err(format!("key `{k}` is not the record's `institution|local_id`"));
            }
            Ok(Record::Mapping(rec))
        }
    }
}

/// The codes whose latest status record was invalid, with where and why (shared with the status query).
pub type Flagged = Mutex<BTreeMap<String, String>>;
