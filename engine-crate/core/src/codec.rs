//! Compressed inputs: gzip, zstd, bzip2 and xz, recognised by their magic
//! bytes (a `.gz` name proves nothing; a plain file named `.gz` is read as
//! it is), and decompressed as a stream.
//!
//! The ops see the decompressed content as a sequence of blocks of whole
//! records (lines, or CSV records of a dialect: [`Records`]), so memory is
//! bounded by the block size whatever the file's size. Decompression of a
//! big file runs on a thread of its own, a block ahead of the op consuming
//! the blocks. A stream that is corrupt or cut short ends the file with an
//! error record saying how far it got; the blocks already consumed are the
//! op's to discard.
//!
//! Text in another encoding than UTF-8 is transcoded on the same path: a
//! UTF-16 file announced by its byte-order mark, or any file in the
//! encoding a job names (Latin-1, Windows-1252, UTF-16 without a mark),
//! reaches the op as UTF-8.
//!
//! Concatenated streams (multi-member gzip, as written by `pigz` or by
//! appending `.gz` files; several zstd frames; several bzip2 or xz streams)
//! are read through to the end. An archive is not unpacked: a `.tar.gz` is
//! one stream whose content is the tar file.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver};

use crate::blob::{Blob, Stream};

use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::ops::stats::csv::Dialect;
use crate::trim::Trimmed;
use crate::FileTask;

/// Decompressed bytes per block handed to an op.
pub const BLOCK: usize = 8 << 20;
/// Stored (compressed) bytes read at a time.
pub(crate) const STORED_READ: usize = 256 << 10;
/// Files stored in fewer bytes than this are decompressed on the op's own
/// thread: a second thread would cost more than it saves.
const PIPELINE_FROM: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        }
    }

    /// The codec whose magic bytes start `head`, if any.
    pub fn sniff(head: &[u8]) -> Option<Codec> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Codec::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Codec::Zstd)
        } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
            Some(Codec::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Codec::Xz)
        } else {
            None
        }
    }

    /// A reader of the decompressed content of every stream in `stored`.
    pub(crate) fn decoder<'a>(self, stored: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(stored)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stored)?),
            Codec::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(stored)),
            Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(stored)),
        })
    }

    /// A reader of the whole decompressed content of `blob`.
    pub fn reader<'a>(self, blob: &Blob, read: &'a Cell<u64>) -> io::Result<Box<dyn Read + 'a>> {
        self.decoder(BufReader::with_capacity(STORED_READ, Stored::new(blob, read)))
    }
}

/// How text is decoded before an op sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// The bytes as they are (count, grep, checksum).
    Bytes,
    /// UTF-8, or UTF-16 where a byte-order mark says so.
    Auto,
    /// Text in this encoding, transcoded to UTF-8.
    From(&'static encoding_rs::Encoding),
}

impl Decode {
    /// The `encoding` option: `auto`, or an encoding's label (`latin-1`,
    /// `windows-1252`, `utf-16le`, ...). Latin-1 is read as Windows-1252,
    /// its superset, as browsers do.
    pub fn from_label(op: &str, label: &str) -> Result<Decode, EngineError> {
        if label == "auto" {
            return Ok(Decode::Auto);
        }
        let known = ["utf-8", "utf-16le", "utf-16be", "latin-1", "windows-1252"];
        // WHATWG spells it latin1 (and reads it as windows-1252).
        let whatwg = if label == "latin-1" { "latin1" } else { label };
        match encoding_rs::Encoding::for_label(whatwg.as_bytes()) {
            Some(e) if known.contains(&label) => Ok(Decode::From(e)),
            _ => Err(EngineError::Invalid(format!("{op}.encoding: unknown '{label}' (expected auto, {})", known.join(", ")))),
        }
    }

    /// Whether a file starting with `magic` must be transcoded.
    fn transcodes(self, magic: &[u8]) -> bool {
        match self {
            Decode::Bytes => false,
            Decode::Auto => magic.starts_with(b"\xFF\xFE") || magic.starts_with(b"\xFE\xFF"),
            Decode::From(e) => e != encoding_rs::UTF_8,
        }
    }

