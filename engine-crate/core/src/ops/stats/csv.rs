//! A zero-copy RFC 4180 record parser over a buffer of whole records.
//!
//! * Lines without a quote byte take a fast path: one `memchr` for the line
//!   end and one for the quote, then delimiter splitting with `memchr_iter`.
//! * Quoted fields may contain delimiters, newlines and doubled quotes;
//!   only fields with doubled quotes are copied (into a per-record scratch).
//! * `\r\n` line ends are accepted; blank lines are skipped.
//! * A quote inside an unquoted field is literal; text after a closing quote
//!   is appended to the field (lenient, like most readers).
//! * A quoted field without its closing quote is an error at the offset of
//!   the record's first byte.
//! * Dialect options: another quote byte, or none (no quoting: a quote is
//!   literal); an escape byte that makes the next byte of a quoted field
//!   literal (doubled quotes are then not special); a comment byte that
//!   makes a line starting with it be skipped.

use memchr::{memchr, memchr2, memchr_iter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    /// `None`: no quoting.
    pub quote: Option<u8>,
    /// `None`: a quote inside a quoted field is written doubled.
    pub escape: Option<u8>,
    /// Lines starting with this byte are skipped.
    pub comment: Option<u8>,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect { delimiter: b',', quote: Some(b'"'), escape: None, comment: None }
    }
}

impl Dialect {
    /// The byte the scanners look for as a quote: a newline, never found
    /// inside a line, when there is no quoting.
    #[inline]
    fn quote_byte(&self) -> u8 {
        self.quote.unwrap_or(b'\n')
    }

    /// The end of the last whole record in `buf` (which starts at a record
    /// start), found by parsing it: exact with escapes and comment lines,
    /// where quote parity is not.
    pub fn last_record_end(&self, buf: &[u8]) -> Option<usize> {
        let mut reader = Reader::new(buf, *self);
        let mut rec = Record::default();
        let mut last = None;
        loop {
            match reader.next_record(&mut rec) {
                Ok(Some(_)) if reader.pos <= buf.len() && buf[reader.pos - 1] == b'\n' => last = Some(reader.pos),
                // Only blank or comment lines follow the last record.
                Ok(None) => return memchr::memrchr(b'\n', buf).map(|p| p + 1),
                _ => return last,
            }
        }
    }
}

/// Fields of the current record: ranges into the input buffer, or into the
/// record's scratch for fields that needed unescaping.
#[derive(Debug, Default)]
pub struct Record {
    fields: Vec<(usize, usize, bool)>,
    scratch: Vec<u8>,
}

impl Record {
    #[inline]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    #[inline]
    pub fn get<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e, scratch) = self.fields[i];
        if scratch {
            &self.scratch[s..e]
        } else {
            &buf[s..e]
        }
    }

    #[inline]
    pub fn iter<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields.iter().map(move |&(s, e, scratch)| if scratch { &self.scratch[s..e] } else { &buf[s..e] })
    }

    fn clear(&mut self) {
        self.fields.clear();
        self.scratch.clear();
    }
}

