//! Files: JSON Lines in, plain or compressed by the file name's ending (`.gz`, `.zst`), `-` for the
//! standard streams; outputs written to a temporary name and renamed into place on success, so a failed
//! run never leaves half a file under the real name.
//!
//! Every input opened here loses a UTF-8 byte-order mark at its start (after decompression): spreadsheet
//! programs save exports with one. A mark anywhere else is left alone, so a line that starts with one in
//! the middle of a file is refused like any other bad line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

use super::frames::{self, FrameReader, FrameWriter};

/// How an input or output is compressed, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

impl Compression {
    /// From a path's ending.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") | Some("zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Counts bytes as they are read, for progress bars over compressed files.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input: the decompressed reader, its size on disk (if known), and a counter of bytes read
/// from disk.
pub struct Input {
    /// Decompressed bytes.
    pub reader: Box<dyn BufRead + Send>,
    /// Size of the file on disk; `None` for standard input.
    pub size: Option<u64>,
    /// Bytes read from disk so far.
    pub read: Arc<AtomicU64>,
    /// The name to show in messages.
    pub name: String,
}

const BUF: usize = 1 << 20;

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `reader` without a byte-order mark at its start. The first bytes are read now (a pipe may deliver
/// them one at a time); bytes that are not a mark are given back in front of the rest.
pub fn skip_bom(mut reader: Box<dyn BufRead + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let mut head = [0u8; 3];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if head[..n] == *BOM {
        return Ok(reader);
    }
    Ok(Box::new(io::Cursor::new(head[..n].to_vec()).chain(reader)))
}

/// Opens a path (or `-` for standard input) for reading, decompressing by its ending; a byte-order mark
/// at the start is skipped.
pub fn open(path: &Path) -> Result<Input> {
    let read = Arc::new(AtomicU64::new(0));
    if path == Path::new("-") {
        let reader = Counting { inner: io::stdin(), count: Arc::clone(&read) };
        return Ok(Input {
            reader: skip_bom(Box::new(BufReader::with_capacity(BUF, reader))).context("cannot read standard input")?,
            size: None,
            read,
            name: "-".into(),
        });
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().ok().map(|m| m.len());
    let raw = Counting { inner: file, count: Arc::clone(&read) };
    let reader: Box<dyn BufRead + Send> = match Compression::of(path) {
        Compression::None => Box::new(BufReader::with_capacity(BUF, raw)),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUF,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUF, raw)),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            BUF,
            zstd::Decoder::new(raw).with_context(|| format!("cannot read {} as zstd", path.display()))?,
        )),
    };
    let reader = skip_bom(reader).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Input { reader, size, read, name: path.display().to_string() })
}

/// A block of an input: whole lines, plain or still in one zstd frame.
pub enum Block {
    /// Plain text: whole lines, each ending in `\n` except perhaps the input's last.
    Plain(Vec<u8>),
    /// One zstd frame of whole lines (from a file of line-aligned frames, see [`frames`]), to be
    /// decompressed by whichever thread takes it.
    Zstd(Vec<u8>),
    /// Kafka messages, each one line whatever bytes it holds (a message is decided whole, as the
    /// stream decides it), with its position for dead letters and the index (`io::kafka::window`).
    Messages(MessageBlock),
}

/// Kafka messages read for a review: their payloads back to back, and where each one is and came from.
#[derive(Debug, Default)]
pub struct MessageBlock {
    /// The payloads, back to back.
    pub data: Vec<u8>,
    /// One per message, in offset order.
    pub messages: Vec<MessageAt>,
}

