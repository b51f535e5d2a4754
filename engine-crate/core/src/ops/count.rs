//! `count`: lines, words and bytes, like `wc -l -w -c`.
//!
//! Lines are `\n` bytes (SIMD byte count). Words are maximal runs of
//! non-whitespace bytes (ASCII whitespace: space, `\t`, `\n`, `\v`, `\f`,
//! `\r`), counted as "non-space byte preceded by a space byte" so any byte
//! range can be counted on its own and neighbouring ranges joined exactly.
//! Big files are cut into plain byte ranges counted in parallel.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use crate::blob::Blob;

use crate::codec::{for_each_block, Decode, Flow, Framing, Input};
use crate::format::Format;
use crate::frames::fold_groups;

use super::options::Options;
use super::Operation;
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::io::{read_piece, read_to_end_from, with_buffer};
use crate::partial::Body;
use crate::FileTask;

/// Bytes per parallel range of a big file.
pub const CHUNK: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct CountOp {
    pub chunk: u64,
}

impl CountOp {
    pub fn from_options(text: &str) -> Result<Self, EngineError> {
        Options::parse("count", text)?.finish()?;
        Ok(CountOp { chunk: CHUNK })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileCount {
    pub path: String,
    pub lines: u64,
    pub words: u64,
    pub bytes: u64,
    /// Rows of a Parquet file (whose lines and words mean nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CountBody {
    pub lines: u64,
    pub words: u64,
    pub bytes: u64,
    pub files: Vec<FileCount>,
}

fn file_order(a: &FileCount, b: &FileCount) -> std::cmp::Ordering {
    a.path.as_bytes().cmp(b.path.as_bytes()).then((a.lines, a.words, a.bytes, a.rows).cmp(&(b.lines, b.words, b.bytes, b.rows)))
}

fn sort_files(files: &mut [FileCount]) {
    files.sort_by(file_order);
}

impl Body for CountBody {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.lines += other.lines;
        self.words += other.words;
        self.bytes += other.bytes;
        self.files.extend(other.files);
        sort_files(&mut self.files);
        Ok(())
    }

    fn result(&self) -> Value {
        let mut files = self.files.clone();
        sort_files(&mut files);
        json!({"lines": self.lines, "words": self.words, "bytes": self.bytes, "files": files})
    }

    fn write_result(&self, out: &mut dyn std::io::Write) -> Result<(), String> {
        #[derive(Serialize)]
        struct CountOut<'a> {
            bytes: u64,
            lines: u64,
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            rows: Option<u64>,
            words: u64,
        }
        #[derive(Serialize)]
        struct ResultOut<'a> {
            bytes: u64,
            files: Vec<CountOut<'a>>,
            lines: u64,
            words: u64,
        }
        let mut files: Vec<&FileCount> = self.files.iter().collect();
        files.sort_by(|a, b| file_order(a, b));
        let files = files.iter().map(|f| CountOut { bytes: f.bytes, lines: f.lines, path: &f.path, rows: f.rows, words: f.words }).collect();
        let r = ResultOut { bytes: self.bytes, files, lines: self.lines, words: self.words };
        serde_json::to_writer(out, &r).map_err(|e| e.to_string())
    }

    fn strip(&mut self) {
        self.files.clear();
    }
}

/// Counts of one byte range, joinable with its neighbours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Piece {
    pub bytes: u64,
    pub lines: u64,
    /// Word starts inside the range, counting its first byte when non-space.
    pub words: u64,
    pub first_is_word: bool,
    pub last_is_word: bool,
}

#[inline(always)]
fn is_space(b: u8) -> bool {
    b == b' ' || b.wrapping_sub(b'\t') < 5
}

/// Newlines in `buf[1..]`, and the positions `i >= 1` where `buf[i-1]` is
/// space and `buf[i]` is not: one pass for both, so each byte is loaded once.
fn lines_and_word_starts(buf: &[u8]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has just been seen to support AVX-512BW.
        return unsafe { lines_and_word_starts_avx512(buf) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been seen to support AVX2.
        return unsafe { lines_and_word_starts_avx2(buf) };
    }
    lines_and_word_starts_portable::<32>(buf)
}

/// The same loop over 64-byte vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn lines_and_word_starts_avx512(buf: &[u8]) -> (u64, u64) {
    lines_and_word_starts_portable::<64>(buf)
}

