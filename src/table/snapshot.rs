//! The binary snapshot of the status tables: what `claimgate tables build` writes and what `review` and
//! `stream` load in seconds.
//!
//! Format (all little-endian):
//!
//! ```text
//! magic        8 bytes   b"CGSNAP\r\n"   (the CR LF catches text-mode mangling, as in PNG)
//! format       u32       FORMAT_VERSION
//! header       bincode 2 (standard config, fixed-width integers, little-endian): Header
//! shard bits   u32: the practitioner table is 2^bits shards (see `BaseTable`), each as follows:
//!   table meta   bincode 2: the shard's small parts, with the lengths of the two arrays
//!   slots        slot_count × (key u64, offset u32, zero u32), little-endian: the slot array byte for
//!                byte as it sits in memory; an offset's top bit marks a code that points at a tombstone
//!   words        word_count × u64, little-endian (the record arena), as it sits in memory
//! institutions bincode 2: the institution records
//! checksum     u32       CRC-32 of everything after the format word
//! ```
//!
//! The two large arrays (99.9% of the file at 12 million codes) are read straight into the memory the
//! table keeps, a mebibyte at a time, each piece checksummed while it is still in cache: no per-record
//! decoding, no per-record check (format 2 decoded each slot; format 3 also checked every offset, one
//! random memory read per code, about a second at 12 million codes). The checksum vouches for the
//! arrays; the table's accessors stay in bounds whatever the arrays hold, and
//! `claimgate tables inspect --verify` checks every offset when wanted. The small parts stay in
//! bincode. While an array is read, a second thread has the kernel make its pages ready ahead of the
//! reader (`populate`): zeroing fresh memory was more than half of the load's samples (2026-11-30).
//!
//! Format 4 files (one table, no shard bits) are still read, as a table of one shard.
//!
//! The magic and the format version come before anything bincode writes, so a future format (another
//! encoder, since bincode is no longer maintained) can be told apart and refused with a clear message.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

use super::institution::StoredInstitution;
use super::practitioner::{Meta, Slot, hint_huge_pages};
use super::{BaseTable, InstitutionTable, MAX_SHARD_BITS, PractitionerTable, View};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CGSNAP\r\n";
/// The layout version this build writes and reads (1: every array as a bincode sequence; 2: the two
/// large arrays raw; 3: the tombstone mark in each slot's offset, so a lookup reads only the slot;
/// 4: slots of 16 bytes as they sit in memory, loaded without per-record work; 5: the practitioner
/// table in shards).
pub const FORMAT_VERSION: u32 = 5;

/// The oldest format this build still reads (format 4 is format 5 with one shard).
pub const OLDEST_READ: u32 = 4;

/// No snapshot section may claim more than this many bytes. A corrupt length then fails to decode
/// instead of asking the allocator for an impossible amount; a 12-million-code table is under 1 GiB.
const LIMIT: usize = 16 << 30;

fn config() -> Configuration<LittleEndian, Fixint, Limit<LIMIT>> {
    bincode::config::standard().with_fixed_int_encoding().with_little_endian().with_limit::<LIMIT>()
}

/// What a snapshot says about itself; readable without loading the tables.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// The program version that wrote it.
    pub writer: String,
    /// When it was written (Beijing time text), as supplied by the caller.
    pub created_at: String,
    /// The table epoch of its content.
    pub epoch: u64,
    /// Live practitioner codes.
    pub practitioners: u64,
    /// Institutions.
    pub institutions: u64,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Not a claimgate snapshot.
    #[error("not a claimgate snapshot (bad magic bytes)")]
    Magic,
    /// A snapshot of another format version.
    #[error(
        "snapshot format {found}, this build reads only formats {OLDEST_READ} to {FORMAT_VERSION}: rebuild the snapshot with \
         this build's `claimgate tables build` (from the JSON Lines tables, or from the status topics)"
    )]
    Version {
        /// The version found.
        found: u32,
    },
    /// The bytes do not decode.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    /// The checksum does not match.
    #[error("corrupt snapshot: checksum mismatch")]
    Checksum,
}

struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes a view's tables. The view must have no delta (a freshly built or compacted table).
pub fn write(out: impl Write, view: &View, created_at: &str) -> Result<Header, SnapshotError> {
    let header = Header {
        writer: concat!("claimgate ", env!("CARGO_PKG_VERSION")).to_owned(),
        created_at: created_at.to_owned(),
        epoch: view.epoch(),
        practitioners: view.base().len() as u64,
        institutions: view.institutions().len() as u64,
    };
    let mut out = out;
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    let mut w = CrcWriter { inner: out, crc: crc32fast::Hasher::new() };
    let enc = |e: bincode::error::EncodeError| SnapshotError::Corrupt(e.to_string());
    bincode::encode_into_std_write(&header, &mut w, config()).map_err(enc)?;
    let base = view.base();
    bincode::encode_into_std_write(base.shard_bits(), &mut w, config()).map_err(enc)?;
    for table in base.shards() {
        bincode::encode_into_std_write(table.meta(), &mut w, config()).map_err(enc)?;
        write_le(&mut w, table.slots())?;
        write_le(&mut w, table.words())?;
    }
    bincode::encode_into_std_write(view.institutions().stored(), &mut w, config()).map_err(enc)?;
    let crc = w.crc.finalize();
    w.inner.write_all(&crc.to_le_bytes())?;
    w.inner.flush()?;
    Ok(header)
}

/// Bytes moved per bulk read or write: small enough that a piece is still in cache when the checksum
/// reads it.
const CHUNK: usize = 1 << 20;

/// Writes a plain array as little-endian bytes: as it sits in memory on a little-endian machine.
fn write_le<T: bytemuck::Pod + ToLe>(w: &mut impl Write, items: &[T]) -> io::Result<()> {
    if cfg!(target_endian = "little") {
        for piece in bytemuck::cast_slice::<T, u8>(items).chunks(CHUNK) {
            w.write_all(piece)?;
        }
    } else {
        for chunk in items.chunks(CHUNK / std::mem::size_of::<T>().max(1)) {
            let swapped: Vec<T> = chunk.iter().map(|x| x.to_le()).collect();
            w.write_all(bytemuck::cast_slice(&swapped))?;
        }
    }
    Ok(())
}

/// Byte order of the plain arrays (a no-op on little-endian machines).
trait ToLe: Copy {
    fn to_le(self) -> Self;
}

impl ToLe for u64 {
    fn to_le(self) -> Self {
        u64::to_le(self)
    }
}

impl ToLe for Slot {
    fn to_le(self) -> Self {
        Slot { key: self.key.to_le(), at: self.at.to_le(), pad: self.pad.to_le() }
    }
}

/// Reads `n` plain items straight into the memory the table keeps: zeroed pages from the allocator
/// (huge pages asked for before they are touched), filled a piece at a time, each piece checksummed
/// right after it is read. A corrupt length fails on the input's end, having only reserved address
/// space.
fn read_plain<T: bytemuck::Pod + ToLe>(r: &mut CrcReader<impl Read>, n: u64) -> Result<Vec<T>, SnapshotError> {
    let size = std::mem::size_of::<T>() as u64;
    if n.saturating_mul(size) > LIMIT as u64 {
        return Err(SnapshotError::Corrupt(format!("an array of {n} items is beyond any table")));
    }
    let mut out: Vec<T> = bytemuck::zeroed_vec(n as usize);
    hint_huge_pages(&out);
    let bytes = bytemuck::cast_slice_mut::<T, u8>(&mut out);
    let (addr, len) = (bytes.as_mut_ptr() as usize, bytes.len());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if len >= POPULATE_FROM {
            s.spawn(|| populate(addr, len, &done));
        }
        let read = fill(r, bytes);
        done.store(true, Ordering::Relaxed);
        read
    })?;
    if cfg!(target_endian = "big") {
        for x in &mut out {
            *x = x.to_le();
        }
    }
    Ok(out)
}

/// Fills `bytes` from the input a piece at a time, each piece checksummed right after it is read.
fn fill(r: &mut CrcReader<impl Read>, bytes: &mut [u8]) -> Result<(), SnapshotError> {
    for piece in bytes.chunks_mut(CHUNK) {
        r.inner.read_exact(piece).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Corrupt("truncated".into()),
            _ => SnapshotError::Io(e),
        })?;
        r.crc.update(piece);
    }
    Ok(())
}

/// Arrays from this size on have their pages made ready by a second thread while they are read.
const POPULATE_FROM: usize = 4 << 20;