/// One message of a [`MessageBlock`].
#[derive(Clone, Copy, Debug)]
pub struct MessageAt {
    /// Where its payload starts in the block's data.
    pub at: u32,
    /// Its payload's length.
    pub len: u32,
    /// A null value (no payload): a dead letter, as in the stream.
    pub null: bool,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

impl MessageBlock {
    /// The payload of message `i`.
    pub fn payload(&self, m: &MessageAt) -> &[u8] {
        &self.data[m.at as usize..(m.at + m.len) as usize]
    }
}

/// An input opened for reading in blocks of whole lines.
pub struct BlockInput {
    /// The blocks, in order.
    pub blocks: Box<dyn Iterator<Item = io::Result<Block>> + Send>,
    /// Size of the file on disk; `None` for standard input.
    pub size: Option<u64>,
    /// Bytes read from disk so far.
    pub read: Arc<AtomicU64>,
    /// The name to show in messages.
    pub name: String,
}

/// Opens a path (or `-`) for reading in blocks of about `size` bytes of whole lines. A `.zst` file of
/// line-aligned frames (as claimgate writes them) yields its frames still compressed, so that the
/// caller's workers decompress them in parallel; any other input is decompressed here and cut at
/// line ends.
pub fn open_blocks(path: &Path, size: usize) -> Result<BlockInput> {
    if path != Path::new("-") && Compression::of(path) == Compression::Zstd {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let bytes = file.metadata().ok().map(|m| m.len());
        let read = Arc::new(AtomicU64::new(0));
        let mut raw = BufReader::with_capacity(BUF, Counting { inner: file, count: Arc::clone(&read) });
        let head = raw.fill_buf().with_context(|| format!("cannot read {}", path.display()))?;
        if frames::is_marked(head) {
            let blocks = FrameReader::new(raw).map(|f| f.map(Block::Zstd));
            return Ok(BlockInput { blocks: Box::new(blocks), size: bytes, read, name: path.display().to_string() });
        }
    }
    let input = open(path)?;
    let blocks = Chunker::new(input.reader, size).map(|c| c.map(|c| Block::Plain(c.data)));
    Ok(BlockInput { blocks: Box::new(blocks), size: input.size, read: input.read, name: input.name })
}

/// An output file, compressed by its ending, that appears under its real name only when finished.
pub struct Output {
    writer: Option<Box<dyn Finish>>,
    tmp: Option<PathBuf>,
    path: PathBuf,
    frames: bool,
}

/// A writer that can be finished (compression trailers written, buffers flushed).
trait Finish: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
    /// Writes a zstd frame of whole lines compressed elsewhere (only `.zst` outputs take them).
    fn write_frame(&mut self, _frame: &[u8]) -> io::Result<()> {
        Err(io::Error::other("this output does not take compressed frames"))
    }
}

impl<W: Write + Send> Finish for BufWriter<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

struct GzFinish(flate2::write::GzEncoder<BufWriter<File>>);

impl Write for GzFinish {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Finish for GzFinish {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

/// `.zst` outputs are line-aligned frames (see [`frames`]), so that readers can decompress them
/// in parallel and `review`'s workers can compress their blocks themselves.
struct ZstdFinish(FrameWriter<BufWriter<File>>);

impl Write for ZstdFinish {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Finish for ZstdFinish {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.0.write_frame(frame)
    }
}

impl Output {
    /// Creates `path` (or standard output for `-`), compressing by its ending.
    pub fn create(path: &Path) -> Result<Output> {
        if path == Path::new("-") {
            let w: Box<dyn Finish> = Box::new(BufWriter::with_capacity(BUF, io::stdout()));
            return Ok(Output { writer: Some(w), tmp: None, path: path.into(), frames: false });
        }
        // A device or a pipe (`/dev/null`, a FIFO) is written to directly: there is nothing to rename.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let w: Box<dyn Finish> = Box::new(BufWriter::with_capacity(BUF, file));
            return Ok(Output { writer: Some(w), tmp: None, path: path.into(), frames: false });
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", path.display()))?;
        let buffered = BufWriter::with_capacity(BUF, file);
        let writer: Box<dyn Finish> = match Compression::of(path) {
            Compression::None => Box::new(buffered),
            Compression::Gzip => {
                Box::new(GzFinish(flate2::write::GzEncoder::new(buffered, flate2::Compression::fast())))
            }
            Compression::Zstd => Box::new(ZstdFinish(FrameWriter::new(buffered)?)),
        };
        let frames = Compression::of(path) == Compression::Zstd;
        Ok(Output { writer: Some(writer), tmp: Some(tmp), path: path.into(), frames })
    }

