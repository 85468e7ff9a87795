//! Status records read a chunk at a time, and the start-up read's second thread.
//!
//! A [`Chunk`] holds up to a few thousand records of one source, copied out of the consumer's messages
//! (key, value, partition, offset, timestamp, batch mark), and their decoded form once decoded. The
//! follower applies a chunk's records in order, each one's table slot requested a few records ahead
//! ([`apply`]): at 12 million codes a record's slot is a memory miss, and requested ahead the misses
//! overlap instead of queueing one behind the other.
//!
//! At start-up, decoding (JSON parsing and validation, half of a record's cost) runs on a thread of its
//! own, the [`Decoder`], while the follower polls the next chunk and applies the previous one: a cold
//! start of 12 million codes then uses two cores instead of one. Chunks go back and forth, so the
//! decoder also frees what it allocated (no allocation crosses threads), and at most [`IN_FLIGHT`]
//! exist. Following, after start-up, a chunk is decoded on the follower's own thread: the traffic is
//! small and the order of records and publishes stays simple.

use std::ops::Range;
use std::time::Duration;

use anyhow::{Result, anyhow};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use super::source::Source;
use super::table::{self, Origin, Record, Table};

/// Records in one chunk at most.
pub const SIZE: usize = 1024;
/// Chunks in existence at most (being filled, decoded, applied or recycled).
const IN_FLIGHT: usize = 4;
/// How many records ahead of the one applied its slot is requested.
const AHEAD: usize = 8;

/// Records of one source, copied out of their messages.
#[derive(Default)]
pub struct Chunk {
    source: usize,
    topic: String,
    /// Keys, values and batch ids, back to back.
    bytes: Vec<u8>,
    items: Vec<Item>,
}

struct Item {
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<Range<usize>>,
    payload: Option<Range<usize>>,
    batch: Option<(Range<usize>, usize)>,
    record: Option<Record>,
}

impl Chunk {
    /// Records held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    fn copy(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn push(&mut self, msg: &BorrowedMessage<'_>) {
        let key = msg.key().map(|k| self.copy(k));
        let payload = msg.payload().map(|p| self.copy(p));
        let batch = table::batch_mark(msg).map(|(id, size)| (self.copy(id.as_bytes()), size));
        self.items.push(Item {
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key,
            payload,
            batch,
            record: None,
        });
    }

    fn key(&self, item: &Item) -> Option<&str> {
        item.key.clone().and_then(|r| std::str::from_utf8(&self.bytes[r]).ok()).map(str::trim)
    }

    fn origin(&self, item: &Item) -> Origin<'_> {
        Origin {
            topic: &self.topic,
            partition: item.partition,
            offset: item.offset,
            timestamp_ms: item.timestamp_ms,
            key: self.key(item),
            payload: item.payload.clone().map(|r| &self.bytes[r]),
            // The id was copied from a header read as UTF-8.
            batch: item.batch.clone().and_then(|(r, size)| Some((std::str::from_utf8(&self.bytes[r]).ok()?, size))),
        }
    }

    /// Decodes every record (on whichever thread holds the chunk).
    pub fn decode(&mut self) {
        let mut items = std::mem::take(&mut self.items);
        for item in &mut items {
            let payload = item.payload.clone().map(|r| &self.bytes[r]);
            item.record = Some(table::decode(self.source, self.key(item), payload));
        }
        self.items = items;
    }
}

/// Polls `src` (source number `source`) into `chunk` until its queue is empty — the first poll waiting
/// up to `wait` — or the chunk holds `max` records, noting each partition's position and end.
pub fn fill(src: &mut Source, source: usize, chunk: &mut Chunk, mut wait: Duration, max: usize) {
    chunk.clear();
    chunk.source = source;
    if chunk.topic != src.topic {
        chunk.topic.clone_from(&src.topic);
    }
    while chunk.len() < max {
        match src.consumer.poll(wait) {
            Some(Ok(msg)) => {
                src.positions.insert(msg.partition(), msg.offset() + 1);
                src.at_eof.remove(&msg.partition());
                chunk.push(&msg);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                src.at_eof.insert(p);
            }
            // A consumer error here is transient (e.g. `AllBrokersDown` while the broker cannot be
            // reached): librdkafka reconnects and the fetch resumes.
            Some(Err(e)) => {
                tracing::warn!(event = "status_read_error", topic = src.topic, error = %e, "cannot read the status topic; retrying");
                break;
            }
            None => break,
        }
        wait = Duration::ZERO;
    }
}