/// Asks the kernel to back the `len` bytes at `addr` with writable pages now (`MADV_POPULATE_WRITE`), in
/// order, 2 MiB at a time, until done or `done` is set. Run beside the thread that reads the array: the
/// kernel's zeroing of fresh memory (56 % of a 12-million-code load's samples in the 2026-11-30
/// profile, BENCHMARKS.md) then happens on a second core, ahead of the copy. It never changes what the
/// memory holds — a page already there is left as it is, one not there yet reads as zeros either way —
/// so it may run behind the reader or stop early (an older kernel without the advice: the reader
/// faults the pages in itself, as before).
fn populate(addr: usize, len: usize, done: &AtomicBool) {
    #[cfg(target_os = "linux")]
    {
        const STEP: usize = 2 << 20;
        let Some((mut at, end)) = super::practitioner::whole_pages(addr, len) else { return };
        while at < end && !done.load(Ordering::Relaxed) {
            let n = STEP.min(end - at);
            // SAFETY: the pages named lie in the live allocation the reader is filling (its first and
            // last page perhaps shared with a neighbour of the same heap); MADV_POPULATE_WRITE only
            // faults pages in and never changes their contents, so no byte the reader or anyone else
            // sees changes.
            if unsafe { libc::madvise(at as *mut libc::c_void, n, libc::MADV_POPULATE_WRITE) } != 0 {
                return;
            }
            at += n;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len, done);
}

fn read_preamble(input: &mut impl Read) -> Result<u32, SnapshotError> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::Magic,
        _ => SnapshotError::Io(e),
    })?;
    if magic != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let mut version = [0u8; 4];
    input.read_exact(&mut version)?;
    let found = u32::from_le_bytes(version);
    if !(OLDEST_READ..=FORMAT_VERSION).contains(&found) {
        return Err(SnapshotError::Version { found });
    }
    Ok(found)
}

fn dec(e: bincode::error::DecodeError) -> SnapshotError {
    match e {
        bincode::error::DecodeError::Io { inner, .. } => SnapshotError::Io(inner),
        other => SnapshotError::Corrupt(other.to_string()),
    }
}

/// Reads only the header.
pub fn read_header(mut input: impl Read) -> Result<Header, SnapshotError> {
    read_preamble(&mut input)?;
    bincode::decode_from_std_read(&mut input, config()).map_err(dec)
}

