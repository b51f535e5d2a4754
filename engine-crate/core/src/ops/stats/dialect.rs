//! The CSV reading options `stats` and `convert` share: the dialect
//! (delimiter, quote, escape, comment), the header rows, the lines left
//! out at both ends, and what is sniffed from each file's first bytes
//! ([`super::sniff`]).
//!
//! * `quote`: one byte, `""` for no quoting, or `auto`; `escape`: the byte
//!   that makes the next byte of a quoted field literal (doubled quotes are
//!   then not special; an escape equal to the quote means doubled quotes).
//! * `header_rows`: records naming the columns (`header: false` is `0`,
//!   `true` is `1`); the names of several are joined by `.` column by
//!   column, empty parts left out; `auto` sniffs `0` or `1`.
//! * `skip_rows` / `footer_rows`: lines (not records) left out before the
//!   header and after the last row. With them, or with `escape` or
//!   `comment`, a file is read in one ordered pass ([`Framing::sequential`]).

use std::io;

use super::bad_rows::BadRowOptions;
use super::csv::Dialect;
use super::sniff::{sniff, FileDialect, SAMPLE};
use super::super::options::Options;
use crate::codec::{Decode, Framing, Input, Records};
use crate::error::{invalid, EngineError};
use crate::format::Format;

/// The most lines `skip_rows` and `footer_rows` may ask to leave out.
pub const MAX_TRIMMED_LINES: u64 = 1_000_000;
/// The most records `header_rows` may name columns with.
pub const MAX_HEADER_ROWS: u64 = 100;

/// Which parts of the dialect are sniffed per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sniff {
    pub delimiter: bool,
    pub quote: bool,
    pub header: bool,
}

impl Sniff {
    pub fn any(self) -> bool {
        self.delimiter || self.quote || self.header
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub dialect: Dialect,
    /// Records naming the columns.
    pub header_rows: usize,
    /// Lines left out before the header.
    pub skip_rows: u64,
    /// Lines left out at the end.
    pub footer_rows: u64,
    pub sniff: Sniff,
    /// How the text is decoded (NDJSON files too).
    pub decode: Decode,
    pub bad_rows: BadRowOptions,
}

pub fn csv_options(o: &mut Options) -> Result<CsvOptions, EngineError> {
    let mut sniff = Sniff { delimiter: o.is_auto("delimiter"), quote: o.is_auto("quote"), header: false };
    let delimiter = if sniff.delimiter { b',' } else { o.byte("delimiter", b',')? };
    let quote = if sniff.quote { Some(b'"') } else { o.optional_byte("quote", Some(b'"'))? };
    let escape = o.optional_byte("escape", None)?.filter(|&e| Some(e) != quote);
    let comment = o.optional_byte("comment", None)?;
    let header_rows = header_rows(o, &mut sniff)?;
    let skip_rows = o.uint("skip_rows", 0, 0, MAX_TRIMMED_LINES)?;
    let footer_rows = o.uint("footer_rows", 0, 0, MAX_TRIMMED_LINES)?;
    let decode = Decode::from_label(o.op(), &o.string("encoding", Some("auto"))?)?;
    let bad_rows = BadRowOptions::from_options(o)?;
    let dialect = Dialect { delimiter, quote, escape, comment };
    check_distinct(o.op(), &dialect)?;
    Ok(CsvOptions { dialect, header_rows, skip_rows, footer_rows, sniff, decode, bad_rows })
}

/// `header_rows` (a count or `auto`), or the older `header` flag; not both.
fn header_rows(o: &mut Options, sniff: &mut Sniff) -> Result<usize, EngineError> {
    let op = o.op();
    let given = (o.has("header"), o.has("header_rows"));
    let header = o.boolean("header", true)?;
    if given == (true, true) {
        return invalid(format!("{op}.header_rows: give header_rows or header, not both"));
    }
    if o.is_auto("header_rows") {
        sniff.header = true;
        return Ok(1);
    }
    Ok(o.uint("header_rows", header as u64, 0, MAX_HEADER_ROWS)? as usize)
}

/// The dialect's bytes must differ from each other and from line ends.
fn check_distinct(op: &str, d: &Dialect) -> Result<(), EngineError> {
    let named = [("delimiter", Some(d.delimiter)), ("quote", d.quote), ("escape", d.escape), ("comment", d.comment)];
    for (i, (name, byte)) in named.iter().enumerate() {
        let Some(b) = byte else { continue };
        if *b == b'\n' || *b == b'\r' {
            return invalid(format!("{op}.{name}: must not be a line end"));
        }
        if let Some((other, _)) = named[..i].iter().find(|(_, x)| *x == Some(*b)) {
            return invalid(format!("{op}.{name}: must differ from the {other}"));
        }
    }
    Ok(())
}

impl CsvOptions {
    /// How a file in these options divides into records.
    pub fn framing(&self) -> Framing {
        Framing { records: Records::of(self.dialect), skip_lines: self.skip_rows, footer_lines: self.footer_rows }
    }

    /// These options for one file read as `format` (a TSV file is
    /// tab-delimited whatever was asked); what is sniffed is worked out from
    /// its first bytes (after the skipped lines), and the dialect found is
    /// returned for the result.
    pub fn for_file(&self, format: Format, input: &Input, path: &str) -> io::Result<(CsvOptions, Option<FileDialect>)> {
        let mut csv = self.clone();
        if format == Format::Tsv {
            csv.dialect.delimiter = b'\t';
            csv.sniff.delimiter = false;
        }
        if !csv.sniff.any() {
            return Ok((csv, None));
        }
        let sniffed = csv.sniffed(input)?;
        let report = FileDialect::new(path, sniffed.dialect, sniffed.header_rows);
        Ok((sniffed, Some(report)))
    }

    fn sniffed(&self, input: &Input) -> io::Result<CsvOptions> {
        let head = input.head(SAMPLE)?;
        let whole = head.len() < SAMPLE;
        let mut sample = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
        for _ in 0..self.skip_rows {
            sample = memchr::memchr(b'\n', sample).map_or(&[][..], |p| &sample[p + 1..]);
        }
        let found = sniff(sample, whole, self.dialect, self.sniff);
        let mut csv = self.clone();
        csv.dialect = found.dialect;
        if self.sniff.header {
            csv.header_rows = found.header as usize;
        }
        csv.sniff = Sniff::default();
        Ok(csv)
    }
}
