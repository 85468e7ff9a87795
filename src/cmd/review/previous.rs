//! The inline decisions to compare against (`--previous`): line identity → reason.
//!
//! Held as one 64-bit word per line in an open-addressing table: the identity's 60-bit hash and the
//! reason in the low four bits (8 bytes a slot, ~11 bytes a line at the table's load; the map it
//! replaces took ~36). Read with claimgate's own JSON scanner on every core (serde_json's typed
//! reading was most of the 3.5× that `--previous` cost a review, issue 15).
//!
//! **Memory is bounded whatever the inputs' size** (`--previous-memory`, issue 15). While the inline
//! decisions fit the budget they are joined in memory, as each line is decided. Past it, they go to
//! [`PARTS`] partition files by the identity's top bits (8 bytes a decision, in `--spill-dir`), the
//! review writes each decided line's join record (identity, reason, and what the report lists of a
//! changed line: 64 bytes and three texts) to the same partitions, and after the review each partition is
//! joined alone: its table is 1/[`PARTS`] of the whole, and as many partitions are joined at once as
//! the budget holds (one a core at most, one at least). The report is the same either way (a test
//! checks it); the spilled join costs a write and a read of the join records, and the files are
//! removed at the end (they hold identities and practitioner codes: personal data, in a directory
//! only the user can read).

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;

use super::indexed;
use super::report::{Changed, Stats};
use crate::io::claim_index::{self, Builder};
use crate::io::clock::from_unix_ms;
use crate::io::files::{self, Block, BlockInput, MessageAt};
use crate::io::frames::FrameDecompressor;
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::{self, Window};
use claimgate::record::json::{Value, scan_object, unescape};
use claimgate::record::{Amount, BjTime, Claim, InstitutionCode, Outcome, Reason, Role};
use claimgate::table::{hint_huge_pages, prefetch};

/// A line's identity (records.md): institution, visit, serial — hashed with a fixed-key SipHash, so
/// the same identity hashes alike in every run.
pub fn identity(fixmedins_code: &str, mdtrt_id: &str, feedetl_sn: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (fixmedins_code, mdtrt_id, feedetl_sn).hash(&mut h);
    h.finish()
}

const REASON_BITS: u64 = 0xF;

/// How much memory the inline decisions may take (`--previous-memory`), and where they go past it
/// (`--spill-dir`; the system's temporary directory when `None`).
#[derive(Clone, Debug)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// The directory of the partition files.
    pub dir: Option<PathBuf>,
}

impl Budget {
    /// No limit: every decision in memory.
    #[cfg(test)]
    pub fn unlimited() -> Budget {
        Budget { bytes: u64::MAX, dir: None }
    }

    /// Decisions held in memory at most: each takes its packed word while the decisions are read and
    /// up to ~21 bytes of the table built from them (a power-of-two table at most 3/4 full): 32
    /// bytes a decision, rounded up.
    fn decisions(&self) -> u64 {
        (self.bytes / 32).max(1)
    }
}

/// The partitions of a spilled join, by the identity's top six bits.
pub const PARTS: usize = 64;

fn part_of(id: u64) -> usize {
    (id >> 58) as usize
}

/// The previous decisions.
pub struct Previous {
    table: Table,
    /// Decisions read.
    pub lines: u64,
    /// The file's name.
    pub name: String,
}

enum Table {
    /// `identity & !0xF | reason index + 1`; 0 marks an empty slot.
    Memory(Vec<u64>),
    /// Past the budget: joined partition by partition after the review.
    Spilled(Spill),
}

fn pack(id: u64, reason: Reason) -> u64 {
    (id & !REASON_BITS) | (reason.index() as u64 + 1)
}

