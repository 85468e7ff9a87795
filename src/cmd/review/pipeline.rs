//! The review's threads: a reader, one worker per core, and the writer (the calling thread).
//!
//! No single thread is the ceiling (issue 15): the reader only reads — a `.zst` input of line-aligned
//! frames (what claimgate writes, see `io::frames`) goes to the workers still compressed, and each
//! worker decompresses its own frames; other inputs are decompressed by the reader and cut at line
//! ends. Each worker parses, decides and encodes its block (lookups prefetched a group at a time,
//! `batch::process_each`), counts the block into its own report tallies (merged once at the end:
//! no lock and no shared map per line), and compresses its block of decisions into a frame of its
//! own when the output is `.zst`. The writer only puts blocks back in input order and writes them,
//! and renders the rare dead letters (it alone knows each block's first line number).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::previous::{JoinBuffer, Previous};
use super::report::Stats;
use super::retro::Selector;
use crate::io::claim_index::Builder;
use crate::io::clock;
use crate::io::files::{self, Block, MessageAt, Output};
use crate::io::frames::{FrameCompressor, FrameDecompressor};
use claimgate::batch::{Decided, process_each};
use claimgate::record::{Claim, DeadLetter, Malformed, Stamp};
use claimgate::routing::Rules;
use claimgate::table::View;

/// Blocks of about this many bytes of claim lines go to a worker at a time.
pub const BLOCK: usize = 1 << 20;

/// Block buffers going round: a worker takes one for a block's text and one for its decisions, the
/// writer gives the decisions back once written, the worker the text once decided. Each buffer is a
/// mebibyte or two, beyond what `malloc` keeps for reuse: allocated afresh per block, every one was
/// memory the kernel had to map, zero (2 MiB huge pages) and unmap again: 27% of a review's CPU in a
/// profile (`perf record`, 10 M lines on 2 workers, BENCHMARKS.md), now a few dozen buffers per run.
/// Holds at most `limit` buffers: blocks the reader allocated (plain text) are given too, and beyond
/// the limit they are freed.
struct Buffers {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    limit: usize,
}

impl Buffers {
    fn new(limit: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Buffers { tx, rx, limit }
    }

