//! A topic between two times, for `review` (service.md: "from a Kafka topic between two times"): every
//! partition's first offset at or after each time found with `offsets_for_times`, the messages between
//! read partition by partition in offset order, those whose timestamp lies in `[from, until)` kept.
//!
//! **Late lines.** Timestamps are the producers' (unless the topic stamps records on arrival), and
//! producers' clocks disagree: a line stamped inside the window may be stored after a record stamped
//! at or after its end. A partition is therefore read on to its first record stamped `late` after the
//! end ([`plan_with`]; `review --late`), every record kept or left by its own timestamp. The start
//! needs no such margin: every record before the first one stamped at or after `from` is stamped before
//! it, by the definition of that offset.
//!
//! It must never disturb the stream: its consumer is assigned partitions directly (no subscription, so
//! it joins no consumer group) and commits nothing (`enable.auto.commit=false`, no commit call). It
//! reads committed records only, as the stream does.
//!
//! **Retention.** A window that begins before the oldest record a partition still holds, where records
//! were deleted (its log start offset is above 0), may have lost lines to retention: [`plan`] says so
//! per partition ([`Gap`]) and the caller refuses to review, or reviews what remains and says so in the
//! report — never a silent truncation.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{Context, KafkaConfig, admin};
use crate::io::clock::{from_unix_ms, to_unix_ms};
use crate::io::files::{Block, BlockInput, MessageAt, MessageBlock};
use claimgate::record::BjTime;

/// `[from, until)` in Beijing time, as given on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// First instant inside.
    pub from: BjTime,
    /// First instant outside.
    pub until: BjTime,
}

impl Window {
    /// In Kafka's milliseconds.
    pub fn ms(&self) -> (i64, i64) {
        (to_unix_ms(self.from), to_unix_ms(self.until))
    }
}

/// Where lines of the window may be missing from one partition.
#[derive(Clone, Debug)]
pub struct Gap {
    /// The partition.
    pub partition: i32,
    /// Its log start offset: every record before it was deleted.
    pub log_start: i64,
    /// The timestamp of the oldest record it still holds (`None`: it holds none).
    pub oldest: Option<BjTime>,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.oldest {
            Some(t) => write!(
                f,
                "partition {}: offsets 0-{} were deleted (retention); its oldest record is from {t}, after the window's start",
                self.partition,
                self.log_start - 1
            ),
            None => write!(
                f,
                "partition {}: every record up to offset {} was deleted (retention); it holds none",
                self.partition,
                self.log_start - 1
            ),
        }
    }
}

/// One partition's part of the window.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// The partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// First offset not to read.
    pub end: i64,
}

/// What a window covers on a topic.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The topic.
    pub topic: String,
    /// The window.
    pub window: Window,
    /// Per partition, in partition order.
    pub ranges: Vec<Range>,
    /// Partitions where lines of the window may have been deleted.
    pub gaps: Vec<Gap>,
    /// How far past the window's end, in milliseconds, each partition is read for lines stored late.
    pub late_ms: i64,
}

impl Plan {
    /// The ranges as segments keeping the record times `[from, until)` (milliseconds).
    pub fn segments(&self, keep: (i64, i64)) -> impl Iterator<Item = Segment> + '_ {
        self.ranges.iter().map(move |r| Segment {
            partition: r.partition,
            start: r.start,
            end: r.end,
            keep: vec![keep],
        })
    }

    /// Offsets to read over every partition (an upper bound of the lines).
    pub fn offsets(&self) -> i64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// One sentence for reports.
    pub fn describe(&self) -> String {
        let late = if self.late_ms > 0 {
            format!(", read on to {} s past the end for lines stored late", self.late_ms / 1000)
        } else {
            String::new()
        };
        format!(
            "topic `{}`, lines with timestamps from {} until {} ({} partitions, {} offsets read{late})",
            self.topic,
            self.window.from,
            self.window.until,
            self.ranges.len(),
            self.offsets()
        )
    }
}

/// A consumer that joins no group and commits nothing: partitions are assigned to it directly.
pub fn reader(kafka: &KafkaConfig, client: &'static str) -> Result<BaseConsumer<Context>> {
    kafka
        // librdkafka wants a group id even for direct assignment; nothing is committed under it.
        .bulk_reader(
            "claimgate-review-reader",
            &[("enable.auto.offset.store", "false"), ("fetch.wait.max.ms", "100"), ("fetch.max.bytes", "52428800")],
        )
        .create_with_context(Context { client })
        .context("cannot create a Kafka reader")
}

