//! Zstandard files made of independent frames of whole lines, so that several threads can decompress
//! one file, and several threads can compress one output (issue 15: no single thread as the ceiling).
//!
//! A zstd stream of one frame must be decompressed by one thread from start to end. claimgate
//! writes its `.zst` outputs instead as a [skippable frame](https://datatracker.ietf.org/doc/html/rfc8878#name-skippable-frames)
//! holding [`MARKER`], then one ordinary frame per block of whole lines (about a mebibyte of text each,
//! its content size in its header). Every zstd decoder reads such a file as the plain concatenation of
//! its frames (`zstdcat`, `zstd -d`, any library: skippable frames are part of the format), and a
//! reader that sees the marker knows that each frame starts at a line start, so it can hand frames to
//! workers as they are read. A `.zst` file without the marker (one written by the `zstd` tool, say)
//! is decompressed by one thread, as before.

use std::io::{self, Read, Write};

/// The payload of the skippable frame that opens a file of line-aligned frames.
pub const MARKER: &[u8; 16] = b"claimgate-lines1";

/// Skippable frame magic (any of 0x184D2A50..=0x184D2A5F), little-endian on disk.
const SKIPPABLE: u32 = 0x184D_2A5E;

/// Decompressed bytes per frame written by [`FrameWriter`]: large enough that a frame's header and
/// the compressor's start cost nothing, small enough that a frame is a good unit of work.
pub const FRAME: usize = 1 << 20;

/// A frame's content may not claim more than this (a corrupt header is refused, not allocated).
const MAX_FRAME_CONTENT: u64 = 1 << 30;

/// The opening skippable frame.
pub fn marker_frame() -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + MARKER.len());
    v.extend_from_slice(&SKIPPABLE.to_le_bytes());
    v.extend_from_slice(&(MARKER.len() as u32).to_le_bytes());
    v.extend_from_slice(MARKER);
    v
}

/// True if `head` (a file's first bytes) opens a file of line-aligned frames.
pub fn is_marked(head: &[u8]) -> bool {
    head.get(..8 + MARKER.len()) == Some(marker_frame().as_slice())
}

/// Compression level of the frames. Level 1 rather than zstd's default 3: on decision records it
/// compressed 1.7 times faster and 5% smaller (`zstd -b1 -e3 -B1048576` on 200 MB of decisions:
/// 1 775 MB/s, ×27.3 against 1 065 MB/s, ×25.9; BENCHMARKS.md).
pub const LEVEL: i32 = 1;

/// Compresses one block of whole lines into a frame, reusing a compression context.
pub struct FrameCompressor(zstd::bulk::Compressor<'static>);

impl FrameCompressor {
    /// A compressor at [`LEVEL`].
    pub fn new() -> io::Result<Self> {
        Ok(FrameCompressor(zstd::bulk::Compressor::new(LEVEL)?))
    }

    /// Replaces the contents of `out` (capacity kept) with the frame of `data`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        self.0.compress_to_buffer(data, out)?;
        Ok(())
    }
}

/// Decompresses frames, reusing one decompression context (its tables are some hundred kilobytes:
/// made afresh per frame, they were memory the kernel had to map and zero for every block).
pub struct FrameDecompressor(zstd::bulk::Decompressor<'static>);

impl FrameDecompressor {
    /// A decompressor.
    pub fn new() -> io::Result<Self> {
        Ok(FrameDecompressor(zstd::bulk::Decompressor::new()?))
    }

    /// Replaces the contents of `out` (capacity kept) with the content of `frame`: one whose header
    /// gives its content size (as [`FrameCompressor`]'s do) in one call, another by streaming.
    pub fn decompress(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("zstd frame: {what}"));
        out.clear();
        match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) if n <= MAX_FRAME_CONTENT => {
                out.reserve(n as usize);
                self.0.decompress_to_buffer(frame, out)?;
                Ok(())
            }
            Ok(Some(_)) => Err(bad("content size beyond any block")),
            Ok(None) => {
                zstd::stream::read::Decoder::new(frame)?.read_to_end(out)?;
                Ok(())
            }
            Err(_) => Err(bad("not a frame")),
        }
    }
}

/// Reads a file of frames one frame at a time (compressed), skipping skippable frames.
pub struct FrameReader<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<R: Read> FrameReader<R> {
    /// Frames from `input`, which starts at a frame boundary.
    pub fn new(input: R) -> Self {
        FrameReader { input, buf: Vec::new(), pos: 0, eof: false }
    }