/// Applies a decoded chunk's records in order, each one's slot requested [`AHEAD`] records before.
pub fn apply(table: &mut Table, chunk: &Chunk) {
    let record = |j: usize| chunk.items.get(j).and_then(|i| i.record.as_ref());
    for r in (0..AHEAD).filter_map(record) {
        table.prefetch(r);
    }
    for (j, item) in chunk.items.iter().enumerate() {
        if let Some(next) = record(j + AHEAD) {
            table.prefetch(next);
        }
        let origin = chunk.origin(item);
        match &item.record {
            Some(r) => table.apply(chunk.source, &origin, r),
            // Every chunk is decoded before it is applied; were one not, its records are decoded here
            // rather than skipped.
            None => table.apply(chunk.source, &origin, &table::decode(chunk.source, origin.key, origin.payload)),
        }
    }
}

enum Job {
    Decode(Chunk),
    /// Applied: to be cleared (its records freed where they were allocated) and reused.
    Spent(Chunk),
}

/// The start-up read's decoding thread, and the chunks passing through it in order.
pub struct Decoder {
    jobs: Option<Sender<Job>>,
    decoded: Receiver<Chunk>,
    empty: Receiver<Chunk>,
    thread: Option<std::thread::JoinHandle<()>>,
    made: usize,
    in_flight: usize,
}

impl Decoder {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Decoder> {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (decoded_tx, decoded) = crossbeam_channel::unbounded();
        let (empty_tx, empty) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("status-decoder".into()).spawn(move || {
            for job in job_rx {
                match job {
                    Job::Decode(mut c) => {
                        c.decode();
                        if decoded_tx.send(c).is_err() {
                            return;
                        }
                    }
                    Job::Spent(mut c) => {
                        c.clear();
                        let _ = empty_tx.send(c);
                    }
                }
            }
        })?;
        Ok(Decoder { jobs: Some(jobs), decoded, empty, thread: Some(thread), made: 0, in_flight: 0 })
    }

    /// A chunk to fill: a recycled one, a new one while fewer than [`IN_FLIGHT`] exist, or else the
    /// oldest chunk in flight once it is decoded and applied to `table`.
    pub fn empty_chunk(&mut self, table: &mut Table) -> Result<Chunk> {
        loop {
            if let Ok(c) = self.empty.try_recv() {
                return Ok(c);
            }
            if self.made < IN_FLIGHT {
                self.made += 1;
                return Ok(Chunk::default());
            }
            if self.in_flight == 0 {
                // Every chunk is on its way back from being cleared.
                return self.empty.recv().map_err(|_| anyhow!("the status decoder stopped"));
            }
            self.apply_oldest(table)?;
        }
    }

    /// Sends a filled chunk to be decoded (an empty one is simply recycled).
    pub fn send(&mut self, chunk: Chunk) {
        let Some(jobs) = &self.jobs else { return };
        if chunk.len() == 0 {
            let _ = jobs.send(Job::Spent(chunk));
        } else if jobs.send(Job::Decode(chunk)).is_ok() {
            self.in_flight += 1;
        }
    }

    /// Applies every chunk sent, in order, once decoded.
    pub fn finish(&mut self, table: &mut Table) -> Result<()> {
        while self.in_flight > 0 {
            self.apply_oldest(table)?;
        }
        Ok(())
    }

    /// An error only if the thread ended, which a bug alone can cause: the records it held were read
    /// and not applied, so the table cannot be published (the follower stops, and says why).
    fn apply_oldest(&mut self, table: &mut Table) -> Result<()> {
        let c = self.decoded.recv().map_err(|_| anyhow!("the status decoder stopped"))?;
        self.in_flight -= 1;
        apply(table, &c);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Spent(c));
        }
        Ok(())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