/// The same loop compiled for 32-byte vectors, chosen at run time so the
/// engine still runs on CPUs without them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lines_and_word_starts_avx2(buf: &[u8]) -> (u64, u64) {
    lines_and_word_starts_portable::<32>(buf)
}

#[inline(always)]
fn lines_and_word_starts_portable<const LANES: usize>(buf: &[u8]) -> (u64, u64) {
    if buf.len() < 2 {
        return (0, 0);
    }
    let (prev, cur) = (&buf[..buf.len() - 1], &buf[1..]);
    let (mut lines, mut starts) = (0u64, 0u64);
    let mut pc = prev.chunks_exact(LANES);
    let mut cc = cur.chunks_exact(LANES);
    // Per-lane u8 counters over at most 255 blocks cannot overflow; fixed
    // width blocks let the compiler keep the whole pass in vector registers.
    loop {
        let mut newline = [0u8; LANES];
        let mut start = [0u8; LANES];
        let mut blocks = 0;
        while blocks < 255 {
            let (Some(p), Some(c)) = (pc.next(), cc.next()) else { break };
            for k in 0..LANES {
                newline[k] = newline[k].wrapping_add((c[k] == b'\n') as u8);
                start[k] = start[k].wrapping_add((is_space(p[k]) & !is_space(c[k])) as u8);
            }
            blocks += 1;
        }
        lines += newline.iter().map(|&x| x as u64).sum::<u64>();
        starts += start.iter().map(|&x| x as u64).sum::<u64>();
        if blocks < 255 {
            break;
        }
    }
    for (&a, &b) in pc.remainder().iter().zip(cc.remainder()) {
        lines += (b == b'\n') as u64;
        starts += (is_space(a) & !is_space(b)) as u64;
    }
    (lines, starts)
}

impl Piece {
    pub fn of(buf: &[u8]) -> Piece {
        if buf.is_empty() {
            return Piece::default();
        }
        let first_is_word = !is_space(buf[0]);
        let (lines, starts) = lines_and_word_starts(buf);
        Piece {
            bytes: buf.len() as u64,
            lines: lines + (buf[0] == b'\n') as u64,
            words: starts + first_is_word as u64,
            first_is_word,
            last_is_word: !is_space(buf[buf.len() - 1]),
        }
    }

    /// Joins `self` with the range that directly follows it.
    pub fn then(self, next: Piece) -> Piece {
        if self.bytes == 0 {
            return next;
        }
        if next.bytes == 0 {
            return self;
        }
        Piece {
            bytes: self.bytes + next.bytes,
            lines: self.lines + next.lines,
            words: self.words + next.words - (self.last_is_word && next.first_is_word) as u64,
            first_is_word: self.first_is_word,
            last_is_word: next.last_is_word,
        }
    }
}

/// A Parquet file's rows, from its footer.
fn parquet_rows(task: &FileTask, input: &Input, ctl: &Control) -> Result<u64, FileError> {
    let file = crate::ops::stats::parquet::Positioned::new(&input.blob).map_err(|e| FileError::io(&task.path, &e))?;
    let reader = parquet::file::reader::SerializedFileReader::new(file)
        .map_err(|e| FileError::new(&task.path, None, format!("parquet: {e}")))?;
    ctl.add_bytes(task.size);
    Ok(parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows().max(0) as u64)
}

/// Bytes read at a time inside a range: small enough that counting runs on
/// data still in cache right after the copy.
const READ_PIECE: usize = 512 << 10;

/// Counts `len` bytes from `off` (to end of input when `None`), reading in
/// cache-sized pieces from a stream (an object is read ahead in large ranges).
fn count_range(blob: &Blob, off: u64, len: Option<u64>, ctl: &Control, buf: &mut Vec<u8>) -> std::io::Result<Piece> {
    let mut stream = blob.stream(off..len.map_or(u64::MAX, |l| off + l));
    let mut piece = Piece::default();
    loop {
        buf.clear();
        let got = read_piece(&mut stream, READ_PIECE, buf)?;
        ctl.add_bytes(got as u64);
        if got > 0 {
            piece = piece.then(Piece::of(buf));
        }
        if got < READ_PIECE {
            return Ok(piece);
        }
    }
}