    /// `content` decoded to UTF-8 (a byte-order mark wins over a named encoding).
    fn wrap<'a>(self, content: Box<dyn Read + 'a>) -> Box<dyn Read + 'a> {
        let builder = encoding_rs_io::DecodeReaderBytesBuilder::new();
        match self {
            Decode::Bytes => content,
            Decode::Auto => Box::new(builder.build(content)),
            Decode::From(e) => Box::new(builder.clone().encoding(Some(e)).build(content)),
        }
    }
}

/// The stored bytes of an input, read in order, counting how many were read.
struct Stored<'a> {
    stream: Stream,
    read: &'a Cell<u64>,
}

impl<'a> Stored<'a> {
    fn new(blob: &Blob, read: &'a Cell<u64>) -> Stored<'a> {
        Stored { stream: blob.stream(0..u64::MAX), read }
    }
}

impl Read for Stored<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Where a block lies in the decompressed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Newlines before the block.
    pub lines: u64,
}

impl At {
    pub fn is_start(self) -> bool {
        self.offset == 0
    }

    /// The 1-based line of `offset`, a position inside `block`.
    pub fn line_of(self, block: &[u8], offset: u64) -> u64 {
        let upto = (offset.saturating_sub(self.offset) as usize).min(block.len());
        self.lines + 1 + bytecount::count(&block[..upto], b'\n') as u64
    }
}

/// Whether an op wants the blocks after the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    More,
    Stop,
}

/// Where a content's records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Records {
    /// At every `\n`.
    #[default]
    Lines,
    /// At a `\n` outside this quote byte (RFC 4180 quote parity).
    Quotes(u8),
    /// Where a CSV reader in this dialect ends them: escapes and comment
    /// lines, which quote parity cannot see, are understood.
    Csv(Dialect),
}

impl Records {
    /// Records of a CSV dialect: quote parity finds their ends unless
    /// escapes or comment lines are in play.
    pub fn of(dialect: Dialect) -> Records {
        match dialect {
            Dialect { escape: None, comment: None, quote: Some(q), .. } => Records::Quotes(q),
            Dialect { escape: None, comment: None, quote: None, .. } => Records::Lines,
            d => Records::Csv(d),
        }
    }

    /// The quote byte of quote-parity framing.
    pub fn quote(self) -> Option<u8> {
        match self {
            Records::Quotes(q) => Some(q),
            _ => None,
        }
    }

    /// The end of the last whole record in `buf` (which starts at a record start).
    pub fn last_end(self, buf: &[u8]) -> Option<usize> {
        match self {
            Records::Lines => memchr::memrchr(b'\n', buf).map(|p| p + 1),
            Records::Quotes(q) => {
                // Walking back from the end, `odd` is the quote parity of buf[..=p].
                let mut odd = bytecount::count(buf, q) % 2 == 1;
                for p in memchr::memrchr2_iter(q, b'\n', buf) {
                    if buf[p] == q {
                        odd = !odd;
                    } else if !odd {
                        return Some(p + 1);
                    }
                }
                None
            }
            Records::Csv(d) => d.last_record_end(buf),
        }
    }
}

/// How a content divides into records, and the lines left out at its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framing {
    pub records: Records,
    /// Lines left out at the start (a preamble).
    pub skip_lines: u64,
    /// Lines left out at the end (a footer).
    pub footer_lines: u64,
}

impl Framing {
    /// Lines, all of them.
    pub const LINES: Framing = Framing { records: Records::Lines, skip_lines: 0, footer_lines: 0 };

    /// Whether the content must be read in order, as a stream: lines left
    /// out at its ends, or records only a parse from the start can delimit.
    pub fn sequential(&self) -> bool {
        self.skip_lines > 0 || self.footer_lines > 0 || matches!(self.records, Records::Csv(_))
    }
}