/// Error: unterminated quoted field in the record starting at this offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unterminated(pub usize);

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    d: Dialect,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], d: Dialect) -> Self {
        Reader { buf, pos: 0, d }
    }

    /// Skips the comment lines at the current position.
    #[inline]
    fn skip_comments(&mut self) {
        if let Some(c) = self.d.comment {
            while self.pos < self.buf.len() && self.buf[self.pos] == c {
                self.pos = memchr(b'\n', &self.buf[self.pos..]).map_or(self.buf.len(), |p| self.pos + p + 1);
            }
        }
    }

    /// Reads the next non-blank record into `rec`; returns its start offset.
    #[inline]
    pub fn next_record(&mut self, rec: &mut Record) -> Result<Option<usize>, Unterminated> {
        #[cfg(target_arch = "x86_64")]
        if self.d.delimiter != b'\r' && self.d.delimiter != b'\n' {
            return self.next_record_sse2(rec);
        }
        self.next_record_memchr(rec)
    }

    /// [`Reader::next_record`] in one pass over 16-byte blocks: newline,
    /// quote and delimiter positions come from three byte compares per block.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn next_record_sse2(&mut self, rec: &mut Record) -> Result<Option<usize>, Unterminated> {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        let buf = self.buf;
        let len = buf.len();
        let (dl, qt) = (self.d.delimiter, self.d.quote_byte());
        // SAFETY: SSE2 is part of the x86_64 baseline; every load reads
        // buf[p..p + 16] with p + 16 <= len (unaligned loads).
        let block = |p: usize| unsafe {
            let v = _mm_loadu_si128(buf.as_ptr().add(p) as *const __m128i);
            let m = |c: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u32;
            (m(b'\n'), m(qt), m(dl))
        };
        loop {
            self.skip_comments();
            let start = self.pos;
            if start >= len {
                return Ok(None);
            }
            rec.clear();
            let mut s = start;
            let mut p = start;
            let nl = loop {
                if p + 16 <= len {
                    let (mn, mq, md) = block(p);
                    // Bits before the first newline of the block.
                    let upto = if mn != 0 { (mn & mn.wrapping_neg()) - 1 } else { 0xffff };
                    if mq & upto != 0 {
                        return self.slow(rec, start).map(Some);
                    }
                    let mut dm = md & upto;
                    while dm != 0 {
                        let i = p + dm.trailing_zeros() as usize;
                        rec.fields.push((s, i, false));
                        s = i + 1;
                        dm &= dm - 1;
                    }
                    if mn != 0 {
                        break p + mn.trailing_zeros() as usize;
                    }
                    p += 16;
                } else {
                    while p < len {
                        let b = buf[p];
                        if b == b'\n' {
                            break;
                        }
                        if b == qt {
                            return self.slow(rec, start).map(Some);
                        }
                        if b == dl {
                            rec.fields.push((s, p, false));
                            s = p + 1;
                        }
                        p += 1;
                    }
                    break p;
                }
            };
            self.pos = nl + 1;
            let mut end = nl;
            if end > start && buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end == start {
                continue;
            }
            rec.fields.push((s, end, false));
            return Ok(Some(start));
        }
    }

    #[inline]
    fn next_record_memchr(&mut self, rec: &mut Record) -> Result<Option<usize>, Unterminated> {
        let buf = self.buf;
        loop {
            self.skip_comments();
            if self.pos >= buf.len() {
                return Ok(None);
            }
            let start = self.pos;
            let nl = memchr(b'\n', &buf[start..]).map_or(buf.len(), |p| start + p);
            let mut line = &buf[start..nl];
            if memchr(self.d.quote_byte(), line).is_some() {
                return self.slow(rec, start).map(Some);
            }
            self.pos = nl + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                continue;
            }
            rec.clear();
            let mut s = start;
            for d in memchr_iter(self.d.delimiter, line) {
                rec.fields.push((s, start + d, false));
                s = start + d + 1;
            }
            rec.fields.push((s, start + line.len(), false));
            return Ok(Some(start));
        }
    }

    fn slow(&mut self, rec: &mut Record, start: usize) -> Result<usize, Unterminated> {
        let buf = self.buf;
        let (delim, quote, escape) = (self.d.delimiter, self.d.quote_byte(), self.d.escape);
        let len = buf.len();
        rec.clear();
        let mut p = start;
        loop {
            if p < len && buf[p] == quote {
                p += 1;
                let s = p;
                let sc = rec.scratch.len();
                let mut copied = false;
                let (mut fs, mut fe);
                loop {
                    let found = match escape {
                        Some(e) => memchr2(quote, e, &buf[p..]),
                        None => memchr(quote, &buf[p..]),
                    };
                    let q = match found {
                        Some(q) => p + q,
                        None => return Err(Unterminated(start)),
                    };
                    if let Some(e) = escape {
                        if buf[q] == e {
                            if q + 1 >= len {
                                return Err(Unterminated(start));
                            }
                            rec.scratch.extend_from_slice(&buf[p..q]);
                            rec.scratch.push(buf[q + 1]);
                            copied = true;
                            p = q + 2;
                            continue;
                        }
                    }
                    if escape.is_none() && q + 1 < len && buf[q + 1] == quote {
                        rec.scratch.extend_from_slice(&buf[p..=q]);
                        copied = true;
                        p = q + 2;
                    } else {
                        if copied {
                            rec.scratch.extend_from_slice(&buf[p..q]);
                        }
                        fs = s;
                        fe = q;
                        p = q + 1;
                        break;
                    }
                }
                // Anything between the closing quote and the field end.
                let e = memchr2(delim, b'\n', &buf[p..]).map_or(len, |x| p + x);
                let mut tail_end = e;
                if tail_end > p && buf[tail_end - 1] == b'\r' && (e == len || buf[e] == b'\n') {
                    tail_end -= 1;
                }
                if tail_end > p {
                    if !copied {
                        rec.scratch.extend_from_slice(&buf[fs..fe]);
                        copied = true;
                    }
                    rec.scratch.extend_from_slice(&buf[p..tail_end]);
                }
                if copied {
                    fs = sc;
                    fe = rec.scratch.len();
                }
                rec.fields.push((fs, fe, copied));
                p = e;
            } else {
                let e = memchr2(delim, b'\n', &buf[p..]).map_or(len, |x| p + x);
                let mut fe = e;
                if fe > p && buf[fe - 1] == b'\r' && (e == len || buf[e] == b'\n') {
                    fe -= 1;
                }
                rec.fields.push((p, fe, false));
                p = e;
            }
            if p >= len {
                self.pos = len;
                return Ok(start);
            }
            if buf[p] == delim {
                p += 1;
                if p >= len {
                    rec.fields.push((len, len, false));
                    self.pos = len;
                    return Ok(start);
                }
                continue;
            }
            self.pos = p + 1;
            return Ok(start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> Result<Vec<Vec<String>>, Unterminated> {
        let mut r = Reader::new(data.as_bytes(), Dialect::default());
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.next_record(&mut rec)?.is_some() {
            out.push(rec.iter(data.as_bytes()).map(|f| String::from_utf8(f.to_vec()).unwrap()).collect());
        }
        Ok(out)
    }

    #[test]
    fn quoting_crlf_and_blank_lines() {
        let rows = parse("a,b,c\r\n\"x,1\",\"he said \"\"hi\"\"\",\n\n\"multi\nline\",2,3\r\n,,\n\"q\"tail,\"\",z").unwrap();
        assert_eq!(rows[0], vec!["a", "b", "c"]);
        assert_eq!(rows[1], vec!["x,1", "he said \"hi\"", ""]);
        assert_eq!(rows[2], vec!["multi\nline", "2", "3"]);
        assert_eq!(rows[3], vec!["", "", ""]);
        assert_eq!(rows[4], vec!["qtail", "", "z"]);
        assert_eq!(rows.len(), 5);
    }

    #[test]
    fn block_scan_equals_memchr_scan() {
        let pieces = ["a", "bb", "", "0123456789abcdef", ",", ",", "\n", "\r\n", "\n\n", "\"q,\n\"", "\"\"", "x\"y", "\r"];
        let mut seed = 12345u64;
        for _ in 0..3000 {
            let mut text = String::new();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = (seed >> 58) as usize;
            for _ in 0..n {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            for d in [b',', b';'] {
                let dialect = Dialect { delimiter: d, ..Dialect::default() };
                let run = |generic: bool| {
                    let mut r = Reader::new(text.as_bytes(), dialect);
                    let mut rec = Record::default();
                    let mut out = Vec::new();
                    loop {
                        let got = if generic { r.next_record_memchr(&mut rec) } else { r.next_record(&mut rec) };
                        match got {
                            Ok(Some(s)) => out.push(Ok((s, rec.iter(text.as_bytes()).map(|f| f.to_vec()).collect::<Vec<_>>()))),
                            Ok(None) => break,
                            Err(e) => {
                                out.push(Err(e));
                                break;
                            }
                        }
                    }
                    out
                };
                assert_eq!(run(false), run(true), "{text:?}");
            }
        }
    }

    fn parse_in(data: &str, d: Dialect) -> Result<Vec<Vec<String>>, Unterminated> {
        let mut r = Reader::new(data.as_bytes(), d);
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.next_record(&mut rec)?.is_some() {
            out.push(rec.iter(data.as_bytes()).map(|f| String::from_utf8_lossy(f).into_owned()).collect());
        }
        Ok(out)
    }

    #[test]
    fn escapes_comments_and_no_quoting() {
        let escaped = Dialect { escape: Some(b'\\'), ..Dialect::default() };
        assert_eq!(parse_in("\"a\\\"b\\\\\",c\n", escaped).unwrap(), vec![vec!["a\"b\\", "c"]]);
        assert_eq!(parse_in("x\\y,\"\\,\"\n", escaped).unwrap(), vec![vec!["x\\y", ","]]);
        let commented = Dialect { comment: Some(b'#'), ..Dialect::default() };
        assert_eq!(parse_in("#c\"\na,#b\n#\n\n1,2\n#end", commented).unwrap(), vec![vec!["a", "#b"], vec!["1", "2"]]);
        let unquoted = Dialect { quote: None, ..Dialect::default() };
        assert_eq!(parse_in("\"a,b\"\n", unquoted).unwrap(), vec![vec!["\"a", "b\""]]);
        let single = Dialect { quote: Some(b'\''), ..Dialect::default() };
        assert_eq!(parse_in("'a,b',\"c\n", single).unwrap(), vec![vec!["a,b", "\"c"]]);
    }

    #[test]
    fn record_ends_follow_escapes_and_comments() {
        let d = Dialect { escape: Some(b'\\'), comment: Some(b'#'), ..Dialect::default() };
        let text = b"a,\"x\\\"\ny\"\n#\"\nb,c\n\"open\n";
        assert_eq!(d.last_record_end(text), Some(text.len() - 6));
        assert_eq!(d.last_record_end(b"a,b\n#tail\n\n"), Some(11));
        assert_eq!(d.last_record_end(b"a,b"), None);
    }

    #[test]
    fn unterminated_reports_record_start() {
        assert_eq!(parse("a,b\nc,\"oops\n").unwrap_err(), Unterminated(4));
    }

    #[test]
    fn trailing_delimiter_after_quote() {
        assert_eq!(parse("\"a\",").unwrap(), vec![vec!["a", ""]]);
        assert_eq!(parse("\"a\"\r\n").unwrap(), vec![vec!["a"]]);
    }
}
