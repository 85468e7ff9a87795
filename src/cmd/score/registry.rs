//! The practitioner file of `claimgate score`, read in passes and never held (issue 10, item 6).
//!
//! Pass 1 ([`select`]) parses and checks every line, as before, and keeps whole only the records the
//! ledger needs ([`Selection`]); every other record goes into the [`Census`] of staff counts and leaves
//! an 8-byte fingerprint of its code behind, so that a code written twice (a stale version) can be
//! found. Only when a fingerprint repeats outside the kept records is the file read again, for those
//! codes only; a full output ([`write_all`]) reads it once more, re-encoding each untouched record as
//! the whole-file run wrote it. Memory follows the ledger, the institutions and 8 bytes per code —
//! about 100 MB at 12 million codes, against 2 KB per code when the file was held.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::io::files::{self, lines};
use crate::io::progress::Progress;
use crate::io::tables::chunks;
use claimgate::record::{PractitionerCode, PractitionerKey, PractitionerRecord, PractitionerText};
use claimgate::score::{Census, Rest, Scored, Selection, Share};

/// The fields of a practitioner record that records.md defines; any other is passed on.
const KNOWN: [&str; 6] = ["code", "name", "kind", "registrations", "periods", "version"];

/// A record kept whole, with where it stands in the file.
pub struct Kept {
    /// Its position among the file's records (blank lines not counted), from 0.
    pub index: u64,
    /// The record.
    pub text: PractitionerText,
    /// Its fields records.md does not define, written again after the others in key order.
    pub extras: Map<String, Value>,
}

/// What pass 1 (and, if needed, the pass for repeated codes) found.
pub struct Selected {
    /// The file's name, for messages.
    pub name: String,
    /// The records kept whole, in file order.
    pub kept: Vec<Kept>,
    /// The others, for the report and the ratio.
    pub rest: Rest,
    /// Positions of stale records among the others (a higher version of the code is in the file).
    pub stale: HashSet<u64>,
    /// Records in the file.
    pub records: u64,
}

/// One line of pass 1.
enum Line {
    Kept(Box<(PractitionerText, Map<String, Value>)>),
    Other(Share),
}

/// A code as 8 bytes: a national code is its packed key (unique); a legacy id is hashed, with the top
/// bit set so that it never equals a national key. Equal fingerprints are only candidates: the codes
/// are compared before anything is decided.
fn fingerprint(code: &PractitionerCode) -> u64 {
    match code.key() {
        PractitionerKey::National(k) => k,
        PractitionerKey::Legacy(s) => {
            let mut h = std::hash::DefaultHasher::new();
            s.hash(&mut h);
            h.finish() | 1 << 63
        }
    }
}

/// Parses and checks one line as the whole-file run did: the record, then its unknown fields.
fn parse(name: &str, n: u64, line: &[u8]) -> Result<(PractitionerText, PractitionerRecord)> {
    let text = PractitionerText::from_json(line).map_err(|e| anyhow!("{name}:{n}: {e}"))?;
    let rec = text.validate().map_err(|e| anyhow!("{name}:{n}: {e}"))?;
    Ok((text, rec))
}

fn extras(name: &str, n: u64, line: &[u8]) -> Result<Map<String, Value>> {
    let mut extra: Map<String, Value> = serde_json::from_slice(line).map_err(|e| anyhow!("{name}:{n}: {e}"))?;
    extra.retain(|k, _| !KNOWN.contains(&k.as_str()));
    Ok(extra)
}

