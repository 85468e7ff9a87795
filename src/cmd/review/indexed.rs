//! `review --retro --index-dir DIR`: which parts of the span the nightly runs' code indexes cover
//! (`io::claim_index`), the claims topic's offsets they list for the changed codes, and what is left
//! to read by time.
//!
//! The indexes are an accelerator, never the record: an index file that cannot be used (unreadable,
//! truncated, another format, a checksum that does not match) is named in the report's warnings and on
//! standard error, and the part of the span it would have covered is read by time — the review's
//! decisions and recovery report are the same either way, only slower. Refusing would stop the
//! recovery loop until someone repaired a cache file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::io::claim_index::{self, Index};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::{self, Segment};

/// Indexed offsets closer than this are read in one go: reading a few hundred messages costs less
/// than a seek (a new assignment and a fetch round trip).
pub const NEAR: i64 = 256;

/// The indexed offsets of one index for one partition, and the record times they are kept for.
#[derive(Clone, Debug)]
pub struct Run {
    /// The index file.
    pub file: PathBuf,
    /// The partition.
    pub partition: i32,
    /// The offsets listed under a changed code, sorted.
    pub offsets: Vec<i64>,
    /// The covered record times within the span, milliseconds.
    pub keep: (i64, i64),
}

/// What the indexes give for a span.
#[derive(Debug, Default)]
pub struct Covered {
    /// The offsets to fetch.
    pub runs: Vec<Run>,
    /// Parts of the span no usable index covers, in order, milliseconds.
    pub uncovered: Vec<(i64, i64)>,
    /// The index files used.
    pub used: Vec<PathBuf>,
    /// Files that could not be used, and why.
    pub warnings: Vec<String>,
}

impl Covered {
    /// Lines the indexes list under the changed codes.
    pub fn lines(&self) -> usize {
        self.runs.iter().map(|r| r.offsets.len()).sum()
    }
}

fn ignored(path: &Path, why: impl std::fmt::Display) -> String {
    let w = format!(
        "claim index {} ignored ({why}); the record times it would cover are read from the topic by time instead",
        path.display()
    );
    eprintln!("{w}");
    w
}

/// The indexes of `topic` in `dir` that cover parts of `span` (milliseconds), the offsets they list
/// under `keys`, and the parts of the span left to read by time.
pub fn cover(dir: &Path, topic: &str, span: (i64, i64), keys: &[Vec<u8>]) -> Covered {
    let mut out = Covered::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.warnings.push(ignored(dir, format!("cannot read the index directory: {e}")));
            out.uncovered.push(span);
            return out;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == claim_index::EXTENSION))
        .collect();
    files.sort();
    // Candidates: this topic, overlapping the span.
    let mut candidates = Vec::new();
    for path in files {
        match claim_index::read_header(&path) {
            Ok(h) if h.topic == topic && h.from_ms < span.1 && span.0 < h.until_ms && h.from_ms < h.until_ms => {
                candidates.push((h.from_ms, h.until_ms, path));
            }
            Ok(_) => {}
            Err(e) => out.warnings.push(ignored(&path, e)),
        }
    }
    // Windows that do not overlap: the earliest first, the longer one where two start together.
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut covered: Vec<(i64, i64)> = Vec::new();
    let mut last_end = i64::MIN;
    for (from, until, path) in candidates {
        if from < last_end {
            continue;
        }
        let offsets = match Index::read(&path).and_then(|i| i.find(keys)) {
            Ok(f) => f,
            Err(e) => {
                out.warnings.push(ignored(&path, e));
                continue;
            }
        };
        last_end = until;
        let keep = (from.max(span.0), until.min(span.1));
        covered.push(keep);
        let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
        for (p, o) in offsets {
            by_partition.entry(p).or_default().push(o);
        }
        let mut parts: Vec<_> = by_partition.into_iter().collect();
        parts.sort_by_key(|(p, _)| *p);
        for (partition, offsets) in parts {
            out.runs.push(Run { file: path.clone(), partition, offsets, keep });
        }
        out.used.push(path);
    }
    out.uncovered = minus(span, &covered);
    out
}

/// `span` less the sorted, disjoint `covered` intervals.
fn minus(span: (i64, i64), covered: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = span.0;
    for &(from, until) in covered {
        if from > at {
            out.push((at, from.min(span.1)));
        }
        at = at.max(until);
    }
    if at < span.1 {
        out.push((at, span.1));
    }
    out
}

