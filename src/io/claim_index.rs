//! The claim index by code: what a nightly `review --claims-topic … --index-dir DIR` writes, so that
//! `review --retro --index-dir DIR` fetches only the lines that name a changed code instead of
//! re-reading a month of the claims topic (issue 13, item 2; docs/recovery-report.md).
//!
//! One file per nightly run, `DIR/<topic>@<from>..<until>.cgidx`, written to a temporary name, synced
//! and renamed into place. Format (little-endian, the snapshot's conventions, `table::snapshot`):
//!
//! ```text
//! magic     8 bytes  b"CGCIDX\r\n"
//! format    u32      FORMAT
//! header    bincode 2 (standard, fixed-width integers, little-endian, limited): Header
//! body      Header::body_len bytes: one entry per key, keys in byte order
//! checksum  u32      CRC-32 of header and body
//! ```
//!
//! A key is a kind byte and a code: `P` and a person code as a line names it (any of the three person
//! fields), `I` and an institution code. The same format indexes a **decision topic** (the nightly
//! run's `--previous-topic`s, one file per topic, its header naming the topic): there a key is `L` and
//! a line identity's hash, 8 bytes big-endian ([`identity_key`]), listing the decision records of that
//! line. An entry is
//!
//! ```text
//! shared    varint   bytes in common with the previous key (front coding)
//! suffix    varint length, then the bytes
//! postings  varint length in bytes, then: varint groups; per group: varint partition slot (an index
//!           into Header::ranges), varint count, varint (first offset - the range's start), then
//!           count - 1 varint gaps to the next offset
//! ```
//!
//! What an index **covers**: every message of `ranges` whose timestamp lies in `[from_ms, until_ms)`
//! and that parses as a claim line is listed under each of its codes. A message that does not parse is
//! in no index (a late-change review never chooses it either). The writer never claims a window that
//! had not ended when it read the topic (see [`covered_until`]). A decision index covers every decision
//! record of its ranges stamped in its window (the claims' window of the same run); it may also list
//! decisions stamped after it (the decision topics are read to their end), which a reader keeps or
//! leaves by their timestamps.
//!
//! A file that cannot be used — unreadable, truncated, another magic or format, a checksum or a
//! structure that does not match — gives an [`IndexError`] naming why; the caller names the file.
//! Decoding is bounds-checked throughout: no input makes it panic.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};
use rustc_hash::FxHashMap;

use claimgate::record::{Claim, Role};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CGCIDX\r\n";
/// The layout version this build writes and reads.
pub const FORMAT: u32 = 1;
/// The file name ending.
pub const EXTENSION: &str = "cgidx";

/// The header may claim no more than this (it holds a few strings and one triple per partition).
const HEADER_LIMIT: usize = 1 << 20;

fn config() -> Configuration<LittleEndian, Fixint, Limit<HEADER_LIMIT>> {
    bincode::config::standard().with_fixed_int_encoding().with_little_endian().with_limit::<HEADER_LIMIT>()
}

/// What an index says about itself; readable without reading its body.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// The program version that wrote it.
    pub writer: String,
    /// When it was written (Beijing time text).
    pub created_at: String,
    /// The topic indexed: the claims topic, or a decision topic.
    pub topic: String,
    /// The record times covered, `[from_ms, until_ms)`, Unix milliseconds.
    pub from_ms: i64,
    /// End of the covered record times, exclusive.
    pub until_ms: i64,
    /// `(partition, first offset read, end)` per partition, in partition order.
    pub ranges: Vec<(i32, i64, i64)>,
    /// Lines listed.
    pub lines: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Bytes of the body.
    pub body_len: u64,
}

/// Why an index file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Not a claimgate claim index.
    #[error("not a claimgate claim index (bad magic bytes)")]
    Magic,
    /// Another format version.
    #[error(
        "claim index format {found}, this build reads only format {FORMAT}: run the nightly review again to rebuild it"
    )]
    Version {
        /// The version found.
        found: u32,
    },
    /// Shorter than its header says.
    #[error("truncated claim index: {0}")]
    Truncated(String),
    /// The bytes do not decode.
    #[error("corrupt claim index: {0}")]
    Corrupt(String),
    /// The checksum does not match.
    #[error("corrupt claim index: checksum mismatch")]
    Checksum,
}