/// The home slot of an identity; the reason bits take no part, so a packed entry and a bare identity
/// start their probes at the same slot.
fn slot_of(id: u64, bits: u32) -> usize {
    ((id & !REASON_BITS).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// Reads one decision record's identity and reason; `None` if it is not one.
fn row(line: &[u8]) -> Option<(u64, Reason)> {
    let mut fields: [Option<(&str, bool)>; 4] = [None; 4];
    scan_object(line, &mut |(key, escaped), value| {
        let i = match (escaped, key) {
            (false, "fixmedins_code") => 0,
            (false, "mdtrt_id") => 1,
            (false, "feedetl_sn") => 2,
            (false, "reason") => 3,
            _ => return Ok(()),
        };
        if let Value::Str { raw, escaped } = value {
            fields[i] = Some((raw, escaped));
        }
        Ok(())
    })
    .ok()?;
    let text = |i: usize| fields[i].map(|(raw, escaped)| unescape(raw, escaped));
    let reason = Reason::from_name(&text(3)?)?;
    Some((identity(&text(0)?, &text(1)?, &text(2)?), reason))
}

/// The key a decision index lists a decision under: its line's identity, as the table holds it.
pub fn index_key(id: u64) -> Vec<u8> {
    claim_index::identity_key(id & !REASON_BITS)
}

/// Reads decision records from a topic into `entries` (packed), listing each under its line's
/// identity in `index` if given. A record that is not a decision stops the review with its position.
fn read_decisions(
    input: BlockInput,
    topic: &str,
    entries: &mut Collector,
    mut index: Option<&mut Builder>,
) -> Result<()> {
    decode_all(input.blocks, topic, |d| {
        if let Some(i) = d.bad {
            let m = &d.messages[i as usize];
            return Err(anyhow!("{topic}/{}@{}: not a decision record", m.partition, m.offset));
        }
        if let Some(index) = index.as_deref_mut() {
            for (m, e) in d.messages.iter().zip(&d.packed) {
                index.entry(&claim_index::identity_key(e & !REASON_BITS), m.partition, m.offset);
            }
        }
        entries.extend(&d.packed)
    })
}

/// Blocks of about this many bytes of decision records are decoded at a time.
const BLOCK: usize = 1 << 20;

/// A block of decision records, decoded.
#[derive(Default)]
struct Decoded {
    /// Its decisions, packed, in order (up to the first bad record).
    packed: Vec<u64>,
    /// Its lines, blank ones included (a file's blocks), for the next block's line numbers.
    lines: u64,
    /// Its messages (a topic's blocks), for the index and to name a bad one.
    messages: Vec<MessageAt>,
    /// The first record that is not a decision: its line in the block (0-based), or its message's index.
    bad: Option<u64>,
}

/// The decision records of a block of text, one a line.
fn decode_text(text: &[u8]) -> Decoded {
    let mut packed = Vec::with_capacity(text.len() / 256);
    let lines = files::line_count(text);
    for (n, line) in files::numbered_lines(text, 0) {
        match row(line) {
            Some((id, r)) => packed.push(pack(id, r)),
            None => return Decoded { packed, lines, bad: Some(n), ..Decoded::default() },
        }
    }
    Decoded { packed, lines, ..Decoded::default() }
}

/// Decodes one block: a frame is decompressed with the thread's own context into the thread's own
/// buffer (both kept from block to block: no fresh memory a block).
fn decode(block: Block) -> std::io::Result<Decoded> {
    thread_local! {
        static FRAMES: RefCell<Option<(FrameDecompressor, Vec<u8>)>> = const { RefCell::new(None) };
    }
    match block {
        Block::Plain(text) => Ok(decode_text(&text)),
        Block::Zstd(frame) => FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            let (d, text) = match &mut *f {
                Some(f) => f,
                None => f.insert((FrameDecompressor::new()?, Vec::new())),
            };
            d.decompress(&frame, text)?;
            Ok(decode_text(text))
        }),
        Block::Messages(b) => {
            let mut packed = Vec::with_capacity(b.messages.len());
            let mut bad = None;
            for (i, m) in b.messages.iter().enumerate() {
                match row(b.payload(m)) {
                    Some((id, r)) => packed.push(pack(id, r)),
                    None => {
                        bad = Some(i as u64);
                        break;
                    }
                }
            }
            Ok(Decoded { packed, messages: b.messages, bad, ..Decoded::default() })
        }
    }
}

/// Decodes `blocks` on every core and hands each block's decisions to `take` in input order. A thread
/// of its own reads the blocks (from disk, a single-threaded decompressor or Kafka) while the pool
/// decompresses and parses a batch of the ones read before: the decisions' reading was the serial
/// part of `--previous` (issue 15). The first error stops it: a read error, named after `what`, or
/// what `take` returns.
fn decode_all(
    blocks: Box<dyn Iterator<Item = std::io::Result<Block>> + Send>,
    what: &str,
    mut take: impl FnMut(Decoded) -> Result<()>,
) -> Result<()> {
    let batch = rayon::current_num_threads() * 2;
    let (tx, rx) = crossbeam_channel::bounded::<std::io::Result<Block>>(batch);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for block in blocks {
                let stop = block.is_err();
                // The receiver is gone when the caller stopped on an error.
                if tx.send(block).is_err() || stop {
                    break;
                }
            }
        });
        // `rx` is dropped when this returns, which ends the reader.
        let rx = rx;
        let mut read_error = None;
        loop {
            let mut held = Vec::with_capacity(batch);
            while held.len() < batch {
                match rx.recv() {
                    Ok(Ok(b)) => held.push(b),
                    Ok(Err(e)) => {
                        read_error = Some(e);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if held.is_empty() && read_error.is_none() {
                return Ok(());
            }
            let decoded: Vec<std::io::Result<Decoded>> = held.into_par_iter().map(decode).collect();
            for d in decoded {
                take(d.with_context(|| format!("cannot read {what}"))?)?;
            }
            if let Some(e) = read_error {
                return Err(anyhow::Error::new(e).context(format!("cannot read {what}")));
            }
        }
    })
}

