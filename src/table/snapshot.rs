//! The binary snapshot of the status tables: what `claimgate tables build` writes and what `review` and
//! `stream` load in seconds.
//!
//! Format (all little-endian):
//!
//! ```text
//! magic        8 bytes   b"CGSNAP\r\n"   (the CR LF catches text-mode mangling, as in PNG)
//! format       u32       FORMAT_VERSION
//! header       bincode 2 (standard config, fixed-width integers, little-endian): Header
//! table meta   bincode 2: the practitioner table's small parts, with the lengths of the two arrays
//! slots        slot_count × (key u64, offset u32), raw little-endian; an offset's top bit marks a
//!              code that points at a tombstone
//! words        word_count × u64, raw little-endian (the record arena)
//! institutions bincode 2: the institution records
//! checksum     u32       CRC-32 of everything after the format word
//! ```
//!
//! The two large arrays are raw rather than bincode sequences: decoding 100 million words one bincode
//! element at a time cost about 1 600 instructions per code; a bulk read costs a copy.
//!
//! The magic and the format version come before anything bincode writes, so a future format (another
//! encoder, since bincode is no longer maintained) can be told apart and refused with a clear message.

use std::io::{self, Read, Write};

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

use super::institution::StoredInstitution;
use super::practitioner::{Meta, Slot, hint_huge_pages};
use super::{InstitutionTable, PractitionerTable, View};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CGSNAP\r\n";
/// The layout version this build writes and reads (1: every array as a bincode sequence; 2: the two
/// large arrays raw; 3: the tombstone mark in each slot's offset, so a lookup reads only the slot).
pub const FORMAT_VERSION: u32 = 3;

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
    #[error("snapshot format {found}, this build reads format {FORMAT_VERSION}")]
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
    let table = view.base();
    bincode::encode_into_std_write(table.meta(), &mut w, config()).map_err(enc)?;
    let mut buf = Vec::with_capacity(CHUNK);
    for chunk in table.slots().chunks(CHUNK / SLOT_BYTES) {
        buf.clear();
        for s in chunk {
            buf.extend_from_slice(&s.key.to_le_bytes());
            buf.extend_from_slice(&s.at.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    for chunk in table.words().chunks(CHUNK / 8) {
        buf.clear();
        for word in chunk {
            buf.extend_from_slice(&word.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    bincode::encode_into_std_write(view.institutions().stored(), &mut w, config()).map_err(enc)?;
    let crc = w.crc.finalize();
    w.inner.write_all(&crc.to_le_bytes())?;
    w.inner.flush()?;
    Ok(header)
}

/// Bytes moved per bulk read or write.
const CHUNK: usize = 1 << 20;
const SLOT_BYTES: usize = 12;

/// Reads `n` fixed-size items of `size` bytes in bulk, decoding each with `item`. The vector grows
/// as data arrives, so a corrupt length fails at the end of the input, not in the allocator.
fn read_array<T>(r: &mut impl Read, n: u64, size: usize, item: impl Fn(&[u8]) -> T) -> Result<Vec<T>, SnapshotError> {
    if n.saturating_mul(size as u64) > LIMIT as u64 {
        return Err(SnapshotError::Corrupt(format!("an array of {n} items is beyond any table")));
    }
    let n = n as usize;
    let mut out = Vec::with_capacity(n.min(1 << 24));
    if n > 1 << 20 {
        out.reserve(n - out.capacity());
        hint_huge_pages(out.spare_capacity_mut());
    }
    let mut buf = vec![0u8; CHUNK / size * size];
    while out.len() < n {
        let take = ((n - out.len()) * size).min(buf.len());
        r.read_exact(&mut buf[..take]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Corrupt("truncated".into()),
            _ => SnapshotError::Io(e),
        })?;
        out.extend(buf[..take].chunks_exact(size).map(&item));
    }
    Ok(out)
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_preamble(input: &mut impl Read) -> Result<(), SnapshotError> {
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
    if found != FORMAT_VERSION {
        return Err(SnapshotError::Version { found });
    }
    Ok(())
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
    read_preamble(&mut input)?;
    let mut r = CrcReader { inner: input, crc: crc32fast::Hasher::new() };
    let header: Header = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
    let meta: Meta = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
    let slots = read_array(&mut r, meta.slot_count, SLOT_BYTES, |b| Slot {
        key: u64_le(b),
        at: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
    })?;
    let words = read_array(&mut r, meta.word_count, 8, u64_le)?;
    let institutions: Vec<StoredInstitution> = bincode::decode_from_std_read(&mut r, config()).map_err(dec)?;
    let computed = r.crc.finalize();
    let mut trailer = [0u8; 4];
    r.inner.read_exact(&mut trailer)?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(SnapshotError::Checksum);
    }
    let practitioners = PractitionerTable::from_parts(meta, slots, words).map_err(SnapshotError::Corrupt)?;
    let institutions = InstitutionTable::from_stored(institutions).map_err(SnapshotError::Corrupt)?;
    let view = View::new(practitioners, institutions);
    if view.epoch() != header.epoch {
        return Err(SnapshotError::Corrupt("content does not match the header's epoch".into()));
    }
    Ok((header, view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InstitutionText, PractitionerKey, PractitionerText};

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
        for other in [2, FORMAT_VERSION + 1] {
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
    }
}