/// The key of a person code.
pub fn person_key(code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(code.len() + 1);
    k.push(b'P');
    k.extend_from_slice(code.as_bytes());
    k
}

/// The key of an institution code (its 12 bytes).
pub fn institution_key(code: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(code.len() + 1);
    k.push(b'I');
    k.extend_from_slice(code);
    k
}

/// The key of a line's identity (institution, visit, serial, hashed as `--previous` hashes it): what
/// a decision index lists a decision record under. A decision record names the billing practitioner
/// only, not the other two person fields a late change may name, so decisions are indexed by the
/// identity of their line and looked up by the identities of the claim lines chosen.
pub fn identity_key(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'L');
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Collects the lines of a read by code; one per worker, merged at the end.
#[derive(Default)]
pub struct Builder {
    ids: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<Box<[u8]>>,
    /// `(key id, partition, offset)`.
    postings: Vec<(u32, i32, i64)>,
    lines: u64,
    scratch: Vec<u8>,
}

impl Builder {
    fn id(&mut self) -> u32 {
        if let Some(id) = self.ids.get(self.scratch.as_slice()) {
            return *id;
        }
        let id = self.keys.len() as u32;
        let key: Box<[u8]> = self.scratch.as_slice().into();
        self.keys.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Lists a line under each of its codes.
    pub fn line(&mut self, claim: &Claim<'_>, partition: i32, offset: i64) {
        self.lines += 1;
        for role in Role::ALL {
            if let Some(code) = claim.code(role) {
                self.scratch.clear();
                self.scratch.push(b'P');
                self.scratch.extend_from_slice(code.as_bytes());
                let id = self.id();
                self.postings.push((id, partition, offset));
            }
        }
        self.scratch.clear();
        self.scratch.push(b'I');
        self.scratch.extend_from_slice(&claim.fixmedins_code.to_bytes());
        let id = self.id();
        self.postings.push((id, partition, offset));
    }

    /// Lists one record under one key (a decision under its line's [`identity_key`]).
    pub fn entry(&mut self, key: &[u8], partition: i32, offset: i64) {
        self.lines += 1;
        self.scratch.clear();
        self.scratch.extend_from_slice(key);
        let id = self.id();
        self.postings.push((id, partition, offset));
    }

    /// Takes in another worker's lines.
    pub fn merge(&mut self, other: Builder) {
        let map: Vec<u32> = other
            .keys
            .into_iter()
            .map(|k| {
                self.scratch.clear();
                self.scratch.extend_from_slice(&k);
                self.id()
            })
            .collect();
        self.postings.extend(other.postings.into_iter().map(|(id, p, o)| (map[id as usize], p, o)));
        self.lines += other.lines;
    }

    /// Lines listed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The body and its key count; postings of partitions outside `ranges` (none, by construction)
    /// would be dropped.
    fn body(mut self, ranges: &[(i32, i64, i64)]) -> (Vec<u8>, u64) {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.keys[*a as usize].cmp(&self.keys[*b as usize]));
        let mut rank = vec![0u32; self.keys.len()];
        for (r, id) in order.iter().enumerate() {
            rank[*id as usize] = r as u32;
        }
        let slot = |p: i32| ranges.iter().position(|r| r.0 == p);
        let mut post: Vec<(u32, u32, i64)> =
            self.postings.drain(..).filter_map(|(id, p, o)| Some((rank[id as usize], slot(p)? as u32, o))).collect();
        post.sort_unstable();
        post.dedup();
        let mut body = Vec::with_capacity(post.len() * 4);
        let mut previous: &[u8] = &[];
        let mut postings = Vec::new();
        let mut i = 0;
        let mut keys = 0;
        while i < post.len() {
            let r = post[i].0;
            let key = &self.keys[order[r as usize] as usize];
            let shared = key.iter().zip(previous).take_while(|(a, b)| a == b).count();
            varint(&mut body, shared as u64);
            varint(&mut body, (key.len() - shared) as u64);
            body.extend_from_slice(&key[shared..]);
            previous = key;
            keys += 1;
            let j = i + post[i..].iter().take_while(|e| e.0 == r).count();
            postings.clear();
            let groups = &post[i..j];
            let mut g = 0;
            let mut n_groups = 0u64;
            let mut encoded = Vec::new();
            while g < groups.len() {
                let s = groups[g].1;
                let h = g + groups[g..].iter().take_while(|e| e.1 == s).count();
                varint(&mut encoded, u64::from(s));
                varint(&mut encoded, (h - g) as u64);
                let start = ranges[s as usize].1;
                let mut last = start;
                for (k, e) in groups[g..h].iter().enumerate() {
                    // Offsets were read from the range, so each is at or after its start; sorted and
                    // deduplicated, each gap after the first is at least 1.
                    let gap = if k == 0 { e.2 - start } else { e.2 - last };
                    varint(&mut encoded, gap.max(0) as u64);
                    last = e.2;
                }
                n_groups += 1;
                g = h;
            }
            varint(&mut postings, n_groups);
            postings.extend_from_slice(&encoded);
            varint(&mut body, postings.len() as u64);
            body.extend_from_slice(&postings);
            i = j;
        }
        (body, keys)
    }