/// The runs as segments to read ([`segments`]), each partition's watermarks asked of the broker once.
pub fn fetched(kafka: &KafkaConfig, topic: &str, runs: &[Run]) -> Result<(Vec<Segment>, Vec<String>)> {
    let mut marks = HashMap::new();
    if !runs.is_empty() {
        let consumer = window::reader(kafka, "review")?;
        for run in runs {
            if let std::collections::hash_map::Entry::Vacant(e) = marks.entry(run.partition) {
                e.insert(window::watermarks(&consumer, topic, run.partition)?);
            }
        }
    }
    Ok(segments(runs, topic, &marks))
}

/// The runs as segments to read — offsets within [`NEAR`] of each other in one segment, offsets that
/// retention deleted (below the partition's first offset) or that the topic does not hold (at or
/// past its end: a recreated topic) left out and said — given each partition's watermarks.
pub fn segments(runs: &[Run], topic: &str, marks: &HashMap<i32, (i64, i64)>) -> (Vec<Segment>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for run in runs {
        let (low, high) = marks.get(&run.partition).copied().unwrap_or((0, 0));
        let gone: Vec<i64> = run.offsets.iter().copied().filter(|o| *o < low).collect();
        if let (Some(first), Some(last)) = (gone.first(), gone.last()) {
            warnings.push(format!(
                "{topic}/{}: {} indexed lines (offsets {first}-{last}, {}) were deleted (retention): they are not reviewed",
                run.partition,
                gone.len(),
                run.file.display()
            ));
        }
        let past: Vec<i64> = run.offsets.iter().copied().filter(|o| *o >= high && *o >= low).collect();
        if let (Some(first), Some(last)) = (past.first(), past.last()) {
            warnings.push(format!(
                "{topic}/{}: {} indexed lines (offsets {first}-{last}, {}) are past the partition's end ({high}): was the topic recreated? They are not reviewed",
                run.partition,
                past.len(),
                run.file.display()
            ));
        }
        let mut current: Option<Segment> = None;
        for &o in run.offsets.iter().filter(|o| **o >= low && **o < high) {
            match &mut current {
                Some(s) if o - s.end < NEAR => s.end = o + 1,
                _ => {
                    out.extend(current.take());
                    current = Some(Segment { partition: run.partition, start: o, end: o + 1, keep: vec![run.keep] });
                }
            }
        }
        out.extend(current);
    }
    (out, warnings)
}

/// Segments in partition and offset order, overlapping ones merged (their keep windows joined), so
/// that every offset is read once and the lines come in the order a read by time gives them.
pub fn merged(mut segments: Vec<Segment>) -> Vec<Segment> {
    segments.sort_by_key(|s| (s.partition, s.start, s.end));
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        match out.last_mut() {
            Some(l) if l.partition == s.partition && s.start <= l.end => {
                l.end = l.end.max(s.end);
                for k in s.keep {
                    if !l.keep.contains(&k) {
                        l.keep.push(k);
                    }
                }
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_less_the_covered_windows_is_read_by_time() {
        assert_eq!(minus((0, 100), &[]), [(0, 100)]);
        assert_eq!(minus((0, 100), &[(0, 40), (40, 60)]), [(60, 100)]);
        assert_eq!(minus((0, 100), &[(10, 40), (50, 100)]), [(0, 10), (40, 50)]);
        assert!(minus((0, 100), &[(0, 100)]).is_empty());
    }

    #[test]
    fn near_offsets_are_read_in_one_go_and_deleted_ones_are_said() {
        let run = Run { file: "x.cgidx".into(), partition: 2, offsets: vec![5, 10, 20, 250, 900, 1000], keep: (0, 9) };
        let marks = HashMap::from([(2, (8, 950))]);
        let (segs, warnings) = segments(&[run], "claims", &marks);
        let spans: Vec<(i64, i64)> = segs.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(spans, [(10, 251), (900, 901)]);
        assert!(warnings[0].contains("claims/2: 1 indexed lines (offsets 5-5, x.cgidx) were deleted"), "{warnings:?}");
        assert!(warnings[1].contains("offsets 1000-1000") && warnings[1].contains("recreated"), "{warnings:?}");
    }

    #[test]
    fn overlapping_segments_are_read_once_in_offset_order() {
        let s = |p, start, end, keep| Segment { partition: p, start, end, keep: vec![keep] };
        let m = merged(vec![s(1, 50, 60, (0, 1)), s(0, 10, 20, (0, 1)), s(1, 0, 55, (1, 2)), s(1, 70, 80, (0, 1))]);
        assert_eq!(
            m,
            vec![
                s(0, 10, 20, (0, 1)),
                Segment { partition: 1, start: 0, end: 60, keep: vec![(1, 2), (0, 1)] },
                s(1, 70, 80, (0, 1)),
            ]
        );
    }
}
