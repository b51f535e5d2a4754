//! Splitting one big compressed file across threads, where its format
//! allows it: a file of several zstd frames, or a BGZF file (gzip members
//! that carry their own stored size in a `BC` extra field, as `bgzip`
//! writes). Such a file is a sequence of independent units whose stored
//! extents are found from their headers alone, without decompressing.
//!
//! Consecutive units are grouped into ~[`GROUP`] stored bytes and the groups
//! are decompressed in parallel. Group `i` skips its content up to its
//! first record end (group 0 skips nothing), then reads on past its end into
//! the following units up to their first record end, the one group `i + 1`
//! skips to. Every record is thus seen by exactly one group, whole, and the
//! ops join the groups' results as they join plain chunks.
//!
//! A record ends at a newline; for CSV, at a newline outside quotes. Whether
//! a group starts inside quotes is the parity of the quote bytes in all the
//! content before it, so CSV files take a first parallel pass that
//! decompresses every group and counts its quotes (as [`crate::split`] does
//! for a plain file), and the prefix sums tell each group where its first
//! record starts.
//!
//! An ordinary gzip file (one member, or members without a stored size)
//! and a single zstd frame are read as one stream ([`crate::codec`]).

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;

use rayon::prelude::*;

use crate::blob::Blob;
use crate::codec::{At, Blocks, Broken, Codec, Decode, Flow, Reading, STORED_READ};
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::io::read_range_into;
use crate::split::find_record_end;

/// Stored bytes per group decompressed by one thread.
pub const GROUP: u64 = 8 << 20;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable zstd frames have magic numbers 0x184D2A50..=0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Reads `len` bytes at `at`, or `None` when the file ends first.
fn bytes_at(blob: &Blob, at: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    buf.clear();
    Ok((read_range_into(blob, at, len, buf)? == len).then_some(()))
}

fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, &b| acc << 8 | b as u64)
}

/// Stored length of the zstd frame (or skippable frame) at `at`, read from
/// its frame header and block headers; `None` when these are not a frame.
fn zstd_frame_len(blob: &Blob, at: u64, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
    if bytes_at(blob, at, 8, buf)?.is_none() {
        return Ok(None);
    }
    let magic = le(&buf[..4]) as u32;
    if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
        return Ok(Some(8 + le(&buf[4..8])));
    }
    if magic != ZSTD_MAGIC {
        return Ok(None);
    }
    let descriptor = buf[4];
    let single_segment = descriptor & 0x20 != 0;
    let has_checksum = descriptor & 0x04 != 0;
    let dictionary_id = [0, 1, 2, 4][(descriptor & 3) as usize];
    let content_size = match descriptor >> 6 {
        0 => single_segment as u64,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut pos = at + 5 + (!single_segment) as u64 + dictionary_id + content_size;
    loop {
        if bytes_at(blob, pos, 3, buf)?.is_none() {
            return Ok(None);
        }
        let header = le(&buf[..3]);
        let last = header & 1 == 1;
        let size = header >> 3;
        pos += 3 + match (header >> 1) & 3 {
            0 | 2 => size, // raw, compressed
            1 => 1,        // run of one byte
            _ => return Ok(None),
        };
        if last {
            return Ok(Some(pos + 4 * has_checksum as u64 - at));
        }
    }
}

/// Stored length of the BGZF block at `at`: a gzip member whose extra field
/// holds a `BC` subfield with its size less one; `None` otherwise.
fn bgzf_block_len(blob: &Blob, at: u64, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
    const HEADER: usize = 12;
    if bytes_at(blob, at, HEADER, buf)?.is_none() || buf[..3] != [0x1f, 0x8b, 8] || buf[3] & 4 == 0 {
        return Ok(None);
    }
    let xlen = le(&buf[10..12]) as usize;
    if bytes_at(blob, at + HEADER as u64, xlen, buf)?.is_none() {
        return Ok(None);
    }
    let mut extra = &buf[..];
    while extra.len() >= 4 {
        let len = le(&extra[2..4]) as usize;
        if extra[..2] == *b"BC" && len == 2 && extra.len() >= 6 {
            return Ok(Some(le(&extra[4..6]) + 1));
        }
        extra = &extra[(4 + len).min(extra.len())..];
    }
    Ok(None)
}