    /// An empty buffer of at least `capacity` bytes, a given one if there is one.
    fn take(&self, capacity: usize) -> Vec<u8> {
        match self.rx.try_recv() {
            Ok(mut v) => {
                v.clear();
                v.reserve(capacity);
                v
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Gives a buffer back for another block.
    fn give(&self, v: Vec<u8>) {
        if v.capacity() > 0 && self.rx.len() < self.limit {
            let _ = self.tx.send(v);
        }
    }
}

struct Job {
    seq: u64,
    file: usize,
    block: Block,
}

/// A line that went to the dead letters, rendered by the writer once the block's first line number
/// is known.
struct Pending {
    /// Line within the block, from 0.
    line: u64,
    /// The line's bytes within the block.
    at: std::ops::Range<usize>,
    message: String,
    field: Option<&'static str>,
}

struct Done {
    seq: u64,
    file: usize,
    /// Lines in the block (blank ones included), for the next block's first line number.
    lines: u64,
    /// Decision records, one per line, or their zstd frame when the output takes frames.
    decisions: Vec<u8>,
    /// The block's text, kept only when a line of it went to the dead letters.
    text: Vec<u8>,
    dead: Vec<Pending>,
    /// Kafka messages: where each came from, kept only when one went to the dead letters (their
    /// `source` is `topic/partition@offset`, as in the stream).
    messages: Option<Vec<MessageAt>>,
    decided_at: String,
}

/// What every worker shares.
pub struct Shared {
    /// The tables.
    pub view: Arc<View>,
    /// The rules: one profile, or a routing table.
    pub rules: Arc<Rules>,
    /// The inline decisions to compare with.
    pub previous: Option<Arc<Previous>>,
    /// A late-change review (`--retro`): only the lines a change chooses are decided, each with the
    /// change that chose it.
    pub selector: Option<Arc<Selector>>,
    /// Compress decisions into zstd frames (the output is `.zst`).
    pub frames: bool,
    /// List each Kafka line by its codes, for the claim index (`--index-dir`).
    pub index: bool,
}

/// Where the writer sends what it writes.
pub struct Sinks<'a> {
    /// Decisions.
    pub out: Option<&'a mut Output>,
    /// Dead letters: created on the first one.
    pub dead_path: PathBuf,
    /// Moves the progress bar.
    pub progress: &'a dyn Fn(),
}

/// What a run produced.
pub struct Outcome {
    /// The report's tallies.
    pub stats: Stats,
    /// The dead-letter output, if a line was malformed.
    pub dead_out: Option<Output>,
    /// The lines by code, when [`Shared::index`].
    pub index: Option<Builder>,
}

/// What a worker keeps from block to block.
struct Worker {
    stats: Stats,
    index: Option<Builder>,
    join: JoinBuffer,
    /// Compresses decisions into frames, when the output takes them.
    compressor: Option<FrameCompressor>,
    /// Decompresses input frames.
    decompressor: Option<FrameDecompressor>,
    /// A block's decisions before compression, when the output takes frames.
    plain: Vec<u8>,
}

fn work(job: Job, shared: &Shared, w: &mut Worker, buffers: &Buffers) -> io::Result<Done> {
    let Worker { stats, index, join, compressor, decompressor, plain } = w;
    let (text, messages) = match job.block {
        Block::Plain(v) => (v, None),
        Block::Zstd(frame) => {
            let d = match decompressor {
                Some(d) => d,
                None => decompressor.insert(FrameDecompressor::new()?),
            };
            let mut out = buffers.take(BLOCK + BLOCK / 2);
            d.decompress(&frame, &mut out)?;
            (out, None)
        }
        Block::Messages(m) => (m.data, Some(m.messages)),
    };
    let decided_at = clock::now_text();
    let (view, rules) = (&*shared.view, &*shared.rules);
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: &decided_at };
    // Decisions run about 1.3 times the size of the claim lines: reserve once. Compressed, they go to
    // the writer in a buffer of their own.
    let mut decisions = match compressor {
        Some(_) => {
            plain.clear();
            plain.reserve(text.len() * 3 / 2);
            std::mem::take(plain)
        }
        None => buffers.take(text.len() * 3 / 2),
    };
    let mut dead = Vec::new();
    let base = text.as_ptr() as usize;
    let previous = shared.previous.as_deref();
    // A late-change review: the lines chosen, each with the change that chose it. A line is parsed
    // only if its bytes hold a changed code.
    let mut causes: rustc_hash::FxHashMap<u64, u32> = rustc_hash::FxHashMap::default();
    let chosen: Option<Vec<(u64, &[u8])>> = match (&messages, shared.selector.as_deref()) {
        (Some(msgs), Some(sel)) => Some(
            msgs.iter()
                .enumerate()
                .filter(|(_, m)| !m.null)
                .filter_map(|(i, m)| {
                    let payload = &text[m.at as usize..(m.at + m.len) as usize];
                    if !sel.may_name(payload) {
                        return None;
                    }
                    causes.insert(i as u64, sel.select(&Claim::parse(payload).ok()?)?);
                    Some((i as u64, payload))
                })
                .collect(),
        ),
        _ => None,
    };
    let causes = &causes;
    // The claim index (a nightly read from Kafka): every line that parses, by its codes — a line that
    // fails a later check is listed too, as a late-change review would choose it by its codes.
    let mut listing = match (&messages, shared.selector.is_none()) {
        (Some(m), true) => index.as_mut().map(|i| (m.as_slice(), i)),
        _ => None,
    };
    let mut list = |line: u64, claim: Option<&Claim<'_>>, bytes: &[u8]| {
        if let Some((msgs, index)) = &mut listing {
            let m = &msgs[line as usize];
            match claim {
                Some(c) => index.line(c, m.partition, m.offset),
                None => {
                    if let Ok(c) = Claim::parse(bytes) {
                        index.line(&c, m.partition, m.offset);
                    }
                }
            }
        }
    };
    let each = |line: u64, bytes: &[u8], result: Result<Decided<'_, '_>, Malformed>, out: &mut Vec<u8>| {
        // Where the line lies in the block's text.
        let start = bytes.as_ptr() as usize - base;
        let at = start..start + bytes.len();
        match result {
            Ok(d) => {
                list(line, Some(&d.claim), bytes);
                out.push(b'\n');
                stats.decided(&d.claim, &d.outcome);
                if let Some(prev) = previous {
                    prev.compare(&d.claim, &d.outcome, (job.seq, line), causes.get(&line).copied(), at, join);
                }
            }
            Err(m) => {
                list(line, None, bytes);
                dead.push(Pending { line, at, message: m.message, field: m.field });
                stats.dead(m.field);
            }
        }
    };
    let lines = match (&messages, chosen) {
        // A late-change review decides the chosen lines only; the others were decided inline and are
        // not its business (nor are their dead letters).
        (Some(msgs), Some(chosen)) => {
            process_each(chosen, view, rules, &stamp, &mut decisions, each);
            msgs.len() as u64
        }
        (None, _) => {
            process_each(files::numbered_lines(&text, 0), view, rules, &stamp, &mut decisions, each);
            files::line_count(&text)
        }
        (Some(msgs), None) => {
            // Each message is one line whatever it holds, and a null value is a dead letter, as in
            // the stream.
            let mut each = each;
            let mut nulls = Vec::new();
            let payloads = msgs.iter().enumerate().filter_map(|(i, m)| {
                if m.null {
                    nulls.push(i as u64);
                    return None;
                }
                Some((i as u64, &text[m.at as usize..(m.at + m.len) as usize]))
            });
            process_each(payloads, view, rules, &stamp, &mut decisions, &mut each);
            for i in nulls {
                let at = msgs[i as usize].at as usize;
                each(
                    i,
                    &text[at..at],
                    Err(Malformed { field: None, message: "empty message (null value)".into() }),
                    &mut Vec::new(),
                );
            }
            msgs.len() as u64
        }
    };
    if let Some(prev) = previous {
        prev.settle(join, &text, stats)?;
    }
    if let Some(c) = compressor {
        let mut frame = buffers.take(decisions.len() / 8);
        c.compress(&decisions, &mut frame)?;
        *plain = std::mem::replace(&mut decisions, frame);
    }
    let (text, messages) = if dead.is_empty() {
        buffers.give(text);
        (Vec::new(), None)
    } else {
        (text, messages)
    };
    Ok(Done { seq: job.seq, file: job.file, lines, decisions, text, dead, messages, decided_at })
}