/// Cuts a decompressed stream into blocks of whole records.
pub(crate) struct Blocks<'a> {
    content: Box<dyn Read + 'a>,
    records: Records,
    carry: Vec<u8>,
    ended: bool,
    at: At,
}

/// A stream that failed: the error and how many content bytes came before it.
pub(crate) struct Broken {
    pub error: io::Error,
    pub after: u64,
}

impl<'a> Blocks<'a> {
    /// Blocks of `content`, whose first byte lies `at`.
    pub(crate) fn new(content: Box<dyn Read + 'a>, records: Records, at: At) -> Blocks<'a> {
        Blocks { content, records, carry: Vec::new(), ended: false, at }
    }

    /// Fills `buf` with the next block; `None` once the content is exhausted.
    pub(crate) fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<At>, Broken> {
        buf.clear();
        buf.append(&mut self.carry);
        let mut target = BLOCK;
        while !self.ended {
            let want = target.saturating_sub(buf.len()) as u64;
            let before = buf.len();
            let got = match (&mut self.content).take(want).read_to_end(buf) {
                Ok(n) => n,
                Err(error) => return Err(Broken { error, after: self.at.offset + buf.len() as u64 }),
            };
            debug_assert_eq!(buf.len(), before + got);
            if (got as u64) < want {
                self.ended = true;
                break;
            }
            match self.records.last_end(buf) {
                Some(end) => {
                    self.carry.extend_from_slice(&buf[end..]);
                    buf.truncate(end);
                    break;
                }
                // A record longer than a block: read on until it ends.
                None => target = buf.len() + BLOCK,
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let at = self.at;
        self.at = At { offset: at.offset + buf.len() as u64, lines: at.lines + bytecount::count(buf, b'\n') as u64 };
        Ok(Some(at))
    }
}

fn broken(task: &FileTask, codec: Option<Codec>, b: Broken) -> FileError {
    let reason = match codec {
        Some(c) => format!("{} stream is corrupt or truncated after {} bytes of content: {}", c.name(), b.after, b.error),
        None => format!("read error after {} bytes: {}", b.after, b.error),
    };
    FileError::new(&task.path, None, reason)
}

/// How an op reads a compressed file's content.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub task: &'a FileTask,
    pub blob: &'a Blob,
    /// `None`: stored as it is (read on this path to be transcoded).
    pub codec: Option<Codec>,
    pub decode: Decode,
    /// Where blocks may end, and the lines left out.
    pub framing: Framing,
    /// Whether this pass counts towards progress (a first pass that only
    /// infers types does not).
    pub progress: bool,
}

/// Decompresses the file and hands its content to `each`, block by block in
/// order, until the content ends or `each` says [`Flow::Stop`]. Progress
/// counts stored bytes, as the file's listed size does.
pub fn for_each_block(
    reading: Reading<'_>,
    ctl: &Control,
    mut each: impl FnMut(&[u8], At) -> Result<Flow, EngineError>,
) -> Result<Result<(), FileError>, EngineError> {
    let Reading { task, blob, codec, decode, framing, progress } = reading;
    let advance = |read: &Cell<u64>, counted: &mut u64| {
        if progress {
            ctl.add_bytes(read.get() - *counted);
        }
        *counted = read.get();
    };
    let read = Cell::new(0u64);
    fn open<'a>(blob: &Blob, codec: Option<Codec>, decode: Decode, framing: Framing, read: &'a Cell<u64>) -> io::Result<Blocks<'a>> {
        let stored = BufReader::with_capacity(STORED_READ, Stored::new(blob, read));
        let content: Box<dyn Read + 'a> = match codec {
            Some(c) => c.decoder(stored)?,
            None => Box::new(stored),
        };
        let mut content = decode.wrap(content);
        if framing.skip_lines > 0 || framing.footer_lines > 0 {
            content = Box::new(Trimmed::new(content, framing.skip_lines, framing.footer_lines));
        }
        // Lines are counted in the file, preamble included.
        let at = At { offset: 0, lines: framing.skip_lines };
        Ok(Blocks::new(content, framing.records, at))
    }
    if task.size < PIPELINE_FROM {
        let mut blocks = match open(blob, codec, decode, framing, &read) {
            Ok(b) => b,
            Err(e) => return Ok(Err(broken(task, codec, Broken { error: e, after: 0 }))),
        };
        let mut buf = Vec::new();
        let mut counted = 0;
        loop {
            ctl.check()?;
            let next = blocks.next_into(&mut buf);
            advance(&read, &mut counted);
            match next {
                Ok(Some(at)) => {
                    if each(&buf, at)? == Flow::Stop {
                        return Ok(Ok(()));
                    }
                }
                Ok(None) => return Ok(Ok(())),
                Err(b) => return Ok(Err(broken(task, codec, b))),
            }
        }
    }
    std::thread::scope(|s| {
        let (full_tx, full_rx) = sync_channel::<Result<(Vec<u8>, At), Broken>>(1);
        let (empty_tx, empty_rx): (_, Receiver<Vec<u8>>) = sync_channel(2);
        s.spawn(move || {
            let read = Cell::new(0u64);
            let mut blocks = match open(blob, codec, decode, framing, &read) {
                Ok(b) => b,
                Err(error) => {
                    let _ = full_tx.send(Err(Broken { error, after: 0 }));
                    return;
                }
            };
            let mut counted = 0;
            loop {
                if ctl.is_cancelled() {
                    return;
                }
                let mut buf = empty_rx.try_recv().unwrap_or_default();
                let next = blocks.next_into(&mut buf);
                advance(&read, &mut counted);
                let msg = match next {
                    Ok(Some(at)) => Ok((buf, at)),
                    Ok(None) => return,
                    Err(b) => Err(b),
                };
                let last = msg.is_err();
                // A closed channel means the consumer stopped: so do we.
                if full_tx.send(msg).is_err() || last {
                    return;
                }
            }
        });
        for msg in full_rx {
            ctl.check()?;
            match msg {
                Ok((buf, at)) => {
                    if each(&buf, at)? == Flow::Stop {
                        return Ok(Ok(()));
                    }
                    let _ = empty_tx.try_send(buf);
                }
                Err(b) => return Ok(Err(broken(task, codec, b))),
            }
        }
        Ok(Ok(()))
    })
}