/// A decision topic read by a nightly run, its decisions listed by line identity.
pub struct Listed {
    /// The decision topic.
    pub topic: String,
    /// Its decisions by line identity.
    pub index: Builder,
    /// `(partition, first offset, end)` read.
    pub ranges: Vec<(i32, i64, i64)>,
}

/// The inline decisions read with the decision indexes (`review --retro --index-dir`).
pub struct IndexedDecisions {
    /// The decisions.
    pub previous: Previous,
    /// One sentence per decision topic, for the report's inputs.
    pub described: Vec<String>,
    /// Index files that could not be used, decisions deleted (retention).
    pub warnings: Vec<String>,
}

impl Previous {
    /// Reads a decisions file (JSON Lines, optionally compressed). A line that is not a decision record
    /// stops the review with its line number: comparing against a damaged file would misstate money.
    pub fn load(path: &Path, budget: &Budget) -> Result<Previous> {
        let input = files::open_blocks(path, BLOCK)?;
        let name = input.name.clone();
        let mut entries = Collector::new(budget);
        // Lines before the block in hand (blank ones included), for a bad line's number.
        let mut before = 0u64;
        decode_all(input.blocks, &name, |d| {
            if let Some(n) = d.bad {
                return Err(anyhow!("{name}:{}: not a decision record", before + n + 1));
            }
            before += d.lines;
            entries.extend(&d.packed)
        })?;
        entries.finish(name)
    }

    /// Reads the inline decisions from decision topics (`claims.accepted`, `claims.rejected`): every
    /// decision with a timestamp from `from` to the topics' end now — a line's decision comes after
    /// the line, however late. A record that is not a decision stops the review with its position.
    pub fn load_topics(kafka: &KafkaConfig, topics: &[String], from: BjTime, budget: &Budget) -> Result<Previous> {
        Ok(Previous::load_topics_listed(kafka, topics, from, false, budget)?.0)
    }

    /// As [`Previous::load_topics`], and with `list` each topic's decisions by line identity, for its
    /// decision index (a nightly run with `--index-dir`).
    pub fn load_topics_listed(
        kafka: &KafkaConfig,
        topics: &[String],
        from: BjTime,
        list: bool,
        budget: &Budget,
    ) -> Result<(Previous, Vec<Listed>)> {
        let mut entries = Collector::new(budget);
        let mut listed = Vec::new();
        for topic in topics {
            let plan = window::plan(kafka, topic, Window { from, until: BjTime::MAX })?;
            let ranges = plan.ranges.iter().map(|r| (r.partition, r.start, r.end)).collect();
            let (input, _) = window::blocks(kafka, plan, 4 << 20)?;
            let mut index = list.then(Builder::default);
            read_decisions(input, topic, &mut entries, index.as_mut())?;
            if let Some(index) = index {
                listed.push(Listed { topic: topic.clone(), index, ranges });
            }
        }
        Ok((entries.finish(format!("topics {} from {from}", topics.join(", ")))?, listed))
    }

