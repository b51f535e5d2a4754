//! Splitting big files into chunks that several threads process at once.
//!
//! A file of `size` bytes is cut into `n = ceil(size / chunk)` raw ranges.
//! Raw range `i` starts at `raw_start(i)` (`0`, then `i * chunk - 1`). Chunk
//! `i` owns the records that *start* after the first record terminator found
//! at or after `raw_start(i)` (chunk 0 owns the file start) up to and
//! including the terminator found at or after `raw_start(i + 1)`. Both
//! neighbours compute a shared boundary the same way, so every record is
//! owned by exactly one chunk.
//!
//! For CSV a `\n` ends a record only outside quotes. With RFC 4180 quoting a
//! position is inside quotes exactly when the number of quote bytes before it
//! is odd (a doubled quote adds two), so a cheap parallel pass counts quotes
//! per raw range and a prefix sum gives every boundary's starting state
//! ([`quote_parities`]). An odd total means an unterminated quote.

use rayon::prelude::*;
use crate::blob::Blob;
use std::io;

use crate::control::Control;
use crate::io::{read_range_into, read_to_end_from, with_buffer};

/// Number of chunks for a file of `size` bytes.
pub fn chunk_count(size: u64, chunk: u64) -> usize {
    if size <= chunk {
        1
    } else {
        size.div_ceil(chunk) as usize
    }
}

/// Cache line size the copy alignment below is reckoned in.
const CACHE_LINE: usize = 64;

/// How many bytes before `offset` to read a range of about `len` bytes from,
/// so that the kernel copies it into `buf` (after `buf`'s current end)
/// between addresses equally placed within a cache line. glibc hands out a
/// large buffer 16 bytes into a page, while chunks start one byte before a
/// multiple of the chunk size; `preadv` of a cached file into a destination so
/// misplaced took 2.5-3 times as long as into an aligned one, and that copy
/// was 14 % of a `stats` profile (4 % once aligned). Zero at the file start,
/// which cannot be read from earlier, and for objects, which are not copied
/// from the page cache.
fn copy_lead(blob: &Blob, offset: u64, len: usize, buf: &mut Vec<u8>) -> u64 {
    if !matches!(blob, Blob::Local(_)) {
        return 0;
    }
    buf.reserve(len + CACHE_LINE);
    let destination = buf.as_ptr() as usize + buf.len();
    let lead = (offset as usize).wrapping_sub(destination) % CACHE_LINE;
    if lead as u64 > offset { 0 } else { lead as u64 }
}

/// First byte of raw range `i`.
#[inline]
pub fn raw_start(i: usize, chunk: u64) -> u64 {
    if i == 0 {
        0
    } else {
        i as u64 * chunk - 1
    }
}

/// Scans `buf[from..]` for the first `\n` outside quotes, starting in state
/// `in_quote`. Returns the index just after it, or the state at the end.
#[inline]
pub fn find_record_end(buf: &[u8], from: usize, mut in_quote: bool, quote: Option<u8>) -> Result<usize, bool> {
    let hay = &buf[from..];
    match quote {
        None => match memchr::memchr(b'\n', hay) {
            Some(p) => Ok(from + p + 1),
            None => Err(false),
        },
        Some(q) => {
            for p in memchr::memchr2_iter(q, b'\n', hay) {
                if hay[p] == q {
                    in_quote = !in_quote;
                } else if !in_quote {
                    return Ok(from + p + 1);
                }
            }
            Err(in_quote)
        }
    }
}

