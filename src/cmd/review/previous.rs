//! The inline decisions to compare against (`--previous`): line identity → reason.
//!
//! Held as one 64-bit word per line in an open-addressing table: the identity's 60-bit hash and the
//! reason in the low four bits (8 bytes a slot, ~11 bytes a line at the table's load; the map it
//! replaces took ~36). Read with claimgate's own JSON scanner on every core (serde_json's typed
//! reading was most of the 3.5× that `--previous` cost a review, issue 15). Memory still grows with
//! the previous file (about 110 MB for 10 million lines); see BENCHMARKS.md for what is left.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;

use super::indexed;
use crate::io::claim_index::{self, Builder};
use crate::io::clock::from_unix_ms;
use crate::io::files::{self, Block, BlockInput, Chunker, lines};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::{self, Window};
use claimgate::record::json::{Value, scan_object, unescape};
use claimgate::record::{BjTime, Reason};

/// A line's identity (records.md): institution, visit, serial — hashed with a fixed-key SipHash, so
/// the same identity hashes alike in every run.
pub fn identity(fixmedins_code: &str, mdtrt_id: &str, feedetl_sn: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (fixmedins_code, mdtrt_id, feedetl_sn).hash(&mut h);
    h.finish()
}

const REASON_BITS: u64 = 0xF;

/// The previous decisions.
pub struct Previous {
    /// `identity & !0xF | reason index + 1`; 0 marks an empty slot.
    slots: Vec<u64>,
    /// Decisions read.
    pub lines: u64,
    /// The file's name.
    pub name: String,
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
    entries: &mut Vec<u64>,
    mut index: Option<&mut Builder>,
) -> Result<()> {
    for block in input.blocks {
        let Block::Messages(b) = block.with_context(|| format!("cannot read {topic}"))? else {
            continue;
        };
        let packed: Result<Vec<u64>> = b
            .messages
            .par_iter()
            .map(|m| {
                row(b.payload(m))
                    .map(|(id, r)| pack(id, r))
                    .ok_or_else(|| anyhow!("{topic}/{}@{}: not a decision record", m.partition, m.offset))
            })
            .collect();
        let packed = packed?;
        if let Some(index) = index.as_deref_mut() {
            for (m, e) in b.messages.iter().zip(&packed) {
                index.entry(&claim_index::identity_key(e & !REASON_BITS), m.partition, m.offset);
            }
        }
        entries.extend(packed);
    }
    Ok(())
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
    pub fn load(path: &Path) -> Result<Previous> {
        let input = files::open(path)?;
        let name = input.name.clone();
        let mut entries: Vec<u64> = Vec::new();
        for chunk in Chunker::new(input.reader, 4 << 20) {
            let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
            let rows: Vec<(u64, &[u8])> = lines(&chunk).collect();
            let packed: Result<Vec<u64>> = rows
                .par_iter()
                .map(|&(n, line)| {
                    row(line).map(|(id, r)| pack(id, r)).ok_or_else(|| anyhow!("{name}:{n}: not a decision record"))
                })
                .collect();
            entries.extend(packed?);
        }
        Ok(Previous::from_entries(entries, name))
    }

    /// Reads the inline decisions from decision topics (`claims.accepted`, `claims.rejected`): every
    /// decision with a timestamp from `from` to the topics' end now — a line's decision comes after
    /// the line, however late. A record that is not a decision stops the review with its position.
    pub fn load_topics(kafka: &KafkaConfig, topics: &[String], from: BjTime) -> Result<Previous> {
        Ok(Previous::load_topics_listed(kafka, topics, from, false)?.0)
    }

    /// As [`Previous::load_topics`], and with `list` each topic's decisions by line identity, for its
    /// decision index (a nightly run with `--index-dir`).
    pub fn load_topics_listed(
        kafka: &KafkaConfig,
        topics: &[String],
        from: BjTime,
        list: bool,
    ) -> Result<(Previous, Vec<Listed>)> {
        let mut entries: Vec<u64> = Vec::new();
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
        Ok((Previous::from_entries(entries, format!("topics {} from {from}", topics.join(", "))), listed))
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
    ) -> Result<IndexedDecisions> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| index_key(*id)).collect();
        let span = Window { from, until: BjTime::MAX }.ms();
        let mut entries: Vec<u64> = Vec::new();
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
            let before = entries.len();
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
            text.push_str(&format!("; {} decisions read ({offsets} offsets)", entries.len() - before));
            out.described.push(text);
        }
        let name = format!("topics {} from {from}, with the decision indexes of {}", topics.join(", "), dir.display());
        out.previous = Previous::from_entries(entries, name);
        Ok(out)
    }

    fn from_entries(entries: Vec<u64>, name: String) -> Previous {
        let lines = entries.len() as u64;
        let bits = ((entries.len() * 4 / 3 + 1).next_power_of_two().max(16)).trailing_zeros();
        let mut slots = vec![0u64; 1 << bits];
        let mask = slots.len() - 1;
        for e in entries {
            let mut i = slot_of(e, bits);
            // The table is at most 3/4 full, so a free slot is always found. A repeated identity
            // keeps the later reason, as the map did.
            loop {
                if slots[i] == 0 || slots[i] & !REASON_BITS == e & !REASON_BITS {
                    slots[i] = e;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        Previous { slots, lines, name }
    }

    /// No decisions (a late-change review with no change to review).
    pub fn empty(name: String) -> Previous {
        Previous::from_entries(Vec::new(), name)
    }

    /// The inline reason for a line, if it was decided inline.
    pub fn get(&self, id: u64) -> Option<Reason> {
        let bits = self.slots.len().trailing_zeros();
        let mask = self.slots.len() - 1;
        let mut i = slot_of(id, bits);
        for _ in 0..self.slots.len() {
            let s = self.slots[i];
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
        let p = Previous::load(&path).unwrap();
        assert_eq!(p.lines, 1000);
        for i in 0..1000 {
            let id = identity("H11010500001", &format!("M\"{i}"), &format!("F{i}"));
            assert_eq!(p.get(id), Some(Reason::ALL[i % Reason::ALL.len()]), "{i}");
        }
        assert_eq!(p.get(identity("H11010500001", "M1", "F2")), None);
        std::fs::write(&path, "{\"feedetl_sn\":\"F1\"}\n").unwrap();
        let e = Previous::load(&path).err().unwrap().to_string();
        assert!(e.contains("prev.jsonl:1"), "{e}");
    }
}