    /// The inline decisions of the lines `ids` (their [`identity`]) with the decision indexes in
    /// `dir`: for each topic, the decisions the indexes list under those identities where an index
    /// covers the record times from `from` on, and every decision read by time where none does
    /// (`indexed`). For the lines `ids` it holds what [`Previous::load_topics`] holds, in the same
    /// order (so a repeated identity keeps the same, later, reason); other lines' decisions are
    /// mostly absent.
    pub fn load_indexed(
        kafka: &KafkaConfig,
        topics: &[String],
        from: BjTime,
        late: Duration,
        dir: &Path,
        ids: &[u64],
        budget: &Budget,
    ) -> Result<IndexedDecisions> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| index_key(*id)).collect();
        let span = Window { from, until: BjTime::MAX }.ms();
        let mut entries = Collector::new(budget);
        let mut out =
            IndexedDecisions { previous: Previous::empty(String::new()), described: Vec::new(), warnings: Vec::new() };
        for topic in topics {
            let covered = indexed::cover(dir, topic, span, &keys);
            out.warnings.extend(covered.warnings.iter().cloned());
            let mut segments = Vec::new();
            let mut by_time = Vec::new();
            for &(f, u) in &covered.uncovered {
                // The last part runs to the topic's end, as a read without indexes does.
                let w =
                    Window { from: from_unix_ms(f), until: if u == span.1 { BjTime::MAX } else { from_unix_ms(u) } };
                if w.until <= w.from {
                    continue;
                }
                let plan = if w.until == BjTime::MAX {
                    window::plan(kafka, topic, w)?
                } else {
                    window::plan_with(kafka, topic, w, late)?
                };
                let end = if w.until == BjTime::MAX { "the topic's end".to_owned() } else { w.until.to_string() };
                by_time.push(format!("decisions stamped from {} to {end} ({} offsets)", w.from, plan.offsets()));
                segments.extend(plan.segments((f, u)));
            }
            let (fetched, gone) = indexed::fetched(kafka, topic, &covered.runs)?;
            out.warnings.extend(gone.into_iter().map(|g| format!("inline decisions may be missing: {g}")));
            let reads = fetched.len();
            segments.extend(fetched);
            let segments = indexed::merged(segments);
            let offsets: i64 = segments.iter().map(|g| g.end - g.start).sum();
            let (input, _) = window::segment_blocks(kafka, topic, segments, 4 << 20)?;
            let before = entries.lines;
            read_decisions(input, topic, &mut entries, None)?;
            let used: Vec<String> = covered.used.iter().map(|p| p.display().to_string()).collect();
            let mut text = format!(
                "decision topic `{topic}` with the decision indexes of {dir}: {} indexed decisions of the chosen lines from {} index files{}, fetched in {reads} reads",
                covered.lines(),
                used.len(),
                if used.is_empty() { String::new() } else { format!(" ({})", used.join(", ")) },
                dir = dir.display()
            );
            if by_time.is_empty() {
                text.push_str("; no record time left to read by time");
            } else {
                text.push_str(&format!("; read by time where no index covers: {}", by_time.join("; ")));
            }
            text.push_str(&format!("; {} decisions read ({offsets} offsets)", entries.lines - before));
            out.described.push(text);
        }
        let name = format!("topics {} from {from}, with the decision indexes of {}", topics.join(", "), dir.display());
        out.previous = entries.finish(name)?;
        Ok(out)
    }

    /// No decisions (a late-change review with no change to review).
    pub fn empty(name: String) -> Previous {
        Previous { table: Table::Memory(slots(Vec::new())), lines: 0, name }
    }

    /// The directory of the partition files when the decisions went there: the review keeps join
    /// records and [`Previous::join_spilled`] joins them after it.
    pub fn spill_dir(&self) -> Option<&Path> {
        match &self.table {
            Table::Spilled(s) => Some(s.dir.path()),
            Table::Memory(_) => None,
        }
    }

    /// The inline reason for a line, if it was decided inline; `None` too when the decisions were
    /// spilled (see [`Previous::compare`]).
    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<Reason> {
        match &self.table {
            Table::Memory(slots) => lookup(slots, id),
            Table::Spilled(_) => None,
        }
    }

    /// Compares a decided line with its inline decision. When the decisions are in memory the line
    /// is held as a probe (its identity, its reason and where it lies in the block's text `at`) and
    /// compared with the block's other lines in [`Previous::settle`]; else its join record goes to
    /// `join`, which [`Previous::keep`] writes to the line's partition.
    pub fn compare(
        &self,
        c: &Claim<'_>,
        o: &Outcome<'_>,
        order: (u64, u64),
        cause: Option<u32>,
        at: std::ops::Range<usize>,
        join: &mut JoinBuffer,
    ) {
        let inst = c.fixmedins_code.to_bytes();
        // Institution codes are ASCII by construction.
        let inst = std::str::from_utf8(&inst).unwrap_or_default();
        let id = identity(inst, &c.mdtrt_id, &c.feedetl_sn);
        let practitioner = || c.code(o.role.unwrap_or(Role::Billing)).unwrap_or_default();
        match &self.table {
            Table::Memory(_) => join.probes.push(Probe { id, after: o.reason, role: o.role, order, cause, at }),
            Table::Spilled(_) => {
                let out = &mut join.parts[part_of(id)];
                out.extend_from_slice(&pack(id, o.reason).to_le_bytes());
                out.extend_from_slice(&order.0.to_le_bytes());
                out.extend_from_slice(&order.1.to_le_bytes());
                out.extend_from_slice(&cause.unwrap_or(u32::MAX).to_le_bytes());
                out.extend_from_slice(&c.fixmedins_code.packed().to_le_bytes());
                out.extend_from_slice(&c.amount.fen().to_le_bytes());
                out.extend_from_slice(&c.fee_ocur_time.secs().to_le_bytes());
                for text in [&*c.mdtrt_id, &*c.feedetl_sn, practitioner()] {
                    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }

    /// Compares a block's probes (see [`Previous::compare`]) with the inline decisions in memory, the
    /// table's slots of the probes a few ahead prefetched so that their cache misses overlap (one
    /// probe at a time, each line waited for its own miss: most of the in-memory join's time in the
    /// workers, issue 15). A changed line — rare — is parsed again from `text`, the block it was
    /// decided from, for what the report lists of it. Nothing when there are no probes.
    pub fn settle(&self, join: &mut JoinBuffer, text: &[u8], stats: &mut Stats) -> std::io::Result<()> {
        const AHEAD: usize = 16;
        let Table::Memory(slots) = &self.table else { return Ok(()) };
        let bits = slots.len().trailing_zeros();
        let mut result = Ok(());
        for (k, p) in join.probes.iter().enumerate() {
            if let Some(ahead) = join.probes.get(k + AHEAD) {
                prefetch(&slots[slot_of(ahead.id, bits)]);
            }
            tally(stats, lookup(slots, p.id), p.after, |before| {
                let Ok(c) = Claim::parse(text.get(p.at.clone()).unwrap_or_default()) else {
                    // The same bytes parsed a moment ago; if they no longer do, fail the run rather
                    // than leave a change out of the recovery report.
                    result = Err(std::io::Error::other("a decided line no longer parses (the join's copy of a block)"));
                    return None;
                };
                Some(Changed {
                    fixmedins_code: c.fixmedins_code,
                    mdtrt_id: c.mdtrt_id.to_string(),
                    feedetl_sn: c.feedetl_sn.to_string(),
                    practitioner: c.code(p.role.unwrap_or(Role::Billing)).unwrap_or_default().to_owned(),
                    amount: c.amount,
                    fee_ocur_time: c.fee_ocur_time,
                    before,
                    after: p.after,
                    order: p.order,
                    cause: p.cause,
                })
            });
        }
        join.probes.clear();
        result
    }

    /// Writes a worker's join records to their partitions once they reach `at_least` bytes in all
    /// (0: whatever there is, at the worker's end).
    pub fn keep(&self, join: &mut JoinBuffer, at_least: usize) -> std::io::Result<()> {
        let Table::Spilled(spill) = &self.table else { return Ok(()) };
        let held: usize = join.parts.iter().map(Vec::len).sum();
        if held == 0 || held < at_least {
            return Ok(());
        }
        for (k, part) in join.parts.iter_mut().enumerate() {
            if !part.is_empty() {
                let mut w = spill.review[k].lock().map_err(|_| std::io::Error::other("a review worker failed"))?;
                w.write_all(part)?;
                part.clear();
            }
        }
        Ok(())
    }

    /// After the review, when the decisions were spilled: joins each partition's join records with
    /// its inline decisions, adding the changed lines (in partition order: the caller sorts them) and
    /// the lines with no inline decision to `stats`. Nothing when they were not.
    ///
    /// Partitions are joined on several threads at once as far as the memory budget allows: as many
    /// as the budget holds of the largest partition (32 bytes a decision), at least one and at most
    /// one a core. On one thread the join after the review was ~2 s of a 4 M-line review's 10 (issue 15).
    pub fn join_spilled(&self, stats: &mut Stats) -> Result<()> {
        let Table::Spilled(spill) = &self.table else { return Ok(()) };
        let dir = spill.dir.path();
        for part in &spill.review {
            part.lock()
                .map_err(|_| anyhow!("a review worker failed"))?
                .flush()
                .with_context(|| format!("cannot write the join's partition files in {}", dir.display()))?;
        }
        let largest = (0..PARTS)
            .map(|k| std::fs::metadata(dir.join(format!("{k}.previous"))).map_or(0, |m| m.len() / 8))
            .max()
            .unwrap_or(0);
        let at_once = at_once(spill.decisions, largest, rayon::current_num_threads());
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(at_once).build().context("cannot start the join's threads")?;
        let joined: Vec<Result<(Vec<Changed>, u64)>> =
            pool.install(|| (0..PARTS).into_par_iter().map(|k| join_part(dir, k)).collect());
        for part in joined {
            let (changed, absent) = part?;
            stats.changed.extend(changed);
            stats.not_in_previous += absent;
        }
        Ok(())
    }
}

/// Partitions joined at once: as many as `budget` decisions hold of the `largest` partition's, at
/// least one, at most one a core.
fn at_once(budget: u64, largest: u64, cores: usize) -> usize {
    (budget / largest.max(1)).clamp(1, cores.max(1) as u64) as usize
}

/// Joins partition `k` of a spilled join: its changed lines, and its lines with no inline decision.
fn join_part(dir: &Path, k: usize) -> Result<(Vec<Changed>, u64)> {
    // Read straight into the words (no second copy): at most 8 bytes a decision, then the table's ~21
    // while it is built — within the 32 a decision the budget counts.
    let slots = slots(read_words(&dir.join(format!("{k}.previous")))?);
    let file = File::open(dir.join(format!("{k}.review")))
        .with_context(|| format!("cannot read the join's partition files in {}", dir.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut stats = Stats::default();
    while let Some(j) = JoinRecord::read(&mut r)
        .with_context(|| format!("cannot read the join's partition files in {}", dir.display()))?
    {
        let after = j.after;
        tally(&mut stats, lookup(&slots, j.id), after, |before| {
            Some(Changed {
                fixmedins_code: InstitutionCode::from_packed(j.institution),
                mdtrt_id: j.mdtrt_id,
                feedetl_sn: j.feedetl_sn,
                practitioner: j.practitioner,
                amount: Amount::from_fen(j.amount),
                fee_ocur_time: BjTime::from_secs(j.time),
                before,
                after,
                order: j.order,
                cause: j.cause,
            })
        });
    }
    Ok((stats.changed, stats.not_in_previous))
}

/// Counts a decided line against its inline reason `before`: a change is listed (`changed` makes its
/// entry; `None` when it could not, its caller then failing the run), a line with no inline decision
/// counted, an unchanged one left alone.
fn tally(stats: &mut Stats, before: Option<Reason>, after: Reason, changed: impl FnOnce(Reason) -> Option<Changed>) {
    match before {
        Some(before) if before != after => stats.changed.extend(changed(before)),
        Some(_) => {}
        None => stats.not_in_previous += 1,
    }
}

/// A partition file of packed decisions, as words.
fn read_words(path: &Path) -> Result<Vec<u64>> {
    let read = || -> std::io::Result<Vec<u64>> {
        let mut f = File::open(path)?;
        let mut words = vec![0u64; f.metadata()?.len() as usize / 8];
        f.read_exact(bytemuck::cast_slice_mut(&mut words))?;
        words.iter_mut().for_each(|w| *w = u64::from_le(*w));
        Ok(words)
    };
    read().with_context(|| format!("cannot read the join's partition file {}", path.display()))
}

/// A decided line waiting for its block's comparison with the inline decisions in memory.
struct Probe {
    id: u64,
    after: Reason,
    role: Option<Role>,
    order: (u64, u64),
    cause: Option<u32>,
    /// Where the line lies in its block's text.
    at: std::ops::Range<usize>,
}

/// A worker's lines not yet compared: a block's probes (decisions in memory), or join records not
/// yet written, by partition (a spilled join).
pub struct JoinBuffer {
    probes: Vec<Probe>,
    parts: Vec<Vec<u8>>,
}

impl JoinBuffer {
    /// Drops what is held (after a write failed: the run fails at the end, and memory stays bounded).
    pub fn discard(&mut self) {
        self.parts.iter_mut().for_each(Vec::clear);
    }
}

impl Default for JoinBuffer {
    fn default() -> Self {
        JoinBuffer { probes: Vec::new(), parts: vec![Vec::new(); PARTS] }
    }
}

/// A decided line's join record, read back from its partition.
struct JoinRecord {
    id: u64,
    after: Reason,
    order: (u64, u64),
    cause: Option<u32>,
    institution: u64,
    amount: i64,
    time: i64,
    mdtrt_id: String,
    feedetl_sn: String,
    practitioner: String,
}

impl JoinRecord {
    /// The next record, `None` at the end of the file.
    fn read(r: &mut impl Read) -> std::io::Result<Option<JoinRecord>> {
        let mut head = [0u8; 52];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
        let packed = u64_at(0);
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "a damaged join record");
        let after = Reason::ALL.get(((packed & REASON_BITS) as usize).wrapping_sub(1)).copied().ok_or_else(bad)?;
        let cause = u32::from_le_bytes(head[24..28].try_into().expect("4 bytes"));
        let mut text = || -> std::io::Result<String> {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
            r.read_exact(&mut bytes)?;
            String::from_utf8(bytes).map_err(|_| bad())
        };
        Ok(Some(JoinRecord {
            id: packed & !REASON_BITS,
            after,
            order: (u64_at(8), u64_at(16)),
            cause: (cause != u32::MAX).then_some(cause),
            institution: u64_at(28),
            amount: u64_at(36) as i64,
            time: u64_at(44) as i64,
            mdtrt_id: text()?,
            feedetl_sn: text()?,
            practitioner: text()?,
        }))
    }
}

/// The partition files of a spilled join, in a temporary directory removed when the join ends.
struct Spill {
    dir: tempfile::TempDir,
    /// Decisions the memory budget holds ([`Budget::decisions`]).
    decisions: u64,
    /// The inline decisions, packed, by partition: written while they are read.
    previous: Vec<BufWriter<File>>,
    /// The review's join records, by partition: appended by the workers.
    review: Vec<Mutex<BufWriter<File>>>,
}

impl Spill {
    fn new(budget: &Budget) -> Result<Spill> {
        let base = budget.dir.clone().unwrap_or_else(std::env::temp_dir);
        // `tempfile` makes the directory readable by its owner only: the records hold personal data.
        let dir = tempfile::Builder::new().prefix("claimgate-join-").tempdir_in(&base).with_context(|| {
            format!("cannot make the join's partition directory in {} (--spill-dir)", base.display())
        })?;
        let open = |name: String| {
            File::create(dir.path().join(&name))
                .map(|f| BufWriter::with_capacity(64 << 10, f))
                .with_context(|| format!("cannot create {} in {} (--spill-dir)", name, dir.path().display()))
        };
        let previous = (0..PARTS).map(|k| open(format!("{k}.previous"))).collect::<Result<Vec<_>>>()?;
        let review = (0..PARTS).map(|k| open(format!("{k}.review")).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        Ok(Spill { dir, decisions: budget.decisions(), previous, review })
    }

    fn write_previous(&mut self, packed: &[u64]) -> Result<()> {
        for e in packed {
            self.previous[part_of(*e)]
                .write_all(&e.to_le_bytes())
                .with_context(|| format!("cannot write the join's partition files in {}", self.dir.path().display()))?;
        }
        Ok(())
    }
}

/// Collects packed decisions: in memory within the budget, then in partition files.
struct Collector {
    budget: Budget,
    entries: Vec<u64>,
    spill: Option<Spill>,
    /// Decisions collected.
    lines: u64,
}

impl Collector {
    fn new(budget: &Budget) -> Collector {
        Collector { budget: budget.clone(), entries: Vec::new(), spill: None, lines: 0 }
    }

    fn extend(&mut self, packed: &[u64]) -> Result<()> {
        self.lines += packed.len() as u64;
        if let Some(s) = &mut self.spill {
            return s.write_previous(packed);
        }
        self.entries.extend_from_slice(packed);
        if self.entries.len() as u64 > self.budget.decisions() {
            let mut s = Spill::new(&self.budget)?;
            s.write_previous(&std::mem::take(&mut self.entries))?;
            self.spill = Some(s);
        }
        Ok(())
    }

    fn finish(self, name: String) -> Result<Previous> {
        let table = match self.spill {
            None => Table::Memory(slots(self.entries)),
            Some(mut s) => {
                for (k, w) in s.previous.iter_mut().enumerate() {
                    w.flush().with_context(|| format!("cannot write the join's partition file {k}"))?;
                }
                // Written and closed: the join reads them back whole.
                s.previous.clear();
                Table::Spilled(s)
            }
        };
        Ok(Previous { table, lines: self.lines, name })
    }
}

/// The table of packed decisions, at most 3/4 full. A repeated identity keeps the later reason.
///
/// Backed by 2 MiB pages where the kernel allows: each reviewed line probes it at random, and with
/// 4 KiB pages on a virtual machine the probe's TLB miss cost more than its cache miss (the probe was
/// 90 % of the line's join time, issue 15). Built with the slots of the entries a few ahead
/// prefetched, so the build's misses overlap.
fn slots(entries: Vec<u64>) -> Vec<u64> {
    const AHEAD: usize = 8;
    let bits = ((entries.len() * 4 / 3 + 1).next_power_of_two().max(16)).trailing_zeros();
    // Zeroed by the kernel on first touch (calloc'd pages), so the hint comes before any is touched.
    let mut slots = vec![0u64; 1 << bits];
    hint_huge_pages(&slots);
    let mask = slots.len() - 1;
    for (k, &e) in entries.iter().enumerate() {
        if let Some(&ahead) = entries.get(k + AHEAD) {
            prefetch(&slots[slot_of(ahead, bits)]);
        }
        let mut i = slot_of(e, bits);
        // The table is at most 3/4 full, so a free slot is always found.
        loop {
            if slots[i] == 0 || slots[i] & !REASON_BITS == e & !REASON_BITS {
                slots[i] = e;
                break;
            }
            i = (i + 1) & mask;
        }
    }
    slots
}

fn lookup(slots: &[u64], id: u64) -> Option<Reason> {
    let bits = slots.len().trailing_zeros();
    let mask = slots.len() - 1;
    let mut i = slot_of(id, bits);
    for _ in 0..slots.len() {
        let s = slots[i];
        if s == 0 {
            return None;
        }
        if s & !REASON_BITS == id & !REASON_BITS {
            return Reason::ALL.get(((s & REASON_BITS) - 1) as usize).copied();
        }
        i = (i + 1) & mask;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_identities_and_reasons_and_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prev.jsonl");
        let mut text = String::new();
        for i in 0..1000 {
            let reason = Reason::ALL[i % Reason::ALL.len()];
            text.push_str(&format!(
                "{{\"feedetl_sn\":\"F{i}\",\"fixmedins_code\":\"H11010500001\",\"mdtrt_id\":\"M\\\"{i}\",\"reason\":\"{reason}\",\"x\":[1]}}\n"
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let p = Previous::load(&path, &Budget::unlimited()).unwrap();
        assert_eq!(p.lines, 1000);
        for i in 0..1000 {
            let id = identity("H11010500001", &format!("M\"{i}"), &format!("F{i}"));
            assert_eq!(p.get(id), Some(Reason::ALL[i % Reason::ALL.len()]), "{i}");
        }
        assert_eq!(p.get(identity("H11010500001", "M1", "F2")), None);
        std::fs::write(&path, "{\"feedetl_sn\":\"F1\"}\n").unwrap();
        let e = Previous::load(&path, &Budget::unlimited()).err().unwrap().to_string();
        assert!(e.contains("prev.jsonl:1"), "{e}");
    }

    #[test]
    fn a_topics_bad_record_is_named_by_partition_and_offset_and_the_good_ones_are_listed() {
        let good = many(3);
        let mut data = Vec::new();
        let mut messages = Vec::new();
        for (k, payload) in
            [good[0].trim_end(), good[1].trim_end(), "{\"reason\":\"OK\"}", good[2].trim_end()].iter().enumerate()
        {
            messages.push(MessageAt {
                at: data.len() as u32,
                len: payload.len() as u32,
                null: false,
                partition: 2,
                offset: 40 + k as i64,
            });
            data.extend_from_slice(payload.as_bytes());
        }
        let input = |messages: Vec<MessageAt>| BlockInput {
            blocks: Box::new(
                vec![Ok(Block::Messages(files::MessageBlock { data: data.clone(), messages }))].into_iter(),
            ),
            size: None,
            read: Default::default(),
            name: "claims.accepted".into(),
        };
        let mut entries = Collector::new(&Budget::unlimited());
        let e = read_decisions(input(messages.clone()), "claims.accepted", &mut entries, None).unwrap_err();
        assert_eq!(e.to_string(), "claims.accepted/2@42: not a decision record");
        // Without the bad one: both good records before it and the one after, each listed.
        messages.remove(2);
        let mut entries = Collector::new(&Budget::unlimited());
        let mut index = Builder::default();
        read_decisions(input(messages), "claims.accepted", &mut entries, Some(&mut index)).unwrap();
        assert_eq!(entries.lines, 3);
        assert_eq!(index.lines(), 3);
    }

    #[test]
    fn partitions_are_joined_at_once_only_as_far_as_the_budget_holds_them() {
        assert_eq!(at_once(1_000_000, 62_000, 2), 2);
        assert_eq!(at_once(1_000_000, 62_000, 64), 16);
        assert_eq!(at_once(1_000_000, 600_000, 8), 1);
        // A partition larger than the whole budget is still joined, one at a time.
        assert_eq!(at_once(1_000, 5_000, 8), 1);
        assert_eq!(at_once(1_000, 0, 0), 1);
    }

    /// Decision records enough for several blocks, with blank lines here and there (counted, skipped).
    fn many(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let reason = Reason::ALL[i % Reason::ALL.len()];
                let blank = if i % 1000 == 999 { "\n" } else { "" };
                format!(
                    "{{\"feedetl_sn\":\"{i:06}\",\"fixmedins_code\":\"H11010500001\",\"mdtrt_id\":\"MD{i}\",\"reason\":\"{reason}\",\"rule\":\"{}\"}}\n{blank}",
                    "x".repeat(100)
                )
            })
            .collect()
    }

    #[test]
    fn reads_several_blocks_in_order_plain_and_in_frames_and_numbers_a_bad_line_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = many(20_000);
        // The same identity again, later: the later reason counts, whichever block each is in.
        let again = lines[3].replace(&format!("\"reason\":\"{}\"", Reason::ALL[3]), "\"reason\":\"OK\"");
        assert_ne!(again, lines[3]);
        lines.push(again);
        let text = lines.concat();
        assert!(text.len() > 3 * BLOCK, "{} bytes", text.len());
        let plain = dir.path().join("prev.jsonl");
        std::fs::write(&plain, &text).unwrap();
        // claimgate's own `.zst`: the marker, then one frame per ~64 KiB of whole lines.
        let framed = dir.path().join("prev.jsonl.zst");
        let mut bytes = crate::io::frames::marker_frame();
        let mut c = crate::io::frames::FrameCompressor::new().unwrap();
        let mut frame = Vec::new();
        for part in lines.chunks(300) {
            c.compress(part.concat().as_bytes(), &mut frame).unwrap();
            bytes.extend_from_slice(&frame);
        }
        std::fs::write(&framed, &bytes).unwrap();
        for path in [&plain, &framed] {
            let p = Previous::load(path, &Budget::unlimited()).unwrap();
            assert_eq!(p.lines, 20_001, "{}", path.display());
            for i in (0..20_000).step_by(7).chain([3]) {
                let id = identity("H11010500001", &format!("MD{i}"), &format!("{i:06}"));
                let want = if i == 3 { Reason::Ok } else { Reason::ALL[i % Reason::ALL.len()] };
                assert_eq!(p.get(id), Some(want), "{} line {i}", path.display());
            }
        }
        // A bad record deep in the file: its line number counts every line before it, blank ones too.
        let mut bad = lines.clone();
        bad[15_000] = "{\"feedetl_sn\":\"x\"}\n".to_owned();
        std::fs::write(&plain, bad.concat()).unwrap();
        let blanks_before = 15_000 / 1000;
        let e = Previous::load(&plain, &Budget::unlimited()).err().unwrap().to_string();
        assert!(e.contains(&format!("prev.jsonl:{}:", 15_001 + blanks_before)), "{e}");
    }
}