/// The stored extents of the file's independent units, when the codec has
/// them and they tile the whole file; `None` otherwise (a single unit
/// included, or headers that do not add up: the stream path then reads the
/// file and reports any damage).
pub fn units(blob: &Blob, codec: Codec, size: u64) -> io::Result<Option<Vec<Range<u64>>>> {
    let unit_len = match codec {
        Codec::Zstd => zstd_frame_len,
        Codec::Gzip => bgzf_block_len,
        Codec::Bzip2 | Codec::Xz => return Ok(None),
    };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < size {
        match unit_len(blob, at, &mut buf)? {
            Some(len) if len > 0 && at + len <= size => {
                out.push(at..at + len);
                at += len;
            }
            _ => return Ok(None),
        }
    }
    Ok((out.len() > 1).then_some(out))
}

/// Consecutive units joined into groups of about `target` stored bytes.
pub fn groups(units: &[Range<u64>], target: u64) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for u in units {
        match out.last_mut() {
            Some(g) if g.end - g.start < target => g.end = u.end,
            _ => out.push(u.clone()),
        }
    }
    out
}

/// The stored bytes of a range, counting how many were read.
struct Counted<'a> {
    inner: crate::blob::Stream,
    read: &'a Cell<u64>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// The content a group owns: its own content past the first record end
/// (all of it in group 0), then the content after it up to the next record
/// end.
struct Owned<'a> {
    own: Box<dyn Read + 'a>,
    /// The content after the group, opened once its own is exhausted.
    rest: Option<Box<dyn BufRead + 'a>>,
    open_rest: Box<dyn FnMut() -> io::Result<Box<dyn BufRead + 'a>> + 'a>,
    quote: Option<u8>,
    /// Whether the content read from `rest` so far ends inside quotes.
    in_quote: bool,
    done: bool,
}

impl Read for Owned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.rest.is_none() {
            let n = self.own.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.rest = Some((self.open_rest)()?);
        }
        let rest = self.rest.as_mut().expect("opened above");
        let avail = rest.fill_buf()?;
        let (n, ends) = match find_record_end(avail, 0, self.in_quote, self.quote) {
            Ok(end) if end <= buf.len() => (end, true),
            _ => (avail.len().min(buf.len()), false),
        };
        buf[..n].copy_from_slice(&avail[..n]);
        if let (Some(q), false) = (self.quote, ends) {
            self.in_quote ^= bytecount::count(&avail[..n], q) % 2 == 1;
        }
        self.done = n == 0 || ends;
        rest.consume(n);
        Ok(n)
    }
}

/// The decompressed content of `stored`, buffered.
fn decoded<'a>(codec: Codec, stored: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
    let content = codec.decoder(BufReader::with_capacity(STORED_READ, stored))?;
    Ok(Box::new(BufReader::with_capacity(STORED_READ, content)))
}

/// Reads past the first record end, starting inside quotes or not;
/// whether there was one.
fn skip_record(content: &mut dyn BufRead, quote: Option<u8>, mut in_quote: bool) -> io::Result<bool> {
    loop {
        let avail = content.fill_buf()?;
        if avail.is_empty() {
            return Ok(false);
        }
        match find_record_end(avail, 0, in_quote, quote) {
            Ok(end) => {
                content.consume(end);
                return Ok(true);
            }
            Err(state) => {
                in_quote = state;
                let n = avail.len();
                content.consume(n);
            }
        }
    }
}

/// A group that failed: where it starts, and the error.
struct GroupError {
    stored_at: u64,
    broken: Broken,
}