/// Reads, decides and writes every input; returns the tallies.
pub fn run(inputs: Vec<files::BlockInput>, threads: usize, shared: Shared, sinks: Sinks<'_>) -> Result<Outcome> {
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let shared = Arc::new(shared);
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(threads * 2);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<Done, (usize, io::Error)>>(threads * 2);
    // Two buffers a block, for the blocks queued, decided and waiting to be written in order.
    let buffers = Arc::new(Buffers::new(threads * 8 + 8));

    let reader = {
        let done_tx = done_tx.clone();
        std::thread::spawn(move || read(inputs, &job_tx, &done_tx))
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (rx, tx, shared, buffers) =
                (job_rx.clone(), done_tx.clone(), Arc::clone(&shared), Arc::clone(&buffers));
            std::thread::spawn(move || worker(&rx, &tx, &shared, &buffers))
        })
        .collect();
    drop(done_tx);
    drop(job_rx);

    let written = write(&done_rx, &names, sinks, &buffers);
    drop(done_rx);
    let _ = reader.join();
    let mut stats = Stats::default();
    let mut index: Option<Builder> = None;
    let mut join_error = None;
    for w in workers {
        // A worker that panicked lost its tallies: the run must not report short counts as complete.
        let (worker_stats, worker_index, error) = w.join().map_err(|_| anyhow::anyhow!("a review worker failed"))?;
        stats.merge(worker_stats);
        join_error = join_error.or(error);
        match (&mut index, worker_index) {
            (Some(i), Some(w)) => i.merge(w),
            (None, w) => index = w,
            (Some(_), None) => {}
        }
    }
    let dead_out = written?;
    if let Some(e) = join_error {
        return Err(anyhow::Error::new(e).context("cannot write the join's partition files (--spill-dir)"));
    }
    if let Some(prev) = shared.previous.as_deref() {
        prev.join_spilled(&mut stats)?;
    }
    stats.changed.sort_by_key(|c| c.order);
    Ok(Outcome { stats, dead_out, index })
}