/// Quote state at the start of every raw range, plus the state at end of
/// file (`n + 1` entries; `true` = inside quotes).
pub fn quote_parities(blob: &Blob, n: usize, chunk: u64, quote: u8, ctl: &Control) -> Result<Vec<bool>, io::Error> {
    let counts: Vec<Result<bool, io::Error>> = (0..n)
        .into_par_iter()
        .map(|i| {
            if ctl.is_cancelled() {
                return Ok(false);
            }
            with_buffer(|buf| {
                let s = raw_start(i, chunk);
                let lead = copy_lead(blob, s, chunk as usize, buf);
                if i + 1 < n {
                    read_range_into(blob, s - lead, (raw_start(i + 1, chunk) - s + lead) as usize, buf)?;
                } else {
                    read_to_end_from(blob, s - lead, buf, chunk as usize + 1)?;
                }
                Ok(bytecount::count(buf.get(lead as usize..).unwrap_or_default(), quote) % 2 == 1)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n + 1);
    let mut state = false;
    out.push(state);
    for c in counts {
        state ^= c?;
        out.push(state);
    }
    Ok(out)
}

/// A chunk's bytes: `buf[start..end]` holds whole records; `base` is the file
/// offset of `buf[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aligned {
    pub base: u64,
    pub start: usize,
    pub end: usize,
}

/// Reads chunk `i` of `n` into `buf` (cleared first) and aligns it to record
/// boundaries. `parity` holds the quote state at each raw start (all `false`
/// for line-oriented data, where `quote` is `None`).
pub fn read_aligned(
    blob: &Blob,
    i: usize,
    n: usize,
    chunk: u64,
    quote: Option<u8>,
    parity: &[bool],
    buf: &mut Vec<u8>,
) -> io::Result<Aligned> {
    buf.clear();
    let raw = raw_start(i, chunk);
    let lead = copy_lead(blob, raw, chunk as usize, buf);
    let base = raw - lead;
    if i + 1 < n {
        read_range_into(blob, base, (raw_start(i + 1, chunk) - base) as usize, buf)?;
    } else {
        read_to_end_from(blob, base, buf, chunk as usize + 1)?;
    }
    let pstate = |k: usize| parity.get(k).copied().unwrap_or(false);
    let start = if i == 0 {
        0
    } else {
        match find_record_end(buf, (lead as usize).min(buf.len()), pstate(i), quote) {
            Ok(p) => p,
            Err(_) => return Ok(Aligned { base, start: buf.len(), end: buf.len() }),
        }
    };
    if i + 1 == n {
        return Ok(Aligned { base, start, end: buf.len() });
    }
    // Extend past the next raw start to the shared boundary.
    let mut state = pstate(i + 1);
    let mut from = buf.len();
    loop {
        let got = read_range_into(blob, base + buf.len() as u64, 256 * 1024, buf)?;
        if got == 0 {
            return Ok(Aligned { base, start, end: buf.len() });
        }
        match find_record_end(buf, from, state, quote) {
            Ok(p) => return Ok(Aligned { base, start, end: p }),
            Err(s) => state = s,
        }
        from = buf.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunks_of(data: &[u8], chunk: u64, quote: Option<u8>) -> Vec<Vec<u8>> {
        let f = Blob::from(tempfile::tempfile().unwrap());
        (&*f.file().unwrap()).write_all(data).unwrap();
        let n = chunk_count(data.len() as u64, chunk);
        let ctl = Control::default();
        let parity = match quote {
            Some(q) => quote_parities(&f, n, chunk, q, &ctl).unwrap(),
            None => vec![false; n + 1],
        };
        let mut out = Vec::new();
        for i in 0..n {
            let mut buf = Vec::new();
            let a = read_aligned(&f, i, n, chunk, quote, &parity, &mut buf).unwrap();
            out.push(buf[a.start..a.end].to_vec());
        }
        out
    }

    #[test]
    fn line_chunks_cover_file_exactly() {
        let data = b"aa\nbbbb\n\nc\ndddddddd\ne";
        for chunk in 1..25u64 {
            let parts = chunks_of(data, chunk, None);
            assert_eq!(parts.concat(), data.to_vec(), "chunk {chunk}");
            for p in &parts[..parts.len() - 1] {
                assert!(p.is_empty() || p.ends_with(b"\n"));
            }
        }
    }

    #[test]
    fn chunks_read_from_before_their_start_still_cover_the_file_exactly() {
        // Offsets past the first cache line let the reads start early.
        let mut data = Vec::new();
        for i in 0..400 {
            data.extend_from_slice(format!("{i},\"q{}\n,x\",{}\n", "z".repeat(i % 13), i * 7).as_bytes());
        }
        for chunk in (97..1500u64).step_by(71) {
            assert_eq!(chunks_of(&data, chunk, Some(b'"')).concat(), data, "chunk {chunk}");
            assert_eq!(chunks_of(&data, chunk, None).concat(), data, "chunk {chunk}");
        }
    }

    #[test]
    fn the_lead_places_the_copy_on_the_sources_cache_line_offset() {
        let f = Blob::from(tempfile::tempfile().unwrap());
        for filled in 0..70 {
            for offset in [0u64, 1, 63, 64, 65, 8 << 20, (8 << 20) - 1] {
                let mut buf = vec![7u8; filled];
                let lead = copy_lead(&f, offset, 1000, &mut buf);
                let destination = buf.as_ptr() as usize + buf.len();
                assert!(lead <= offset && lead < CACHE_LINE as u64);
                if offset >= CACHE_LINE as u64 {
                    assert_eq!((destination as u64).wrapping_sub(offset - lead) % CACHE_LINE as u64, 0, "{filled} {offset}");
                }
            }
        }
    }

    #[test]
    fn csv_chunks_respect_quotes() {
        let data = b"a,b\n\"x\ny\",1\n\"\"\"q\n\",2\nz,3\n";
        for chunk in 1..30u64 {
            let parts = chunks_of(data, chunk, Some(b'"'));
            assert_eq!(parts.concat(), data.to_vec());
            let starts: Vec<&Vec<u8>> = parts.iter().filter(|p| !p.is_empty()).collect();
            for p in starts {
                assert!(p.starts_with(b"a,") || p.starts_with(b"\"x") || p.starts_with(b"\"\"\"q") || p.starts_with(b"z,"), "{chunk} {:?}", String::from_utf8_lossy(p));
            }
        }
    }
}