/// Stored bytes looked at for magic bytes.
const MAGIC: usize = 6;

/// Files smaller than this are read whole when opened: one read instead of
/// one for the magic bytes and more for the content.
pub const SMALL_FILE: u64 = 64 << 10;

/// An input as an op receives it: open, its first stored bytes (all of a
/// small local file), and its codec when compressed.
#[derive(Debug)]
pub struct Input {
    pub blob: Blob,
    pub codec: Option<Codec>,
    head: Vec<u8>,
    whole: bool,
}

impl Input {
    /// Reads the file's first bytes, looking for a codec's magic bytes; a
    /// small local file is read whole.
    pub fn new(task: &FileTask, blob: Blob) -> Result<Input, FileError> {
        let small = blob.file().is_some() && task.size < SMALL_FILE;
        let expected = if small { task.size as usize } else { MAGIC };
        let mut head = Vec::new();
        let whole = crate::io::read_whole_into(&blob, expected, &mut head).map_err(|e| FileError::io(&task.path, &e))?;
        Ok(Input { codec: Codec::sniff(&head), blob, head, whole })
    }

    /// The first stored bytes (up to six).
    pub fn magic(&self) -> &[u8] {
        &self.head[..self.head.len().min(MAGIC)]
    }

    /// All the stored bytes, when the input was small enough to be read
    /// whole on opening.
    pub fn whole(&self) -> Option<&[u8]> {
        self.whole.then_some(self.head.as_slice())
    }