fn count_file(op: &CountOp, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<Piece, FileError>, EngineError> {
    if let Some(reading) = input.reading(task, Decode::Bytes, Framing::LINES, true) {
        if let Some(split) = fold_groups(&reading, ctl, Piece::default, |p, block, _| p.then(Piece::of(block)), Piece::then) {
            return split;
        }
        let mut piece = Piece::default();
        let done = for_each_block(reading, ctl, |block, _| {
            piece = piece.then(Piece::of(block));
            Ok(Flow::More)
        })?;
        return Ok(done.map(|()| piece));
    }
    if let Some(all) = input.whole() {
        ctl.add_bytes(all.len() as u64);
        return Ok(Ok(Piece::of(all)));
    }
    let blob = &input.blob;
    let n = crate::split::chunk_count(task.size, op.chunk);
    if n == 1 {
        return Ok(with_buffer(|buf| match read_to_end_from(blob, 0, buf, task.size as usize + 1) {
            Ok(_) => {
                ctl.add_bytes(buf.len() as u64);
                Ok(Piece::of(buf))
            }
            Err(e) => Err(FileError::io(&task.path, &e)),
        }));
    }
    if let Some(piece) = blob.file().map(|file| count_mapped(file, n, op.chunk, ctl)).transpose()?.flatten() {
        return Ok(Ok(piece));
    }
    let chunk = op.chunk;
    let piece = (0..n)
        .into_par_iter()
        .map(|i| -> Result<Result<Piece, FileError>, EngineError> {
            ctl.check()?;
            let off = i as u64 * chunk;
            let len = if i + 1 < n { Some(chunk) } else { None };
            Ok(with_buffer(|buf| count_range(blob, off, len, ctl, buf)).map_err(|e| FileError::io(&task.path, &e)))
        })
        .try_reduce(
            || Ok(Piece::default()),
            |a, b| Ok(match (a, b) {
                (Ok(a), Ok(b)) => Ok(a.then(b)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }),
        )?;
    Ok(piece)
}

/// Counts a file of `n` chunks through a memory map, the chunks in parallel:
/// the count reads the page cache itself instead of a copy of it (the copy
/// took more time than the count). `None` when the file cannot be mapped
/// (the caller then reads it).
fn count_mapped(file: &std::fs::File, n: usize, chunk: u64, ctl: &Control) -> Result<Option<Piece>, EngineError> {
    // SAFETY: the map is read-only and dropped before returning; a file
    // truncated underneath would fault, the same trade-off as grep's maps.
    let Ok(map) = (unsafe { memmap2::Mmap::map(file) }) else { return Ok(None) };
    let _ = map.advise(memmap2::Advice::Sequential);
    let chunk = chunk as usize;
    (0..n)
        .into_par_iter()
        .map(|i| {
            ctl.check()?;
            let end = if i + 1 < n { (i + 1) * chunk } else { map.len() };
            let start = (i * chunk).min(end);
            let bytes = &map[start..end];
            ctl.add_bytes(bytes.len() as u64);
            Ok(Piece::of(bytes))
        })
        .try_reduce(Piece::default, |a, b| Ok(a.then(b)))
        .map(Some)
}

impl Operation for CountOp {
    type Body = CountBody;
    const NAME: &'static str = "count";

    fn empty(&self) -> CountBody {
        CountBody::default()
    }

    fn process_file(&self, task: &FileTask, input: &Input, ctl: &Control, acc: &mut CountBody) -> Result<Result<(), FileError>, EngineError> {
        if Format::is_parquet(&task.path, input) {
            return Ok(parquet_rows(task, input, ctl).map(|rows| {
                acc.bytes += task.size;
                let (path, bytes) = (task.path.clone(), task.size);
                acc.files.push(FileCount { path, lines: 0, words: 0, bytes, rows: Some(rows) });
            }));
        }
        Ok(count_file(self, task, input, ctl)?.map(|p| {
            acc.lines += p.lines;
            acc.words += p.words;
            acc.bytes += p.bytes;
            acc.files.push(FileCount { path: task.path.clone(), lines: p.lines, words: p.words, bytes: p.bytes, rows: None });
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(buf: &[u8]) -> (u64, u64) {
        let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let words = buf.split(|&b| is_space(b)).filter(|w| !w.is_empty()).count() as u64;
        (lines, words)
    }

    #[test]
    fn counts_like_wc() {
        let p = Piece::of(b"hello world\n  two\tlines\r\n\x0bx");
        assert_eq!((p.lines, p.words, p.bytes), (2, 5, 27));
        assert_eq!(Piece::of(b""), Piece::default());
    }

    /// Bytes drawn mostly from spaces, newlines and letters, so that every
    /// counter of the vector loop is exercised, beyond 255 blocks of 32.
    fn mixed_text(len: usize) -> Vec<u8> {
        let alphabet = b" \n\ta\r\x0bbc\xff";
        let mut x = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                alphabet[x as usize % alphabet.len()]
            })
            .collect()
    }

    /// Lengths around 255 blocks of 32 and of 64 bytes, where the loop's
    /// per-lane counters are added up.
    const LONG: [usize; 9] = [8159, 8160, 8161, 8193, 16_319, 16_320, 16_321, 16_385, 300_001];

    #[test]
    fn long_buffers_count_like_wc() {
        for len in LONG {
            let data = mixed_text(len);
            let p = Piece::of(&data);
            assert_eq!((p.lines, p.words, p.bytes), { let (l, w) = naive(&data); (l, w, len as u64) });
        }
    }

    #[test]
    fn every_vector_width_counts_the_same() {
        for len in LONG {
            let data = mixed_text(len);
            let lines = data[1..].iter().filter(|&&b| b == b'\n').count() as u64;
            let starts = data.windows(2).filter(|w| is_space(w[0]) && !is_space(w[1])).count() as u64;
            assert_eq!(lines_and_word_starts_portable::<32>(&data), (lines, starts), "32 lanes, {len} bytes");
            assert_eq!(lines_and_word_starts_portable::<64>(&data), (lines, starts), "64 lanes, {len} bytes");
            assert_eq!(lines_and_word_starts(&data), (lines, starts), "the CPU's own, {len} bytes");
        }
    }

    #[test]
    fn a_mapped_file_counts_like_one_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("big.txt");
        let data = mixed_text(100_003);
        std::fs::write(&path, &data).unwrap();
        let task = FileTask::new(path.to_str().unwrap(), data.len() as u64);
        let input = Input::new(&task, Blob::from(std::fs::File::open(&path).unwrap())).unwrap();
        let op = CountOp { chunk: 4096 };
        let p = count_file(&op, &task, &input, &Control::default()).unwrap().unwrap();
        let (lines, words) = naive(&data);
        assert_eq!((p.lines, p.words, p.bytes), (lines, words, data.len() as u64));
    }

    proptest! {
        #[test]
        fn split_pieces_join_exactly(data in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\n'), Just(b'a'), Just(b'\t'), any::<u8>()], 0..2000), cuts in proptest::collection::vec(0usize..2000, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut joined = Piece::default();
            let mut last = 0;
            for c in cuts.into_iter().chain(std::iter::once(data.len())) {
                joined = joined.then(Piece::of(&data[last..c]));
                last = c;
            }
            let (lines, words) = naive(&data);
            prop_assert_eq!(joined.lines, lines);
            prop_assert_eq!(joined.words, words);
            prop_assert_eq!(joined.bytes, data.len() as u64);
        }

        #[test]
        fn merge_laws(a in prop::collection::vec(("[a-c]{1,3}", 0u64..100, 0u64..100, 0u64..100), 0..5),
                      b in prop::collection::vec(("[a-c]{1,3}", 0u64..100, 0u64..100, 0u64..100), 0..5),
                      c in prop::collection::vec(("[a-c]{1,3}", 0u64..100, 0u64..100, 0u64..100), 0..5)) {
            let mk = |v: &Vec<(String, u64, u64, u64)>| {
                let mut body = CountBody::default();
                for (p, l, w, by) in v {
                    body.lines += l; body.words += w; body.bytes += by;
                    body.files.push(FileCount { path: p.clone(), lines: *l, words: *w, bytes: *by, rows: None });
                }
                body
            };
            let m = |x: CountBody, y: CountBody| { let mut x = x; x.merge(y).unwrap(); x };
            let left = m(m(mk(&a), mk(&b)), mk(&c));
            let right = m(mk(&a), m(mk(&b), mk(&c)));
            let swapped = m(mk(&c), m(mk(&b), mk(&a)));
            prop_assert_eq!(left.result(), right.result());
            prop_assert_eq!(left.result(), swapped.result());
        }
    }
}