    /// Writes the index of `topic` over `ranges` covering record times `[from_ms, until_ms)` into
    /// `dir`, atomically; returns its path and size in bytes.
    pub fn write(
        self,
        dir: &Path,
        topic: &str,
        (from_ms, until_ms): (i64, i64),
        ranges: Vec<(i32, i64, i64)>,
        created_at: &str,
    ) -> Result<(PathBuf, u64), IndexError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(topic, from_ms, until_ms));
        let lines = self.lines;
        let (body, keys) = self.body(&ranges);
        let header = Header {
            writer: concat!("claimgate ", env!("CARGO_PKG_VERSION")).to_owned(),
            created_at: created_at.to_owned(),
            topic: topic.to_owned(),
            from_ms,
            until_ms,
            ranges,
            lines,
            keys,
            body_len: body.len() as u64,
        };
        let head = bincode::encode_to_vec(&header, config()).map_err(|e| IndexError::Corrupt(e.to_string()))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&body);
        let tmp = path.with_extension(format!("{EXTENSION}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&MAGIC)?;
        f.write_all(&FORMAT.to_le_bytes())?;
        f.write_all(&head)?;
        f.write_all(&body)?;
        f.write_all(&crc.finalize().to_le_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        let size = (MAGIC.len() + 4 + head.len() + body.len() + 4) as u64;
        Ok((path, size))
    }
}

/// The file name of an index: the topic (characters other than letters, digits, `.`, `_`, `-`
/// replaced) and the covered record times as Unix milliseconds.
pub fn file_name(topic: &str, from_ms: i64, until_ms: i64) -> String {
    let safe: String =
        topic.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    format!("{safe}@{from_ms}..{until_ms}.{EXTENSION}")
}

/// The end of the record times a read planned at `planned_ms` covers: the window's end, but never past
/// what could still be stored (`late_ms` before the read began), so an index never claims lines that
/// were yet to come.
/// Whole seconds, as Beijing times on the command line are.
pub fn covered_until(until_ms: i64, planned_ms: i64, late_ms: i64) -> i64 {
    let end = until_ms.min(planned_ms.saturating_sub(late_ms));
    end - end.rem_euclid(1000)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over bytes that fails instead of reading past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, IndexError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b =
                *self.bytes.get(self.at).ok_or_else(|| IndexError::Corrupt("an entry runs past the body".into()))?;
            self.at += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(IndexError::Corrupt("a number longer than 64 bits".into()))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], IndexError> {
        let n = usize::try_from(n).map_err(|_| IndexError::Corrupt("a length out of range".into()))?;
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| IndexError::Corrupt("an entry runs past the body".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
}

/// Reads the header of an index file (not its body, not its checksum): enough to choose the files
/// that cover a span.
pub fn read_header(path: &Path) -> Result<Header, IndexError> {
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 12];
    f.read_exact(&mut magic).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => IndexError::Truncated("shorter than its magic and format".into()),
        _ => IndexError::Io(e),
    })?;
    check_magic(&magic)?;
    let mut f = io::BufReader::new(f);
    bincode::decode_from_std_read(&mut f, config()).map_err(header_error)
}