    /// Up to `n` bytes of the content, decompressed when compressed. A
    /// damaged stream yields what came before the damage: reading the
    /// content later reports the damage itself.
    pub fn head(&self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        match self.codec {
            None if self.whole => buf.extend_from_slice(&self.head[..self.head.len().min(n)]),
            None => {
                crate::io::read_range_into(&self.blob, 0, n, &mut buf)?;
            }
            Some(codec) => {
                let read = Cell::new(0);
                let content = codec.reader(&self.blob, &read);
                if let Ok(content) = content {
                    let _ = content.take(n as u64).read_to_end(&mut buf);
                }
            }
        }
        Ok(buf)
    }

    /// How to read the content when it is compressed, must be transcoded
    /// or read in order; `None` when the file is read as stored, in chunks.
    pub fn reading<'a>(&'a self, task: &'a FileTask, decode: Decode, framing: Framing, progress: bool) -> Option<Reading<'a>> {
        (self.codec.is_some() || decode.transcodes(self.magic()) || framing.sequential())
            .then_some(Reading { task, blob: &self.blob, codec: self.codec, decode, framing, progress })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn blocks_of(stored: &[u8], records: Records, pipelined: bool) -> Result<Vec<(Vec<u8>, At)>, String> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(stored).unwrap();
        let size = if pipelined { PIPELINE_FROM } else { stored.len() as u64 };
        let task = FileTask::new("t.gz", size);
        let blob = Blob::from(f);
        let codec = Input::new(&task, blob.clone()).unwrap().codec.unwrap();
        let mut out = Vec::new();
        let reading = Reading { task: &task, blob: &blob, codec: Some(codec), decode: Decode::Bytes, framing: Framing { records, ..Framing::LINES }, progress: true };
        for_each_block(reading, &Control::default(), |b, at| {
            out.push((b.to_vec(), at));
            Ok(Flow::More)
        })
        .unwrap()
        .map_err(|e| e.reason)?;
        Ok(out)
    }

    #[test]
    fn magic_bytes_name_the_codec() {
        assert_eq!(Codec::sniff(&gzip(b"x")), Some(Codec::Gzip));
        assert_eq!(Codec::sniff(&zstd::encode_all(&b"x"[..], 1).unwrap()), Some(Codec::Zstd));
        assert_eq!(Codec::sniff(b"BZh9"), Some(Codec::Bzip2));
        assert_eq!(Codec::sniff(b"BZh"), None);
        assert_eq!(Codec::sniff(b"a,b\n1,2\n"), None);
        assert_eq!(Codec::sniff(b""), None);
    }

    #[test]
    fn records_are_never_cut_and_blocks_cover_the_content() {
        // Quoted newlines straddle every block boundary candidate.
        let mut data = Vec::new();
        for i in 0..1_200_000 {
            data.extend_from_slice(format!("{i},\"a\nb\",x\n").as_bytes());
        }
        for pipelined in [false, true] {
            let got = blocks_of(&gzip(&data), Records::Quotes(b'"'), pipelined).unwrap();
            assert!(got.len() > 1);
            let mut joined = Vec::new();
            for (b, at) in &got {
                assert_eq!(at.offset, joined.len() as u64);
                assert_eq!(at.lines, bytecount::count(&joined, b'\n') as u64);
                assert_eq!(bytecount::count(b, b'"') % 2, 0);
                assert!(b.ends_with(b"x\n"));
                joined.extend_from_slice(b);
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn a_truncated_stream_says_how_far_it_got() {
        let data: Vec<u8> = (0..200_000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let stored = gzip(&data);
        for pipelined in [false, true] {
            let reason = blocks_of(&stored[..stored.len() / 2], Records::Lines, pipelined).unwrap_err();
            assert!(reason.starts_with("gzip stream is corrupt or truncated after "), "{reason}");
        }
    }

    #[test]
    fn concatenated_members_are_all_read() {
        let mut stored = gzip(b"one\n");
        stored.extend(gzip(b"two\n"));
        let got = blocks_of(&stored, Records::Lines, false).unwrap();
        assert_eq!(got.into_iter().flat_map(|(b, _)| b).collect::<Vec<u8>>(), b"one\ntwo\n");
    }
}