    /// True if this output takes zstd frames compressed elsewhere ([`Output::write_frame`]): a
    /// `.zst` file. The caller may then compress blocks of whole lines in parallel.
    pub fn takes_frames(&self) -> bool {
        self.frames
    }

    /// Writes a zstd frame of whole lines made by a [`frames::FrameCompressor`].
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write_frame(frame),
            None => Err(io::Error::other("output already finished")),
        }
    }

    /// Finishes the file and moves it under its real name.
    pub fn finish(mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.finish().with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        if let Some(tmp) = self.tmp.take() {
            std::fs::rename(&tmp, &self.path).with_context(|| format!("cannot create {}", self.path.display()))?;
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("output already finished")),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write_all(buf),
            None => Err(io::Error::other("output already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // Not finished: an error happened. Remove the partial file rather than leave it half written.
        if let Some(tmp) = self.tmp.take() {
            self.writer.take();
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A block of whole lines read from an input, and the number of its first line (1-based).
pub struct Chunk {
    /// The bytes: whole lines, each ending in `\n` except perhaps the input's last.
    pub data: Vec<u8>,
    /// Line number of the first line in the input.
    pub first_line: u64,
}

/// Reads an input in blocks of about `size` bytes cut at line ends.
pub struct Chunker {
    input: Box<dyn BufRead + Send>,
    size: usize,
    carry: Vec<u8>,
    next_line: u64,
    done: bool,
}

impl Chunker {
    /// Blocks of about `size` bytes.
    pub fn new(input: Box<dyn BufRead + Send>, size: usize) -> Self {
        Chunker { input, size, carry: Vec::new(), next_line: 1, done: false }
    }
}

impl Iterator for Chunker {
    type Item = io::Result<Chunk>;

    fn next(&mut self) -> Option<io::Result<Chunk>> {
        if self.done {
            return None;
        }
        let mut data = std::mem::take(&mut self.carry);
        data.reserve(self.size + 4096);
        while data.len() < self.size {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if buf.is_empty() {
                self.done = true;
                break;
            }
            let n = buf.len().min(self.size - data.len());
            data.extend_from_slice(&buf[..n]);
            self.input.consume(n);
        }
        if !self.done {
            // Cut after the last newline; a line longer than the block waits for more data.
            match memchr::memrchr(b'\n', &data) {
                Some(p) => self.carry = data.split_off(p + 1),
                None => {
                    let mut rest = Vec::new();
                    match self.input.read_until(b'\n', &mut rest) {
                        Ok(0) => self.done = true,
                        Ok(_) => {}
                        Err(e) => return Some(Err(e)),
                    }
                    data.extend_from_slice(&rest);
                }
            }
        }
        if data.is_empty() {
            return None;
        }
        let first_line = self.next_line;
        self.next_line += line_count(&data);
        Some(Ok(Chunk { data, first_line }))
    }
}

/// The lines in `data`, blank ones included: its line ends, and one more for a last line without one.
pub fn line_count(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64 + u64::from(!data.is_empty() && !data.ends_with(b"\n"))
}

/// The lines of a chunk, without their line ends (`\n` or `\r\n`), with their line numbers; blank
/// lines are skipped.
pub fn lines(chunk: &Chunk) -> impl Iterator<Item = (u64, &[u8])> {
    numbered_lines(&chunk.data, chunk.first_line)
}

/// The lines of `data` numbered from `first`, without their line ends (`\n` or `\r\n`); blank lines
/// are skipped (and counted). Cut with a vectorised search for the line ends.
pub fn numbered_lines(data: &[u8], first: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let mut start = 0;
    let mut n = first;
    std::iter::from_fn(move || {
        loop {
            if start > data.len() {
                return None;
            }
            let rest = &data[start..];
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..end];
            let number = n;
            start += end + 1;
            n += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some((number, line));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cut_at_line_ends_and_count_lines() {
        let text = (1..=1000).map(|i| format!("line {i}\n")).collect::<String>() + "last";
        let chunks: Vec<Chunk> =
            Chunker::new(Box::new(io::Cursor::new(text.clone().into_bytes())), 100).map(|c| c.unwrap()).collect();
        assert!(chunks.len() > 10);
        let mut all = Vec::new();
        for c in &chunks {
            for (n, l) in lines(c) {
                all.push((n, String::from_utf8(l.to_vec()).unwrap()));
            }
        }
        assert_eq!(all.len(), 1001);
        assert_eq!(all[0], (1, "line 1".into()));
        assert_eq!(all[999], (1000, "line 1000".into()));
        assert_eq!(all[1000], (1001, "last".into()));
    }

    #[test]
    fn long_lines_survive_small_blocks() {
        let long = "x".repeat(10_000);
        let text = format!("{long}\nshort\n{long}\n");
        let got: Vec<Vec<u8>> = Chunker::new(Box::new(io::Cursor::new(text.into_bytes())), 64)
            .flat_map(|c| lines(&c.unwrap()).map(|(_, l)| l.to_vec()).collect::<Vec<_>>())
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].len(), 10_000);
    }

    /// A reader that gives one byte per call, like a slow pipe.
    struct Trickle(io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    fn skipped(bytes: &[u8], trickle: bool) -> Vec<u8> {
        let inner: Box<dyn BufRead + Send> = if trickle {
            Box::new(BufReader::with_capacity(1, Trickle(io::Cursor::new(bytes.to_vec()))))
        } else {
            Box::new(io::Cursor::new(bytes.to_vec()))
        };
        let mut out = Vec::new();
        skip_bom(inner).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_bom_is_skipped_at_the_start_only() {
        for trickle in [false, true] {
            assert_eq!(skipped(b"\xEF\xBB\xBF{\"a\":1}\n", trickle), b"{\"a\":1}\n");
            assert_eq!(skipped(b"\xEF\xBB\xBF", trickle), b"");
            assert_eq!(skipped(b"{\"a\":1}\n\xEF\xBB\xBF{}\n", trickle), b"{\"a\":1}\n\xEF\xBB\xBF{}\n");
            // Short inputs and near misses come back whole.
            for text in [&b""[..], b"{", b"{}", b"\xEF\xBB", b"\xEF\xBB{", b"\xEF\xBB\xBF\xEF\xBB\xBF"] {
                let want = text.strip_prefix(BOM).unwrap_or(text);
                assert_eq!(skipped(text, trickle), want, "{text:?}");
            }
        }
    }

    #[test]
    fn every_opened_file_loses_its_bom_plain_or_compressed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"] {
            let path = dir.path().join(name);
            let mut out = Output::create(&path).unwrap();
            out.write_all(b"\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n").unwrap();
            out.finish().unwrap();
            let mut text = Vec::new();
            open(&path).unwrap().reader.read_to_end(&mut text).unwrap();
            assert_eq!(text, b"{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n", "{name}");
            let chunks: Vec<Chunk> = Chunker::new(open(&path).unwrap().reader, 4).map(|c| c.unwrap()).collect();
            let lines: Vec<(u64, Vec<u8>)> =
                chunks.iter().flat_map(|c| lines(c).map(|(n, l)| (n, l.to_vec())).collect::<Vec<_>>()).collect();
            assert_eq!(lines[0], (1, b"{\"a\":1}".to_vec()), "{name}");
        }
    }

    #[test]
    fn compressed_round_trip_and_atomic_finish() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"] {
            let path = dir.path().join(name);
            let mut out = Output::create(&path).unwrap();
            out.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
            assert!(!path.exists(), "visible before finish");
            out.finish().unwrap();
            let mut text = String::new();
            open(&path).unwrap().reader.read_to_string(&mut text).unwrap();
            assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n", "{name}");
        }
        let path = dir.path().join("dropped.jsonl");
        let mut out = Output::create(&path).unwrap();
        out.write_all(b"partial").unwrap();
        drop(out);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "temporary file left behind");
    }
}