fn header_error(e: bincode::error::DecodeError) -> IndexError {
    use bincode::error::DecodeError;
    match &e {
        DecodeError::UnexpectedEnd { .. } => IndexError::Truncated("its header".into()),
        DecodeError::Io { inner, .. } if inner.kind() == io::ErrorKind::UnexpectedEof => {
            IndexError::Truncated("its header".into())
        }
        _ => IndexError::Corrupt(format!("its header: {e}")),
    }
}

fn check_magic(head: &[u8]) -> Result<(), IndexError> {
    if head.len() < 12 {
        return Err(IndexError::Truncated("shorter than its magic and format".into()));
    }
    if head[..8] != MAGIC {
        return Err(IndexError::Magic);
    }
    let found = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if found != FORMAT {
        return Err(IndexError::Version { found });
    }
    Ok(())
}

/// An index file read whole and checked.
pub struct Index {
    /// What it says about itself.
    pub header: Header,
    body: Vec<u8>,
}

impl Index {
    /// Reads and checks an index file: magic, format, header, length, checksum, nothing after.
    pub fn read(path: &Path) -> Result<Index, IndexError> {
        let bytes = std::fs::read(path)?;
        Index::from_bytes(bytes)
    }

    /// As [`Index::read`], from the file's bytes.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Result<Index, IndexError> {
        check_magic(&bytes)?;
        let (header, used): (Header, usize) =
            bincode::decode_from_slice(&bytes[12..], config()).map_err(header_error)?;
        let body_at = 12 + used;
        let body_len = usize::try_from(header.body_len).map_err(|_| IndexError::Corrupt("body length".into()))?;
        let expected = body_at.checked_add(body_len).and_then(|n| n.checked_add(4));
        let expected = expected.ok_or_else(|| IndexError::Corrupt("body length".into()))?;
        if bytes.len() < expected {
            return Err(IndexError::Truncated(format!("{} bytes, its header says {expected}", bytes.len())));
        }
        if bytes.len() > expected {
            return Err(IndexError::Corrupt(format!("{} bytes after its checksum", bytes.len() - expected)));
        }
        let stored = &bytes[expected - 4..];
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        if crc32fast::hash(&bytes[12..expected - 4]) != stored {
            return Err(IndexError::Checksum);
        }
        bytes.truncate(expected - 4);
        let body = bytes.split_off(body_at);
        Ok(Index { header, body })
    }

    /// The `(partition, offset)` of every line listed under one of `keys`, sorted, without repeats.
    pub fn find(&self, keys: &[Vec<u8>]) -> Result<Vec<(i32, i64)>, IndexError> {
        let mut wanted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut out = Vec::new();
        let mut c = Cursor { bytes: &self.body, at: 0 };
        let mut key: Vec<u8> = Vec::new();
        let mut seen = 0u64;
        while c.at < c.bytes.len() && !wanted.is_empty() {
            let shared = c.varint()?;
            if shared > key.len() as u64 {
                return Err(IndexError::Corrupt("a key shares more than the previous one holds".into()));
            }
            key.truncate(shared as usize);
            let n = c.varint()?;
            key.extend_from_slice(c.take(n)?);
            let n = c.varint()?;
            let postings = c.take(n)?;
            seen += 1;
            // Keys are in byte order: the wanted ones before this key are not in the file.
            while wanted.first().is_some_and(|w| *w < key.as_slice()) {
                wanted.remove(0);
            }
            if wanted.first().is_some_and(|w| *w == key.as_slice()) {
                wanted.remove(0);
                self.postings(postings, &mut out)?;
            }
        }
        if wanted.is_empty() || seen == self.header.keys {
            out.sort_unstable();
            out.dedup();
            return Ok(out);
        }
        Err(IndexError::Corrupt(format!("{seen} keys in the body, its header says {}", self.header.keys)))
    }

    fn postings(&self, bytes: &[u8], out: &mut Vec<(i32, i64)>) -> Result<(), IndexError> {
        let mut c = Cursor { bytes, at: 0 };
        let groups = c.varint()?;
        for _ in 0..groups {
            let slot = c.varint()?;
            let range = usize::try_from(slot).ok().and_then(|s| self.header.ranges.get(s));
            let &(partition, start, end) =
                range.ok_or_else(|| IndexError::Corrupt(format!("partition slot {slot} out of range")))?;
            let count = c.varint()?;
            let mut offset = start;
            for k in 0..count {
                let gap = i64::try_from(c.varint()?).map_err(|_| IndexError::Corrupt("an offset gap".into()))?;
                offset = offset.checked_add(gap).ok_or_else(|| IndexError::Corrupt("an offset".into()))?;
                if offset >= end || (k > 0 && gap == 0) {
                    return Err(IndexError::Corrupt(format!("offset {offset} outside {partition}'s range")));
                }
                out.push((partition, offset));
            }
        }
        if c.at != bytes.len() {
            return Err(IndexError::Corrupt("postings longer than their groups".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(serial: u32, doctor: &str, orders: Option<&str>, inst: &str) -> String {
        let orders = orders.map_or(String::new(), |o| format!(r#","orders_dr_code":"{o}""#));
        format!(
            r#"{{"feedetl_sn":"{serial}","fixmedins_code":"{inst}","mdtrt_id":"M","psn_no":"P","med_type":"11","fee_ocur_time":"2026-03-05 10:00:00","bilg_dr_codg":"{doctor}"{orders},"det_item_fee_sumamt":"1.00"}}"#
        )
    }

    /// An index of `n` lines over two partitions: doctor `D{i % 1000}`, every 7th line also ordered
    /// by `N1`, institutions `H…01` and `H…02` alternately; built by two workers.
    fn build(dir: &Path, n: u32) -> (PathBuf, u64) {
        let mut a = Builder::default();
        let mut b = Builder::default();
        for i in 0..n {
            let text = line(
                i,
                &format!("D{:012}", i % 1000),
                (i % 7 == 0).then_some("N110105000001"),
                if i % 2 == 0 { "H11010500001" } else { "H11010500002" },
            );
            let claim = Claim::parse(text.as_bytes()).unwrap();
            let (p, o) = ((i % 2) as i32, 1000 + i64::from(i / 2));
            if i < n / 2 { a.line(&claim, p, o) } else { b.line(&claim, p, o) }
        }
        a.merge(b);
        let end = 1000 + i64::from(n);
        a.write(dir, "claims", (0, 86_400_000), vec![(0, 1000, end), (1, 1000, end)], "2026-03-06 00:00:00").unwrap()
    }

    #[test]
    fn lines_are_found_by_any_of_their_codes_and_a_line_costs_a_few_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, size) = build(dir.path(), 100_000);
        assert_eq!(path.file_name().unwrap(), "claims@0..86400000.cgidx");
        let index = Index::read(&path).unwrap();
        assert_eq!((index.header.lines, index.header.keys), (100_000, 1000 + 1 + 2));
        // D000000000007: lines 7, 1007, 2007, …: odd, so partition 1, offset 1000 + i / 2.
        let found = index.find(&[person_key("D000000000007")]).unwrap();
        assert_eq!(found.len(), 100);
        assert_eq!(found[0], (1, 1003));
        assert_eq!(found[1], (1, 1503));
        let orders = index.find(&[person_key("N110105000001")]).unwrap();
        assert_eq!(orders.len(), (0..100_000).filter(|i| i % 7 == 0).count());
        let inst = index.find(&[institution_key(b"H11010500002")]).unwrap();
        assert_eq!(inst.len(), 50_000);
        assert!(inst.iter().all(|(p, _)| *p == 1));
        // Several keys at once, one of them absent: the union, sorted.
        let both =
            index.find(&[person_key("D000000000007"), person_key("absent"), person_key("D000000000008")]).unwrap();
        assert_eq!(both.len(), 200);
        assert!(both.windows(2).all(|w| w[0] < w[1]));
        assert!(index.find(&[person_key("D1")]).unwrap().is_empty());
        // Compact: a line names three or four keys here.
        let per_line = size as f64 / 100_000.0;
        assert!(per_line < 8.0, "{per_line} bytes per line");
    }

    #[test]
    fn a_truncated_corrupt_or_foreign_file_is_refused_with_the_reason_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = build(dir.path(), 2000);
        let good = std::fs::read(&path).unwrap();
        let why = |bytes: Vec<u8>| Index::from_bytes(bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(why(good[..good.len() - 100].to_vec()).contains("truncated"));
        assert!(why(good[..20].to_vec()).contains("truncated"));
        let half = dir.path().join("half.cgidx");
        std::fs::write(&half, &good[..30]).unwrap();
        assert!(read_header(&half).unwrap_err().to_string().contains("truncated"));
        assert!(why(good[..5].to_vec()).contains("truncated"));
        let mut flipped = good.clone();
        let at = good.len() - 50;
        flipped[at] ^= 0x40;
        assert!(why(flipped).contains("checksum"));
        let mut version = good.clone();
        version[8] = 2;
        assert!(why(version).contains("format 2, this build reads only format 1"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(why(magic).contains("not a claimgate claim index"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(why(longer).contains("after its checksum"));
        // The header alone is read for choosing; it says the same of a foreign format.
        std::fs::write(dir.path().join("v2.cgidx"), {
            let mut v = good.clone();
            v[8] = 2;
            v
        })
        .unwrap();
        assert!(read_header(&dir.path().join("v2.cgidx")).unwrap_err().to_string().contains("format 2"));
        assert_eq!(read_header(&path).unwrap().lines, 2000);
        // Every truncation and every flipped byte gives an error or the right answer, never a panic.
        for n in 0..good.len() {
            let _ = Index::from_bytes(good[..n].to_vec());
        }
        for at in 12..good.len() {
            let mut b = good.clone();
            b[at] ^= 0xFF;
            if let Ok(i) = Index::from_bytes(b) {
                let _ = i.find(&[person_key("D000000000007")]);
            }
        }
    }

    #[test]
    fn decisions_are_found_by_their_line_identity_in_the_same_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Builder::default();
        // 10 000 decisions over three partitions; identity i * 7919 (hash-like spread), one repeated.
        for i in 0..10_000u64 {
            b.entry(&identity_key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), (i % 3) as i32, 500 + (i / 3) as i64);
        }
        b.entry(&identity_key(42u64.wrapping_mul(0x9E37_79B9_7F4A_7C15)), 1, 500 + 4000);
        assert_eq!(b.lines(), 10_001);
        let ranges = vec![(0, 500, 5000), (1, 500, 5000), (2, 500, 5000)];
        let (path, _) = b.write(dir.path(), "claims.accepted", (0, 1000), ranges, "now").unwrap();
        assert_eq!(path.file_name().unwrap(), "claims.accepted@0..1000.cgidx");
        let index = Index::read(&path).unwrap();
        assert_eq!((index.header.topic.as_str(), index.header.keys), ("claims.accepted", 10_000));
        let key = |i: u64| identity_key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        assert_eq!(index.find(&[key(7)]).unwrap(), [(1, 502)]);
        assert_eq!(index.find(&[key(42), key(3)]).unwrap(), [(0, 501), (0, 514), (1, 4500)]);
        assert!(index.find(&[identity_key(1)]).unwrap().is_empty());
    }

    #[test]
    fn the_covered_window_never_reaches_past_what_was_stored_when_the_read_began() {
        assert_eq!(covered_until(1_000, 5_000, 600), 1_000);
        assert_eq!(covered_until(10_000, 5_000, 600), 4_000);
        assert_eq!(covered_until(10_000, 5_700, 600), 5_000);
    }
}