/// Where a group's records start: inside quotes or not, at its start and at
/// its end.
#[derive(Debug, Clone, Copy, Default)]
struct Quoting {
    at_start: bool,
    at_end: bool,
}

/// Decompresses `group` and folds the content it owns into `init`, in
/// blocks of whole records; the fold is told whether a block starts the file.
fn fold_group<T>(
    reading: &Reading<'_>,
    codec: Codec,
    group: &Range<u64>,
    quoting: Quoting,
    ctl: &Control,
    init: T,
    fold: &(impl Fn(T, &[u8], bool) -> T + Sync),
) -> Result<Result<T, GroupError>, EngineError> {
    let (blob, size, first) = (reading.blob, reading.task.size, group.start == 0);
    let read = Cell::new(0u64);
    let failed = |error, after| GroupError { stored_at: group.start, broken: Broken { error, after } };
    let mut own = match decoded(codec, Counted { inner: blob.stream(group.clone()), read: &read }) {
        Ok(d) => d,
        Err(e) => return Ok(Err(failed(e, 0))),
    };
    let mut counted = 0u64;
    let mut advance = || {
        if reading.progress {
            ctl.add_bytes(read.get() - counted);
            counted = read.get();
        }
    };
    let records = reading.framing.records;
    if !first {
        match skip_record(&mut own, records.quote(), quoting.at_start) {
            Ok(true) => {}
            // No newline: every line here started in an earlier group.
            Ok(false) => {
                advance();
                return Ok(Ok(init));
            }
            Err(e) => return Ok(Err(failed(e, 0))),
        }
    }
    let after_group = group.end;
    let content = Owned {
        own,
        rest: None,
        open_rest: Box::new(move || {
            if after_group == size {
                return Ok(Box::new(io::empty()) as Box<dyn BufRead + '_>);
            }
            decoded(codec, blob.stream(after_group..size))
        }),
        quote: records.quote(),
        in_quote: quoting.at_end,
        done: false,
    };
    let mut blocks = Blocks::new(Box::new(content), records, At { offset: 0, lines: 0 });
    let mut acc = init;
    let mut buf = Vec::new();
    loop {
        ctl.check()?;
        let next = blocks.next_into(&mut buf);
        advance();
        match next {
            Ok(Some(at)) => acc = fold(acc, &buf, first && at.is_start()),
            Ok(None) => return Ok(Ok(acc)),
            Err(broken) => return Ok(Err(GroupError { stored_at: group.start, broken })),
        }
    }
}

/// The codec, stored groups and quote states of a file that is split;
/// `None` when it is read as one stream.
type Prepared = (Codec, Vec<Range<u64>>, Vec<Quoting>);

fn prepare(reading: &Reading<'_>, ctl: &Control) -> Option<Result<Result<Prepared, FileError>, EngineError>> {
    let (codec, groups) = match split(reading)? {
        Ok(split) => split,
        Err(e) => return Some(Ok(Err(e))),
    };
    let quoting = match reading.framing.records.quote() {
        None => vec![Quoting::default(); groups.len()],
        Some(q) => match quote_states(reading, codec, &groups, q, ctl) {
            Ok(Ok(states)) => states,
            Ok(Err(e)) => return Some(Ok(Err(group_error(reading, codec, e)))),
            Err(e) => return Some(Err(e)),
        },
    };
    Some(Ok(Ok((codec, groups, quoting))))
}

/// Folds the content of a file split into groups, the groups in parallel,
/// joining their results in order; `None` when the file is read as one
/// stream (see the module documentation). The fold gets blocks of whole
/// records and whether the block starts the file.
pub fn fold_groups<T: Send>(
    reading: &Reading<'_>,
    ctl: &Control,
    empty: impl Fn() -> T + Sync + Send,
    fold: impl Fn(T, &[u8], bool) -> T + Sync,
    join: impl Fn(T, T) -> T + Sync + Send,
) -> Option<Result<Result<T, FileError>, EngineError>> {
    let (codec, groups, quoting) = match prepare(reading, ctl)? {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Some(Ok(Err(e))),
        Err(e) => return Some(Err(e)),
    };
    let result = groups
        .par_iter()
        .zip(quoting)
        .map(|(g, quoting)| fold_group(reading, codec, g, quoting, ctl, empty(), &fold))
        .try_reduce(
            || Ok(empty()),
            |a, b| Ok(match (a, b) {
                (Ok(a), Ok(b)) => Ok(join(a, b)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }),
        );
    Some(result.map(|r| r.map_err(|e| group_error(reading, codec, e))))
}

/// Folds the groups of a file split into groups as [`fold_groups`] does,
/// as many at once as the pool has threads, and hands each such window's
/// results to `each` in file order, until it says stop; for work whose
/// output must be written in order. `None` when the file is read as one
/// stream.
pub fn fold_windows<T: Send>(
    reading: &Reading<'_>,
    ctl: &Control,
    empty: impl Fn() -> T + Sync + Send,
    fold: impl Fn(T, &[u8], bool) -> T + Sync,
    mut each: impl FnMut(Vec<T>) -> Flow,
) -> Option<Result<Result<(), FileError>, EngineError>> {
    let (codec, groups, quoting) = match prepare(reading, ctl)? {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Some(Ok(Err(e))),
        Err(e) => return Some(Err(e)),
    };
    let window = rayon::current_num_threads().max(1);
    for (groups, quoting) in groups.chunks(window).zip(quoting.chunks(window)) {
        let folded: Result<Vec<_>, EngineError> = groups
            .par_iter()
            .zip(quoting)
            .map(|(g, quoting)| fold_group(reading, codec, g, *quoting, ctl, empty(), &fold))
            .collect();
        let folded = match folded {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        let folded = match folded.into_iter().collect::<Result<Vec<T>, GroupError>>() {
            Ok(f) => f,
            Err(e) => return Some(Ok(Err(group_error(reading, codec, e)))),
        };
        if each(folded) == Flow::Stop {
            break;
        }
    }
    Some(Ok(Ok(())))
}

/// Hands the content of a file split into groups to `each` in order, as
/// many groups decompressed at once as the pool has threads; `None` when
/// the file is read as one stream.
pub fn for_each_group(reading: &Reading<'_>, ctl: &Control, mut each: impl FnMut(&[u8])) -> Option<Result<Result<(), FileError>, EngineError>> {
    let (codec, groups) = match split(reading)? {
        Ok(split) => split,
        Err(e) => return Some(Ok(Err(e))),
    };
    let decompress = |group: &Range<u64>| -> Result<Result<Vec<u8>, GroupError>, EngineError> {
        ctl.check()?;
        let mut content = Vec::new();
        let done = decoded(codec, reading.blob.stream(group.clone())).and_then(|mut d| d.read_to_end(&mut content));
        if reading.progress {
            ctl.add_bytes(group.end - group.start);
        }
        Ok(match done {
            Ok(_) => Ok(content),
            Err(error) => Err(GroupError { stored_at: group.start, broken: Broken { error, after: content.len() as u64 } }),
        })
    };
    for window in groups.chunks(rayon::current_num_threads()) {
        let contents: Result<Vec<_>, EngineError> = window.par_iter().map(decompress).collect();
        let contents = match contents {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        for content in contents {
            match content {
                Ok(c) => each(&c),
                Err(e) => return Some(Ok(Err(group_error(reading, codec, e)))),
            }
        }
    }
    Some(Ok(Ok(())))
}

/// Whether each group starts and ends inside quotes: every group is
/// decompressed and its quote bytes counted, in parallel.
fn quote_states(reading: &Reading<'_>, codec: Codec, groups: &[Range<u64>], quote: u8, ctl: &Control) -> Result<Result<Vec<Quoting>, GroupError>, EngineError> {
    let odd = |group: &Range<u64>| -> Result<Result<bool, GroupError>, EngineError> {
        ctl.check()?;
        let mut quotes = 0usize;
        let mut content_read = 0u64;
        let counted = decoded(codec, reading.blob.stream(group.clone())).and_then(|mut content| loop {
            let avail = content.fill_buf()?;
            if avail.is_empty() {
                return Ok(());
            }
            quotes += bytecount::count(avail, quote);
            let n = avail.len();
            content_read += n as u64;
            content.consume(n);
        });
        Ok(match counted {
            Ok(()) => Ok(quotes % 2 == 1),
            Err(error) => Err(GroupError { stored_at: group.start, broken: Broken { error, after: content_read } }),
        })
    };
    let odd: Vec<bool> = match groups.par_iter().map(odd).collect::<Result<Result<Vec<bool>, GroupError>, EngineError>>()? {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    let mut inside = false;
    Ok(Ok(odd
        .into_iter()
        .map(|o| {
            let at_start = inside;
            inside ^= o;
            Quoting { at_start, at_end: inside }
        })
        .collect()))
}

/// The codec a file is split by, before its units are looked at; `None`
/// when it is read as one stream: not a splittable codec, content that is
/// transcoded or must be read in order, a remote object (whose headers
/// would each cost a request), or too small for two groups.
pub fn splittable(reading: &Reading<'_>) -> Option<Codec> {
    let codec = reading.codec.filter(|c| matches!(c, Codec::Zstd | Codec::Gzip))?;
    if reading.framing.sequential() || reading.blob.file().is_none() || reading.task.size <= GROUP {
        return None;
    }
    // Text read through a decoder (a named encoding, or a byte-order mark
    // that names one) is decoded from its start, in order; text without a
    // byte-order mark is passed through as it is.
    let passed_through = match reading.decode {
        Decode::Bytes => true,
        Decode::Auto => {
            let mut head = Vec::new();
            decoded(codec, reading.blob.stream(0..reading.task.size)).ok()?.take(3).read_to_end(&mut head).ok()?;
            !(head.starts_with(b"\xEF\xBB\xBF") || head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF"))
        }
        Decode::From(_) => false,
    };
    passed_through.then_some(codec)
}

/// The codec and stored groups of a file that is split; `None` when it is
/// read as one stream.
fn split(reading: &Reading<'_>) -> Option<Result<(Codec, Vec<Range<u64>>), FileError>> {
    let codec = splittable(reading)?;
    let (blob, size) = (reading.blob, reading.task.size);
    match units(blob, codec, size) {
        Ok(Some(units)) => {
            let groups = groups(&units, GROUP);
            (groups.len() > 1).then_some(Ok((codec, groups)))
        }
        Ok(None) => None,
        Err(e) => Some(Err(FileError::io(&reading.task.path, &e))),
    }
}

fn group_error(reading: &Reading<'_>, codec: Codec, e: GroupError) -> FileError {
    let reason = format!(
        "{} stream is corrupt or truncated after {} bytes of the content of the frames stored from byte {}: {}",
        codec.name(),
        e.broken.after,
        e.stored_at,
        e.broken.error
    );
    FileError::new(&reading.task.path, None, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Framing, Records};
    use crate::FileTask;
    use std::io::Write;

    fn blob_of(stored: &[u8]) -> Blob {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(stored).unwrap();
        Blob::from(f)
    }

    fn units_of(stored: &[u8], codec: Codec) -> Option<Vec<Range<u64>>> {
        units(&blob_of(stored), codec, stored.len() as u64).unwrap()
    }

    /// Concatenates `parts`, returning the stored bytes and each part's extent.
    fn tiled(parts: Vec<Vec<u8>>) -> (Vec<u8>, Vec<Range<u64>>) {
        let mut stored = Vec::new();
        let mut extents = Vec::new();
        for p in parts {
            extents.push(stored.len() as u64..(stored.len() + p.len()) as u64);
            stored.extend(p);
        }
        (stored, extents)
    }

    fn zstd_with_checksum(data: &[u8]) -> Vec<u8> {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(true).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut out = 0x184D_2A53u32.to_le_bytes().to_vec();
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        out
    }

    /// A BGZF block: a gzip member whose `BC` extra subfield holds its size less one.
    fn bgzf(data: &[u8]) -> Vec<u8> {
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        deflate.write_all(data).unwrap();
        let body = deflate.finish().unwrap();
        let size = 18 + body.len() + 8;
        let mut out = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, b'B', b'C', 2, 0];
        out.extend(((size - 1) as u16).to_le_bytes());
        out.extend(body);
        let mut crc = flate2::Crc::new();
        crc.update(data);
        out.extend(crc.sum().to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text(lines: std::ops::Range<u32>) -> Vec<u8> {
        lines.flat_map(|i| format!("line {i} {}\n", "x".repeat((i % 50) as usize)).into_bytes()).collect()
    }

    #[test]
    fn zstd_frames_are_found_from_their_headers() {
        let data = text(0..20_000);
        let parts = vec![
            zstd::encode_all(&data[..100_000], 1).unwrap(),
            skippable(b"metadata"),
            zstd_with_checksum(&data[100_000..300_000]),
            zstd::encode_all(&data[300_000..], 19).unwrap(),
            zstd::encode_all(&b""[..], 1).unwrap(),
        ];
        let (stored, extents) = tiled(parts);
        assert_eq!(units_of(&stored, Codec::Zstd), Some(extents));
    }

    #[test]
    fn bgzf_blocks_are_found_from_their_size_field() {
        let data = text(0..5_000);
        let (stored, extents) = tiled(data.chunks(65_280).map(bgzf).chain([bgzf(b"")]).collect());
        assert!(extents.len() > 2);
        assert_eq!(units_of(&stored, Codec::Gzip), Some(extents));
    }

    #[test]
    fn single_units_and_plain_gzip_members_are_not_split() {
        let data = text(0..5_000);
        assert_eq!(units_of(&zstd::encode_all(&data[..], 1).unwrap(), Codec::Zstd), None);
        assert_eq!(units_of(&bgzf(&data), Codec::Gzip), None);
        let (members, _) = tiled(vec![gzip(&data), gzip(&data)]);
        assert_eq!(units_of(&members, Codec::Gzip), None);
        let (mut cut, _) = tiled(vec![zstd::encode_all(&data[..], 1).unwrap(), zstd::encode_all(&data[..], 1).unwrap()]);
        cut.truncate(cut.len() - 10);
        assert_eq!(units_of(&cut, Codec::Zstd), None);
    }

    #[test]
    fn groups_join_consecutive_units() {
        let units = [0..3, 3..5, 5..12, 12..13, 13..14];
        assert_eq!(groups(&units, 5), vec![0..5, 5..12, 12..14]);
        assert_eq!(groups(&units, 100), vec![0..14]);
    }

    /// The content each group owns, one group per unit.
    fn owned(stored: &[u8], codec: Codec) -> Vec<Vec<u8>> {
        let blob = blob_of(stored);
        let task = FileTask::new("t", stored.len() as u64);
        let reading = Reading { task: &task, blob: &blob, codec: Some(codec), decode: Decode::Bytes, framing: Framing::LINES, progress: false };
        let units = units(&blob, codec, task.size).unwrap().unwrap();
        let ctl = Control::default();
        let append = |mut acc: Vec<u8>, block: &[u8], _| {
            acc.extend_from_slice(block);
            acc
        };
        units.iter().map(|u| fold_group(&reading, codec, u, Quoting::default(), &ctl, Vec::new(), &append).unwrap().ok().unwrap()).collect()
    }

    #[test]
    fn every_line_is_owned_by_one_group_whole() {
        // Frames cut lines anywhere, and some frames hold no newline at all.
        let data = text(0..3_000);
        let after_a_newline = 40_002 + memchr::memchr(b'\n', &data[40_002..]).unwrap() + 1;
        let cuts = [0, 7, 8, 9, 40_000, 40_001, 40_002, after_a_newline, 90_000, data.len() - 1, data.len()];
        let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        for codec in [Codec::Zstd, Codec::Gzip] {
            let (stored, _) = tiled(parts.iter().map(|p| if codec == Codec::Zstd { zstd::encode_all(*p, 1).unwrap() } else { bgzf(p) }).collect());
            let owned = owned(&stored, codec);
            assert_eq!(owned.concat(), data, "{codec:?}");
            for o in &owned {
                assert!(o.is_empty() || (o.ends_with(b"\n") && o.starts_with(b"line ")), "{codec:?}");
            }
        }
    }

    #[test]
    fn every_csv_record_is_owned_by_one_group_whole() {
        // Most newlines lie inside quotes, so most units start inside a quoted field.
        let data: Vec<u8> = (0..4_000).flat_map(|i| format!("{i},\"a\nb \"\"{i}\"\"\nc\",x\n").into_bytes()).collect();
        let parts: Vec<&[u8]> = data.chunks(997).collect();
        let (stored, _) = tiled(parts.iter().map(|p| zstd::encode_all(*p, 1).unwrap()).collect());
        let blob = blob_of(&stored);
        let task = FileTask::new("t", stored.len() as u64);
        let framing = Framing { records: Records::Quotes(b'"'), ..Framing::LINES };
        let reading = Reading { task: &task, blob: &blob, codec: Some(Codec::Zstd), decode: Decode::Bytes, framing, progress: false };
        let units = units(&blob, Codec::Zstd, task.size).unwrap().unwrap();
        let ctl = Control::default();
        let quoting = quote_states(&reading, Codec::Zstd, &units, b'"', &ctl).unwrap().ok().unwrap();
        assert!(quoting.iter().filter(|q| q.at_start).count() > units.len() / 2);
        let append = |mut acc: Vec<u8>, block: &[u8], _| {
            acc.extend_from_slice(block);
            acc
        };
        let owned: Vec<Vec<u8>> = units
            .iter()
            .zip(&quoting)
            .map(|(u, q)| fold_group(&reading, Codec::Zstd, u, *q, &ctl, Vec::new(), &append).unwrap().ok().unwrap())
            .collect();
        assert_eq!(owned.concat(), data);
        for o in owned.iter().filter(|o| !o.is_empty()) {
            let first = &o[..memchr::memchr(b',', o).unwrap()];
            assert!(first.iter().all(u8::is_ascii_digit) && o.ends_with(b",x\n"), "{}", String::from_utf8_lossy(o));
            assert_eq!(bytecount::count(o, b'"') % 2, 0);
        }
    }

    #[test]
    fn a_corrupt_unit_fails_its_group() {
        let data = text(0..3_000);
        let (mut stored, extents) = tiled(data.chunks(20_000).map(|c| zstd::encode_all(c, 1).unwrap()).collect());
        let middle = &extents[2];
        for b in &mut stored[(middle.start + 20) as usize..(middle.end - 4) as usize] {
            *b ^= 0x5a;
        }
        let blob = blob_of(&stored);
        let task = FileTask::new("t", stored.len() as u64);
        let reading = Reading { task: &task, blob: &blob, codec: Some(Codec::Zstd), decode: Decode::Bytes, framing: Framing::LINES, progress: false };
        let count = |n: u64, block: &[u8], _| n + block.len() as u64;
        let ctl = Control::default();
        assert!(fold_group(&reading, Codec::Zstd, &extents[1], Quoting::default(), &ctl, 0, &count).unwrap().is_err(), "its last line runs into the corrupt frame");
        let e = fold_group(&reading, Codec::Zstd, middle, Quoting::default(), &ctl, 0, &count).unwrap().err().unwrap();
        assert_eq!(e.stored_at, middle.start);
        assert!(fold_group(&reading, Codec::Zstd, &extents[0], Quoting::default(), &ctl, 0, &count).unwrap().is_ok());
    }
}