fn read(inputs: Vec<files::BlockInput>, jobs: &Sender<Job>, done: &Sender<Result<Done, (usize, io::Error)>>) {
    let mut seq = 0;
    for (file, input) in inputs.into_iter().enumerate() {
        for block in input.blocks {
            match block {
                Ok(block) => {
                    if jobs.send(Job { seq, file, block }).is_err() {
                        return;
                    }
                    seq += 1;
                }
                Err(e) => {
                    let _ = done.send(Err((file, e)));
                    return;
                }
            }
        }
    }
}

/// A worker: its tallies, its claim index, and the first error writing its join records (a spilled
/// `--previous` join), which fails the run once the workers are done.
fn worker(
    jobs: &Receiver<Job>,
    done: &Sender<Result<Done, (usize, io::Error)>>,
    shared: &Shared,
    buffers: &Buffers,
) -> (Stats, Option<Builder>, Option<io::Error>) {
    let mut w = Worker {
        stats: Stats::default(),
        index: shared.index.then(Builder::default),
        join: JoinBuffer::default(),
        compressor: None,
        decompressor: None,
        plain: Vec::new(),
    };
    let mut join_error = None;
    if shared.frames {
        match FrameCompressor::new() {
            Ok(c) => w.compressor = Some(c),
            Err(e) => {
                let _ = done.send(Err((0, e)));
                return (w.stats, w.index, None);
            }
        }
    }
    let mut keep = |join: &mut JoinBuffer, at_least: usize| {
        if let Some(prev) = shared.previous.as_deref() {
            match join_error {
                None => join_error = prev.keep(join, at_least).err(),
                Some(_) => join.discard(),
            }
        }
    };
    for job in jobs {
        let file = job.file;
        let result = work(job, shared, &mut w, buffers).map_err(|e| (file, e));
        keep(&mut w.join, 1 << 20);
        if done.send(result).is_err() {
            break;
        }
    }
    keep(&mut w.join, 0);
    (w.stats, w.index, join_error)
}

/// The writer: blocks back in input order, decisions and dead letters out.
fn write(
    done: &Receiver<Result<Done, (usize, io::Error)>>,
    names: &[String],
    mut sinks: Sinks<'_>,
    buffers: &Buffers,
) -> Result<Option<Output>> {
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut first_line = vec![1u64; names.len()];
    let mut dead_out: Option<Output> = None;
    let mut rendered = Vec::new();
    for msg in done {
        let block = match msg {
            Ok(d) => d,
            Err((file, e)) => {
                let name = names.get(file).map_or("input", String::as_str);
                return Err(anyhow::Error::new(e).context(format!("cannot read {name}")));
            }
        };
        pending.insert(block.seq, block);
        while let Some(block) = pending.remove(&next) {
            if let Some(o) = sinks.out.as_deref_mut() {
                if o.takes_frames() {
                    o.write_frame(&block.decisions).context("cannot write decisions")?;
                } else {
                    o.write_all(&block.decisions).context("cannot write decisions")?;
                }
            }
            if !block.dead.is_empty() {
                rendered.clear();
                for p in &block.dead {
                    let source = match &block.messages {
                        Some(m) => format!(
                            "{}/{}@{}",
                            names[block.file], m[p.line as usize].partition, m[p.line as usize].offset
                        ),
                        None => format!("{}:{}", names[block.file], first_line[block.file] + p.line),
                    };
                    let raw = &block.text[p.at.clone()];
                    DeadLetter::new(&p.message, p.field, &source, raw, &block.decided_at).write(&mut rendered);
                    rendered.push(b'\n');
                }
                if dead_out.is_none() {
                    dead_out = Some(Output::create(&sinks.dead_path)?);
                }
                if let Some(d) = &mut dead_out {
                    d.write_all(&rendered).context("cannot write dead letters")?;
                }
            }
            first_line[block.file] += block.lines;
            next += 1;
            buffers.give(block.decisions);
            buffers.give(block.text);
            (sinks.progress)();
        }
    }
    Ok(dead_out)
}

/// Bytes read from disk so far, over every input (for the progress bar).
pub fn bytes_read(counters: &[Arc<AtomicU64>]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}