/// Reads a whole snapshot into a view, checking the checksum and every offset.
pub fn read(mut input: impl Read) -> Result<(Header, View), SnapshotError> {
    let format = read_preamble(&mut input)?;
    let mut r = CrcReader { inner: input, crc: crc32fast::Hasher::new() };
    let header: Header = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
    let bits: u32 = if format >= 5 { bincode::decode_from_std_read(&mut r, config()).map_err(dec)? } else { 0 };
    if bits > MAX_SHARD_BITS {
        return Err(SnapshotError::Corrupt(format!("{bits} shard bits, at most {MAX_SHARD_BITS}")));
    }
    let mut shards = Vec::with_capacity(1 << bits);
    for _ in 0..1u32 << bits {
        let meta: Meta = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
        let slots: Vec<Slot> = read_plain(&mut r, meta.slot_count)?;
        let words: Vec<u64> = read_plain(&mut r, meta.word_count)?;
        shards.push((meta, slots, words));
    }
    let institutions: Vec<StoredInstitution> = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
    let computed = r.crc.finalize();
    let mut trailer = [0u8; 4];
    r.inner.read_exact(&mut trailer)?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(SnapshotError::Checksum);
    }
    let shards = shards
        .into_iter()
        .map(|(meta, slots, words)| PractitionerTable::from_parts(meta, slots, words, bits))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SnapshotError::Corrupt)?;
    let practitioners = BaseTable::from_shards(bits, shards).map_err(SnapshotError::Corrupt)?;
    let institutions = InstitutionTable::from_stored(institutions).map_err(SnapshotError::Corrupt)?;
    let view = View::from_base(practitioners, institutions);
    if view.epoch() != header.epoch {
        return Err(SnapshotError::Corrupt("content does not match the header's epoch".into()));
    }
    Ok((header, view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InstitutionText, PractitionerKey, PractitionerText};

    #[test]
    fn a_large_array_is_read_whole_beside_its_pages_being_populated_and_a_short_one_is_refused() {
        // 10 MiB: past POPULATE_FROM, so the second thread runs (on Linux) while the array is read.
        let n = (10 << 20) / 8;
        let words: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut r = CrcReader { inner: &bytes[..], crc: crc32fast::Hasher::new() };
        let read: Vec<u64> = read_plain(&mut r, n as u64).unwrap();
        assert!(read == words, "the array read back differs");
        assert_eq!(r.crc.finalize(), crc32fast::hash(&bytes));

        let mut short = CrcReader { inner: &bytes[..bytes.len() - 1], crc: crc32fast::Hasher::new() };
        match read_plain::<u64>(&mut short, n as u64) {
            Err(SnapshotError::Corrupt(why)) => assert_eq!(why, "truncated"),
            other => panic!("a truncated array gave {:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn populating_pages_never_changes_what_they_hold() {
        let mut v: Vec<u64> = bytemuck::zeroed_vec(3 << 20);
        let half = v.len() / 2;
        for (i, x) in v[..half].iter_mut().enumerate() {
            *x = i as u64 + 1;
        }
        populate(v.as_mut_ptr() as usize, v.len() * 8, &AtomicBool::new(false));
        assert!(v[..half].iter().enumerate().all(|(i, x)| *x == i as u64 + 1), "a written page changed");
        assert!(v[half..].iter().all(|x| *x == 0), "an untouched page is not zero");
    }

    fn sample() -> View {
        let mut p = PractitionerTable::with_capacity(4);
        for json in [
            r#"{"code":"D110105000123","version":17,"registrations":[{"institution":"H11010500001","from":"2021-03-01"}],
               "periods":[{"status":"suspended","from":"2026-03-20","until":"2026-06-20","basis":"b","decision_id":"QH-1"}]}"#,
            r#"{"code":"0457","version":1,"registrations":[]}"#,
        ] {
            p.upsert(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()).unwrap();
        }
        let mut i = InstitutionTable::default();
        let inst = r#"{"code":"H11010500001","version":3,"periods":[{"status":"suspended","from":"2026-02-01","until":"2026-03-01","departments":["A03.06"]}]}"#;
        i.upsert(InstitutionText::from_json(inst.as_bytes()).unwrap().validate().unwrap());
        View::new(p, i)
    }

    #[test]
    fn round_trip() {
        let view = sample();
        let mut bytes = Vec::new();
        let header = write(&mut bytes, &view, "2026-11-23 10:00:00").unwrap();
        assert_eq!(read_header(&bytes[..]).unwrap(), header);
        let (h2, back) = read(&bytes[..]).unwrap();
        assert_eq!(h2, header);
        assert_eq!(back.epoch(), view.epoch());
        let key = PractitionerKey::parse("D110105000123").unwrap();
        let code = crate::record::PractitionerCode::parse("D110105000123").unwrap();
        assert_eq!(
            back.practitioner(key).unwrap().to_record(code.clone()),
            view.practitioner(key).unwrap().to_record(code)
        );
        assert!(back.practitioner(PractitionerKey::Legacy("0457")).is_some());
        assert_eq!(back.institution_count(), 1);
    }

    #[test]
    fn refuses_other_files_and_versions_and_corruption() {
        let mut bytes = Vec::new();
        write(&mut bytes, &sample(), "now").unwrap();
        assert!(matches!(read(&b"{\"code\":1}"[..]), Err(SnapshotError::Magic)));
        assert!(matches!(read(&b""[..]), Err(SnapshotError::Magic)));
        for other in [2, 3, FORMAT_VERSION + 1] {
            let mut v = bytes.clone();
            v[8..12].copy_from_slice(&other.to_le_bytes());
            assert!(matches!(read(&v[..]), Err(SnapshotError::Version { found }) if found == other));
        }
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 0x40;
        assert!(read(&flipped[..]).is_err());
        let truncated = &bytes[..bytes.len() - 3];
        assert!(read(truncated).is_err());
        let mut old = bytes.clone();
        old[8..12].copy_from_slice(&3u32.to_le_bytes());
        let message = read(&old[..]).err().unwrap().to_string();
        assert!(message.contains("format 3") && message.contains("tables build"), "{message}");
    }

    #[test]
    fn a_sharded_table_round_trips_in_its_shards() {
        let mut base = BaseTable::sharded(3, 64);
        for i in 0..200u64 {
            let json =
                format!(r#"{{"code":"D{:012}","version":{},"registrations":[]}}"#, 110_105_000_000 + i * 31, 1 + i % 4);
            base.upsert_unshared(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap())
                .unwrap()
                .unwrap();
        }
        let view = View::from_base(base, InstitutionTable::default());
        let mut bytes = Vec::new();
        write(&mut bytes, &view, "now").unwrap();
        let (_, back) = read(&bytes[..]).unwrap();
        assert_eq!(back.epoch(), view.epoch());
        assert_eq!(back.base().shard_bits(), 3);
        back.base().verify().unwrap();
        for (code, _) in view.base().iter() {
            assert!(back.practitioner(code.key()).is_some(), "{code}");
        }
    }

    /// Format 4 is format 5 without the shard bits: such a file (what `tables build` wrote before
    /// shards) still loads, as one shard.
    #[test]
    fn a_format_4_file_reads_as_one_shard() {
        let view = sample();
        let mut v5 = Vec::new();
        let header = write(&mut v5, &view, "now").unwrap();
        let header_len = bincode::encode_to_vec(&header, config()).unwrap().len();
        let mut v4 = v5[..12 + header_len].to_vec();
        v4[8..12].copy_from_slice(&4u32.to_le_bytes());
        v4.extend_from_slice(&v5[12 + header_len + 4..v5.len() - 4]);
        let crc = crc32fast::hash(&v4[12..]);
        v4.extend_from_slice(&crc.to_le_bytes());
        let (_, back) = read(&v4[..]).unwrap();
        assert_eq!(back.epoch(), view.epoch());
        assert_eq!(back.base().shards().len(), 1);
        // And a shard count beyond any table is refused, not allocated.
        let mut forged = v5.clone();
        forged[12 + header_len..12 + header_len + 4].copy_from_slice(&40u32.to_le_bytes());
        let n = forged.len();
        let crc = crc32fast::hash(&forged[12..n - 4]);
        forged[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(read(&forged[..]).err().unwrap().to_string().contains("shard bits"));
    }

    /// A file whose checksum is right but whose offsets are forged loads (a load does no per-record
    /// work) and then answers lookups without panicking; `verify` refuses it.
    #[test]
    fn forged_offsets_with_a_valid_checksum_never_panic() {
        let view = sample();
        let mut bytes = Vec::new();
        write(&mut bytes, &view, "now").unwrap();
        let (_, loaded) = read(&bytes[..]).unwrap();
        let slots = bytemuck::cast_slice::<Slot, u8>(loaded.base().shards()[0].slots()).to_vec();
        let words = bytemuck::cast_slice::<u64, u8>(loaded.base().shards()[0].words()).to_vec();
        let at_slots = bytes.windows(slots.len()).position(|w| w == slots.as_slice()).unwrap();
        let at_words = bytes.windows(words.len()).position(|w| w == words.as_slice()).unwrap();
        let key = PractitionerKey::parse("D110105000123").unwrap();
        let t = crate::record::BjTime::parse("2026-04-01").unwrap();
        let inst = crate::record::InstitutionCode::parse("H11010500001").unwrap();
        for forge in 0..3 {
            let mut v = bytes.clone();
            match forge {
                // Every slot's offset pointing past the arena, or at its last word.
                0 | 1 => {
                    for i in (0..slots.len()).step_by(16) {
                        let at = if forge == 0 { u32::MAX >> 1 } else { (words.len() / 8 - 1) as u32 };
                        v[at_slots + i + 8..at_slots + i + 12].copy_from_slice(&at.to_le_bytes());
                    }
                }
                // Headers claiming 65 535 registrations and periods.
                _ => {
                    for i in (8..words.len()).step_by(8) {
                        v[at_words + i..at_words + i + 8].copy_from_slice(&0xFFFF_FFFFu64.to_le_bytes());
                    }
                }
            }
            let crc_at = v.len() - 4;
            let crc = crc32fast::hash(&v[12..crc_at]);
            v[crc_at..].copy_from_slice(&crc.to_le_bytes());
            if let Ok((_, forged)) = read(&v[..]) {
                if let Some(p) = forged.practitioner(key) {
                    let _ = (p.registered_anywhere(t), p.registered_at(inst, t), p.status_at(t), p.version());
                    let _ = p.periods().count() + p.registrations().count();
                }
                assert!(forged.base().verify().is_err(), "forge {forge}");
            }
        }
    }
}