/// The watermarks of a partition, asking again for a while (a topic created a moment ago may have no
/// leader yet).
pub fn watermarks(consumer: &BaseConsumer<Context>, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let started = Instant::now();
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(w) => return Ok(w),
            Err(e) if started.elapsed() >= Duration::from_secs(30) => {
                return Err(anyhow::Error::new(e).context(format!("cannot read the offsets of {topic}/{partition}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The first offset of each partition whose timestamp is at or after `ms`; the high watermark where
/// no record is that recent.
pub fn offsets_at(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    parts: &[i32],
    ms: i64,
    high: &HashMap<i32, i64>,
) -> Result<HashMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, *p, Offset::Offset(ms.max(0)))?;
    }
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(30))
        .with_context(|| format!("cannot find the offsets of {topic} by time"))?;
    let mut out = HashMap::new();
    for e in found.elements() {
        let end = high.get(&e.partition()).copied().unwrap_or(0);
        let at = match e.offset() {
            Offset::Offset(o) => o.min(end),
            _ => end,
        };
        out.insert(e.partition(), at);
    }
    Ok(out)
}

/// Reads the timestamp of the record at `offset` (the oldest one a partition holds).
fn timestamp_at(consumer: &BaseConsumer<Context>, topic: &str, partition: i32, offset: i64) -> Result<Option<BjTime>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => return Ok(m.timestamp().to_millis().map(from_unix_ms)),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(e)) => tracing::warn!(event = "review_read_error", topic, error = %e, "retrying"),
            None => {}
        }
    }
    bail!("cannot read {topic}/{partition}@{offset} within 30 s")
}

/// Finds each partition's offsets for the window, and where retention may have cut it; each partition
/// read to its first record stamped at or after the window's end.
pub fn plan(kafka: &KafkaConfig, topic: &str, window: Window) -> Result<Plan> {
    plan_with(kafka, topic, window, Duration::ZERO)
}

/// As [`plan`], each partition read on to its first record stamped `late` after the window's end, for
/// lines stamped inside the window but stored after later-stamped ones (producers' clocks disagree).
pub fn plan_with(kafka: &KafkaConfig, topic: &str, window: Window, late: Duration) -> Result<Plan> {
    if window.until <= window.from {
        bail!("--until ({}) must be after --from ({})", window.until, window.from);
    }
    let consumer = reader(kafka, "review")?;
    let parts = admin::partitions(&consumer, topic, Duration::from_secs(30))?;
    let mut low = HashMap::new();
    let mut high = HashMap::new();
    for p in &parts {
        let (l, h) = watermarks(&consumer, topic, *p)?;
        low.insert(*p, l);
        high.insert(*p, h);
    }
    let (from_ms, until_ms) = window.ms();
    let starts = offsets_at(&consumer, topic, &parts, from_ms, &high)?;
    let late_ms = i64::try_from(late.as_millis()).unwrap_or(i64::MAX);
    let ends = offsets_at(&consumer, topic, &parts, until_ms.saturating_add(late_ms), &high)?;
    let mut ranges = Vec::new();
    let mut gaps = Vec::new();
    for p in &parts {
        let (start, end, log_start) = (starts[p], ends[p], low[p]);
        ranges.push(Range { partition: *p, start, end: end.max(start) });
        // Records were deleted, and the first one the window would read is the oldest one left: lines
        // of the window may have gone with the deleted ones (timestamps only grow along a partition).
        if log_start > 0 && start <= log_start {
            let oldest = if log_start < high[p] { timestamp_at(&consumer, topic, *p, log_start)? } else { None };
            if oldest.is_none_or(|t| t > window.from) {
                gaps.push(Gap { partition: *p, log_start, oldest });
            }
        }
    }
    Ok(Plan { topic: topic.to_owned(), window, ranges, gaps, late_ms })
}

/// Counts of a read, shared with the caller's progress and report.
#[derive(Debug, Default)]
pub struct ReadCounts {
    /// Messages kept (timestamp in the window).
    pub kept: AtomicU64,
    /// Messages read but outside the window by timestamp.
    pub outside: AtomicU64,
    /// Payload bytes kept.
    pub bytes: AtomicU64,
}

/// Offsets of one partition to read, and the record times to keep among them: a planned window's
/// range, or (`review --retro` with a code index) a run of indexed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// First offset not to read.
    pub end: i64,
    /// A message is kept when its timestamp lies in one of these `[from, until)` (milliseconds).
    pub keep: Vec<(i64, i64)>,
}