    fn fill(&mut self) -> io::Result<()> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let have = self.buf.len();
        let want = (have * 2).max(4 << 20);
        self.buf.resize(want, 0);
        let mut filled = have;
        while filled < want {
            match self.input.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(filled);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(filled);
        Ok(())
    }
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        loop {
            let rest = &self.buf[self.pos..];
            if !rest.is_empty() {
                if let Ok(n) = zstd::zstd_safe::find_frame_compressed_size(rest)
                    && n <= rest.len()
                {
                    let frame = &rest[..n];
                    self.pos += n;
                    let magic = frame.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
                    if magic.is_some_and(|m| m & 0xFFFF_FFF0 == 0x184D_2A50) {
                        continue;
                    }
                    return Some(Ok(frame.to_vec()));
                }
                if self.eof {
                    self.pos = self.buf.len();
                    return Some(Err(io::Error::new(io::ErrorKind::InvalidData, "truncated or corrupt zstd frame")));
                }
            } else if self.eof {
                return None;
            }
            if let Err(e) = self.fill() {
                self.eof = true;
                self.pos = self.buf.len();
                return Some(Err(e));
            }
        }
    }
}

/// A `.zst` output of line-aligned frames: written bytes are cut into frames at the last line end
/// after each [`FRAME`] bytes; frames compressed elsewhere (by `review`'s workers) can be written
/// whole with [`FrameWriter::write_frame`].
pub struct FrameWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
    compressor: FrameCompressor,
    frame: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// Writes the marker frame and returns the writer.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&marker_frame())?;
        Ok(FrameWriter { inner, pending: Vec::new(), compressor: FrameCompressor::new()?, frame: Vec::new() })
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        if upto == 0 {
            return Ok(());
        }
        self.frame.clear();
        self.compressor.compress(&self.pending[..upto], &mut self.frame)?;
        self.inner.write_all(&self.frame)?;
        self.pending.drain(..upto);
        Ok(())
    }

    /// Writes a frame compressed elsewhere; it must hold whole lines. Bytes written before it and
    /// not yet framed go first, as a frame of their own.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.emit(self.pending.len())?;
        self.inner.write_all(frame)
    }

    /// Frames what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(self.pending.len())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= FRAME {
            // Cut after the last line end; a line longer than a frame waits for its end.
            if let Some(p) = memchr::memrchr(b'\n', &self.pending) {
                self.emit(p + 1)?;
            }
        }
        Ok(buf.len())
    }

    /// Frames every whole line written so far (a partial last line waits for its end, so that every
    /// frame still starts at a line start), then flushes the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(p) = memchr::memrchr(b'\n', &self.pending) {
            self.emit(p + 1)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_any_decoder_and_frame_by_frame() {
        let text: String = (0..100_000).map(|i| format!("{{\"line\":{i}}}\n")).collect();
        let mut w = FrameWriter::new(Vec::new()).unwrap();
        w.write_all(text.as_bytes()).unwrap();
        let mut c = FrameCompressor::new().unwrap();
        // A reused buffer: its old contents are replaced, not prefixed to the frame.
        let mut extra = vec![0xAA; 4096];
        c.compress(b"{\"line\":\"last\"}\n", &mut extra).unwrap();
        w.write_frame(&extra).unwrap();
        let file = w.finish().unwrap();
        assert!(is_marked(&file));
        let expected = format!("{text}{{\"line\":\"last\"}}\n");
        // Any zstd decoder reads the concatenation.
        assert_eq!(zstd::decode_all(&file[..]).unwrap(), expected.as_bytes());
        // Frame by frame, each frame holds whole lines; one context and one buffer serve every
        // frame, the buffer's last contents replaced each time.
        let mut all = Vec::new();
        let mut frames = 0;
        let mut d = FrameDecompressor::new().unwrap();
        let mut plain = b"left over from before".to_vec();
        for f in FrameReader::new(&file[..]) {
            d.decompress(&f.unwrap(), &mut plain).unwrap();
            assert!(plain.ends_with(b"\n"));
            all.extend_from_slice(&plain);
            frames += 1;
        }
        assert!(frames > 1);
        assert_eq!(all, expected.as_bytes());
    }

    #[test]
    fn flush_frames_whole_lines_only() {
        let mut w = FrameWriter::new(Vec::new()).unwrap();
        w.write_all(b"{\"a\":1}\n{\"a\":").unwrap();
        w.flush().unwrap();
        w.write_all(b"2}\n").unwrap();
        let file = w.finish().unwrap();
        let frames: Vec<Vec<u8>> = FrameReader::new(&file[..]).map(|f| f.unwrap()).collect();
        assert_eq!(frames.len(), 2);
        let mut d = FrameDecompressor::new().unwrap();
        for f in frames {
            let mut plain = Vec::new();
            d.decompress(&f, &mut plain).unwrap();
            assert!(plain.starts_with(b"{") && plain.ends_with(b"\n"));
        }
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_short_read() {
        let mut w = FrameWriter::new(Vec::new()).unwrap();
        w.write_all(&b"{\"a\":1}\n".repeat(1000)).unwrap();
        let file = w.finish().unwrap();
        let cut = &file[..file.len() - 5];
        assert!(FrameReader::new(cut).any(|f| f.is_err()));
        assert!(!is_marked(b"\x28\xb5\x2f\xfd"));
    }
}