/// Reads the file once, line by line in chunks parsed on every core; calls `each` with the record
/// position, the line number and what `map` made of the line, in file order.
fn pass<T: Send>(
    path: &Path,
    progress: &Progress,
    label: &str,
    map: impl Fn(&str, u64, &[u8]) -> Result<T> + Sync,
    mut each: impl FnMut(u64, u64, T) -> Result<()>,
) -> Result<(u64, String)> {
    let input = files::open(path)?;
    let bar = progress.bytes(input.size, &format!("{label} {}", input.name));
    let counter = input.read.clone();
    let name = input.name.clone();
    let mut index = 0u64;
    for chunk in chunks(input) {
        let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
        let parsed: Vec<(u64, Result<T>)> =
            lines(&chunk).collect::<Vec<_>>().into_par_iter().map(|(n, line)| (n, map(&name, n, line))).collect();
        for (n, item) in parsed {
            each(index, n, item?)?;
            index += 1;
        }
        bar.set_position(counter.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    Ok((index, name))
}

/// Pass 1, and the pass for repeated codes if one is needed.
pub fn select(path: &Path, selection: &Selection, mut census: Census, progress: &Progress) -> Result<Selected> {
    if path == Path::new("-") {
        bail!("--practitioners: give a file, not standard input: it may have to be read more than once");
    }
    // Shares are worked out on every core from a copy of the (still empty) census; counted in order.
    let sharer = census.clone();
    let mut kept: Vec<Kept> = Vec::new();
    let mut prints: Vec<u64> = Vec::new();
    let (records, name) = pass(
        path,
        progress,
        "practitioners",
        |name, n, line| {
            let (text, rec) = parse(name, n, line)?;
            let print = fingerprint(&rec.code);
            Ok(if selection.wants(&rec) {
                (print, Line::Kept(Box::new((text, extras(name, n, line)?))))
            } else {
                (print, Line::Other(sharer.share(&rec, text.kind.as_deref())))
            })
        },
        |index, _, (print, line)| {
            prints.push(print);
            match line {
                Line::Kept(b) => {
                    let (text, extras) = *b;
                    kept.push(Kept { index, text, extras });
                }
                Line::Other(share) => census.add(&share),
            }
            Ok(())
        },
    )?;
    let mut selected = Selected { name, kept, rest: Rest::default(), stale: HashSet::new(), records };

    // Fingerprints seen more than once, other than by kept records only: a code written twice, one of
    // whose records was not kept (or two codes with one fingerprint, told apart below).
    let mut kept_prints: HashMap<u64, u64> = HashMap::new();
    for k in &selected.kept {
        // Invariant: kept records were validated in pass 1.
        if let Ok(code) = PractitionerCode::parse(k.text.code.trim()) {
            *kept_prints.entry(fingerprint(&code)).or_default() += 1;
        }
    }
    prints.sort_unstable();
    let mut repeated: HashSet<u64> = HashSet::new();
    for run in prints.chunk_by(|a, b| a == b).filter(|r| r.len() > 1) {
        if run.len() as u64 > kept_prints.get(&run[0]).copied().unwrap_or(0) {
            repeated.insert(run[0]);
        }
    }
    drop(prints);
    let mut stale = 0usize;
    if !repeated.is_empty() {
        stale = repeated_codes(path, progress, &repeated, &mut selected, &sharer, &mut census)?;
    }
    let others = selected.records as usize - selected.kept.len();
    selected.rest = Rest { census, records: others - stale, stale };
    Ok(selected)
}

/// Only the code of a record, for the passes that look for some codes.
#[derive(serde::Deserialize)]
struct CodeOnly<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// The pass for repeated fingerprints: a record of a kept code that was not kept joins the kept ones
/// (and leaves the census); among the records of a code not kept, all but the highest version (the
/// first of equal ones, as the status table keeps it) are stale and leave the census. Returns how many
/// records are stale.
fn repeated_codes(
    path: &Path,
    progress: &Progress,
    repeated: &HashSet<u64>,
    selected: &mut Selected,
    sharer: &Census,
    census: &mut Census,
) -> Result<usize> {
    let kept_codes: HashSet<String> = selected.kept.iter().map(|k| k.text.code.trim().to_owned()).collect();
    let kept_at: HashSet<u64> = selected.kept.iter().map(|k| k.index).collect();
    let mut groups: HashMap<PractitionerCode, Vec<(u64, u64, Share)>> = HashMap::new();
    let mut joined = Vec::new();
    let (records, _) = pass(
        path,
        progress,
        "practitioners (repeated codes)",
        |name, n, line| {
            let code: CodeOnly<'_> = serde_json::from_slice(line).map_err(|e| anyhow!("{name}:{n}: {e}"))?;
            let code = PractitionerCode::parse(code.code.trim()).map_err(|e| anyhow!("{name}:{n}: code: {e}"))?;
            if !repeated.contains(&fingerprint(&code)) {
                return Ok(None);
            }
            let (text, rec) = parse(name, n, line)?;
            let share = sharer.share(&rec, text.kind.as_deref());
            let extras = extras(name, n, line)?;
            Ok(Some((text, rec, share, extras)))
        },
        |index, _, found| {
            let Some((text, rec, share, extras)) = found else { return Ok(()) };
            if kept_at.contains(&index) {
                return Ok(());
            }
            if kept_codes.contains(text.code.trim()) {
                census.remove(&share);
                joined.push(Kept { index, text, extras });
            } else {
                groups.entry(rec.code).or_default().push((index, rec.version, share));
            }
            Ok(())
        },
    )?;
    if records != selected.records {
        bail!("{}: changed while it was being read ({} records, then {records})", selected.name, selected.records);
    }
    if !joined.is_empty() {
        selected.kept.extend(joined);
        selected.kept.sort_by_key(|k| k.index);
    }
    let mut stale = 0;
    for versions in groups.values().filter(|v| v.len() > 1) {
        let best = versions.iter().map(|(_, v, _)| *v).max().unwrap_or(0);
        // The first of the highest version stays; the other records of the code are stale.
        let chosen = versions.iter().position(|(_, v, _)| *v == best).unwrap_or(0);
        for (i, (index, _, share)) in versions.iter().enumerate() {
            if i != chosen {
                census.remove(share);
                selected.stale.insert(*index);
                stale += 1;
            }
        }
    }
    Ok(stale)
}

/// A record as `score` writes it: the record, then its unknown fields in key order.
pub fn encode(record: &PractitionerText, extras: &Map<String, Value>) -> Result<String> {
    let mut value = serde_json::to_string(record).context("cannot encode a record")?;
    if !extras.is_empty() {
        value.pop(); // the closing brace of the object serde_json just wrote
        for (k, v) in extras {
            value.push(',');
            value.push_str(&serde_json::to_string(k)?);
            value.push(':');
            value.push_str(&serde_json::to_string(v)?);
        }
        value.push('}');
    }
    Ok(value)
}

/// Writes every record out, in the file's order: the scored record in place of each kept code's
/// chosen record, each other record as it was read (encoded again), stale ones left out; then the
/// codes only in the ledger. The file is read once more.
pub fn write_all(
    path: &Path,
    selected: &Selected,
    scored: &Scored,
    encoded: &[String],
    progress: &Progress,
    out: &mut impl Write,
) -> Result<u64> {
    // Kept record position → the scored record that replaces it (only the chosen version has one).
    let mut replaced: HashMap<u64, usize> = HashMap::new();
    let mut kept_at: HashSet<u64> = HashSet::new();
    for k in &selected.kept {
        kept_at.insert(k.index);
    }
    for (i, r) in scored.records.iter().enumerate() {
        if let Some(g) = r.input {
            replaced.insert(selected.kept[g].index, i);
        }
    }
    let skip = |index: u64| kept_at.contains(&index) || selected.stale.contains(&index);
    let mut written = 0u64;
    // The record positions of a chunk are not known on the worker threads; untouched lines are
    // encoded there and the kept or stale ones are replaced or dropped in order.
    let (records, _) = pass(
        path,
        progress,
        "practitioners (writing all)",
        |name, n, line| {
            let (text, _) = parse(name, n, line)?;
            encode(&text, &extras(name, n, line)?)
        },
        |index, _, value| {
            if let Some(i) = replaced.get(&index) {
                out.write_all(encoded[*i].as_bytes())?;
            } else if skip(index) {
                return Ok(());
            } else {
                out.write_all(value.as_bytes())?;
            }
            out.write_all(b"\n")?;
            written += 1;
            Ok(())
        },
    )?;
    if records != selected.records {
        bail!("{}: changed while it was being read ({} records, then {records})", selected.name, selected.records);
    }
    for (i, _) in scored.records.iter().enumerate().filter(|(_, r)| r.input.is_none()) {
        out.write_all(encoded[i].as_bytes())?;
        out.write_all(b"\n")?;
        written += 1;
    }
    Ok(written)
}