/// Reads a planned window as blocks of about `block` bytes of messages, partition by partition.
pub fn blocks(kafka: &KafkaConfig, plan: Plan, block: usize) -> Result<(BlockInput, Arc<ReadCounts>)> {
    segment_blocks(kafka, &plan.topic, plan.segments(plan.window.ms()).collect(), block)
}

/// Reads `segments` of `topic` in the order given, as blocks of about `block` bytes of messages.
pub fn segment_blocks(
    kafka: &KafkaConfig,
    topic: &str,
    segments: Vec<Segment>,
    block: usize,
) -> Result<(BlockInput, Arc<ReadCounts>)> {
    let consumer = reader(kafka, "review")?;
    let counts = Arc::new(ReadCounts::default());
    let read = Arc::new(AtomicU64::new(0));
    let iter = TopicBlocks {
        consumer,
        segments: segments.into_iter().filter(|s| s.end > s.start).collect(),
        next_segment: 0,
        topic: topic.to_owned(),
        current: None,
        block,
        counts: Arc::clone(&counts),
        read: Arc::clone(&read),
        done: false,
    };
    Ok((BlockInput { blocks: Box::new(iter), size: None, read, name: topic.to_owned() }, counts))
}

struct TopicBlocks {
    consumer: BaseConsumer<Context>,
    /// What to read, in order.
    segments: Vec<Segment>,
    /// The next segment to start.
    next_segment: usize,
    topic: String,
    /// The segment being read (its index) and the next offset expected.
    current: Option<(usize, i64)>,
    block: usize,
    counts: Arc<ReadCounts>,
    read: Arc<AtomicU64>,
    done: bool,
}

impl TopicBlocks {
    /// Starts the next partition; false when none is left.
    fn next_partition(&mut self) -> io::Result<bool> {
        let Some(s) = self.segments.get(self.next_segment) else { return Ok(false) };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, s.partition, Offset::Offset(s.start)).map_err(io::Error::other)?;
        self.consumer.assign(&tpl).map_err(io::Error::other)?;
        self.current = Some((self.next_segment, s.start));
        self.next_segment += 1;
        Ok(true)
    }

    fn keep(&self, segment: usize, msg: &BorrowedMessage<'_>, out: &mut MessageBlock) {
        let ts = msg.timestamp().to_millis().unwrap_or(i64::MIN);
        if !self.segments[segment].keep.iter().any(|&(from, until)| from <= ts && ts < until) {
            self.counts.outside.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let payload = msg.payload();
        let at = out.data.len() as u32;
        if let Some(p) = payload {
            out.data.extend_from_slice(p);
        }
        let len = payload.map_or(0, <[u8]>::len) as u32;
        out.messages.push(MessageAt {
            at,
            len,
            null: payload.is_none(),
            partition: msg.partition(),
            offset: msg.offset(),
        });
        self.counts.kept.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(u64::from(len), Ordering::Relaxed);
        self.read.fetch_add(u64::from(len), Ordering::Relaxed);
    }

    fn fill(&mut self) -> io::Result<Option<MessageBlock>> {
        let mut out = MessageBlock::default();
        let mut idle_since: Option<Instant> = None;
        while out.data.len() < self.block {
            let Some((segment, next)) = self.current else {
                if !self.next_partition()? {
                    break;
                }
                continue;
            };
            let range = &self.segments[segment];
            let (partition, end) = (range.partition, range.end);
            if next >= end {
                self.current = None;
                continue;
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    idle_since = None;
                    if m.partition() != partition || m.offset() < next {
                        continue;
                    }
                    if m.offset() < end {
                        self.keep(segment, &m, &mut out);
                    }
                    self.current = Some((segment, m.offset() + 1));
                }
                // The end of what the partition holds (transaction markers take offsets no record is
                // delivered for): the range is done. (An end reported for the partition of an earlier
                // segment is outdated: librdkafka drops what a previous assignment fetched.)
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => self.current = None,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(event = "review_read_error", topic = self.topic, error = %e, "retrying");
                }
                None => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(120) {
                        return Err(io::Error::other(format!(
                            "{}/{}: nothing read for 120 s at offset {next} (end {end})",
                            self.topic, partition
                        )));
                    }
                }
            }
        }
        Ok((!out.messages.is_empty()).then_some(out))
    }
}

impl Iterator for TopicBlocks {
    type Item = io::Result<Block>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.fill() {
            Ok(Some(b)) => Some(Ok(Block::Messages(b))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
