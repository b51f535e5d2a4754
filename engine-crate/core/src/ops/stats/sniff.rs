//! Sniffing a CSV file's dialect from its first bytes, in the spirit of
//! Python's `csv.Sniffer` and DuckDB's sniffer:
//!
//! * delimiter and quote: each candidate pair (delimiters `, ; \t | :`,
//!   quotes `"` and `'`) parses the sample; the pair whose records most
//!   often share one width (above one field) wins, then the wider, then the
//!   earlier candidate (so `,` and `"` when nothing tells them apart);
//! * header: columns whose values below the first record all have one type
//!   (number, boolean or date) vote: for a header when the first record's
//!   field is not of that type, against when it is. Text columns do not
//!   vote; no votes (or a tie) means a header, as most files have one.

use std::slice;

use serde::{Deserialize, Serialize};

use super::column::{classify, Class};
use super::csv::{Dialect, Reader, Record};
use super::dialect::Sniff;

/// Bytes of a file's content sniffed.
pub const SAMPLE: usize = 64 << 10;
/// Records of the sample looked at.
const MAX_RECORDS: usize = 1000;
const DELIMITERS: &[u8] = b",;\t|:";
const QUOTES: &[u8] = b"\"'";

/// What sniffing found for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub dialect: Dialect,
    /// Whether the first record names the columns.
    pub header: bool,
}

/// A file's sniffed dialect, as results list it (`quote` empty for none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileDialect {
    pub path: String,
    pub delimiter: String,
    pub quote: String,
    pub header_rows: usize,
}

impl FileDialect {
    pub fn new(path: &str, dialect: Dialect, header_rows: usize) -> FileDialect {
        let text = |b: Option<u8>| b.map_or(String::new(), |b| (b as char).to_string());
        FileDialect { path: path.to_string(), delimiter: text(Some(dialect.delimiter)), quote: text(dialect.quote), header_rows }
    }
}

/// Files' sniffed dialects, sorted by path.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Dialects(pub Vec<FileDialect>);

impl Dialects {
    pub fn add(&mut self, more: impl IntoIterator<Item = FileDialect>) {
        self.0.extend(more);
        self.0.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    }

    /// Puts the list in `result` as `dialects`, when a file was sniffed.
    pub fn report_in(&self, result: &mut serde_json::Value) {
        if !self.0.is_empty() {
            result["dialects"] = serde_json::json!(self.0);
        }
    }
}

/// Sniffs what `want` asks for from `sample`, the first bytes of the
/// content (`whole` when they are all of it); the rest comes from `given`.
pub fn sniff(sample: &[u8], whole: bool, given: Dialect, want: Sniff) -> Sniffed {
    let sample = if whole { sample } else { &sample[..memchr::memrchr(b'\n', sample).map_or(0, |p| p + 1)] };
    let delimiters = if want.delimiter { DELIMITERS } else { slice::from_ref(&given.delimiter) };
    let quotes: Vec<Option<u8>> = if want.quote { QUOTES.iter().map(|&q| Some(q)).collect() } else { vec![given.quote] };
    let mut best: Option<((usize, usize), Dialect)> = None;
    for &delimiter in delimiters {
        for &quote in &quotes {
            let d = Dialect { delimiter, quote, ..given };
            if [d.quote, d.escape, d.comment].contains(&Some(delimiter)) || (quote.is_some() && quote == d.comment) {
                continue;
            }
            let score = consistency(&records(sample, d));
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, d));
            }
        }
    }
    let dialect = best.map_or(given, |(_, d)| d);
    let header = !want.header || looks_like_header(&records(sample, dialect));
    Sniffed { dialect, header }
}

/// The sample's first records in dialect `d`, up to a parse error.
fn records(sample: &[u8], d: Dialect) -> Vec<Vec<Vec<u8>>> {
    let mut reader = Reader::new(sample, d);
    let mut rec = Record::default();
    let mut out = Vec::new();
    while out.len() < MAX_RECORDS {
        match reader.next_record(&mut rec) {
            Ok(Some(_)) => out.push(rec.iter(sample).map(<[u8]>::to_vec).collect()),
            _ => break,
        }
    }
    out
}

/// How many records have the most common width (nought when that width
/// is one field), and that width.
fn consistency(records: &[Vec<Vec<u8>>]) -> (usize, usize) {
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for r in records {
        match counts.iter_mut().find(|(w, _)| *w == r.len()) {
            Some((_, c)) => *c += 1,
            None => counts.push((r.len(), 1)),
        }
    }
    let (width, count) = counts.into_iter().max_by_key(|&(w, c)| (c, w)).unwrap_or((0, 0));
    (if width > 1 { count } else { 0 }, width)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Bool,
    Date,
    Text,
}

fn kind_of(field: &[u8]) -> Kind {
    match classify(field) {
        Class::Int(_) | Class::Float(_) => Kind::Number,
        Class::Bool => Kind::Bool,
        Class::Date => Kind::Date,
        Class::Str => Kind::Text,
    }
}

/// The one type of a column's non-empty values below the first record,
/// when they have one other than text.
fn column_kind(rest: &[Vec<Vec<u8>>], i: usize) -> Option<Kind> {
    let mut kinds = rest.iter().filter_map(|r| r.get(i)).filter(|f| !f.is_empty()).map(|f| kind_of(f));
    let first = kinds.next()?;
    (first != Kind::Text && kinds.all(|k| k == first)).then_some(first)
}

fn looks_like_header(records: &[Vec<Vec<u8>>]) -> bool {
    let Some((first, rest)) = records.split_first() else { return true };
    let votes: i64 = first
        .iter()
        .enumerate()
        .filter(|(_, name)| !name.is_empty())
        .filter_map(|(i, name)| column_kind(rest, i).map(|k| if kind_of(name) == k { -1 } else { 1 }))
        .sum();
    votes >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Sniff = Sniff { delimiter: true, quote: true, header: true };

    fn sniffed(text: &str) -> (u8, Option<u8>, bool) {
        let s = sniff(text.as_bytes(), true, Dialect::default(), ALL);
        (s.dialect.delimiter, s.dialect.quote, s.header)
    }

    #[test]
    fn delimiters_are_found_by_consistent_widths() {
        assert_eq!(sniffed("a,b,c\n1,2,3\n4,5,6\n"), (b',', Some(b'"'), true));
        assert_eq!(sniffed("a;b;c\n1,5;2;x\n4;5,25;y\n"), (b';', Some(b'"'), true));
        assert_eq!(sniffed("a\tb\n1\t2\n3\t4\n"), (b'\t', Some(b'"'), true));
        assert_eq!(sniffed("a|b|c\n1|2|3\n"), (b'|', Some(b'"'), true));
        assert_eq!(sniffed("a:b\n1:2\n3:4\n"), (b':', Some(b'"'), true));
    }

    #[test]
    fn quotes_that_hold_delimiters_are_found() {
        assert_eq!(sniffed("name;note\n'a;b';x\n'c';'d;e'\n").0, b';');
        assert_eq!(sniffed("name;note\n'a;b';x\n'c';'d;e'\n").1, Some(b'\''));
        assert_eq!(sniffed("x,y\n\"1,2\",3\n\"4\",\"5,6\"\n").1, Some(b'"'));
    }

    #[test]
    fn header_is_a_first_record_of_other_types() {
        assert!(sniffed("id,price,day\n1,2.5,2024-01-02\n2,3,2024-01-03\n").2);
        assert!(!sniffed("1,2.5,2024-01-02\n2,3,2024-01-03\n3,4,2024-01-04\n").2);
        // Text only: nothing tells, a header is assumed.
        assert!(sniffed("a,b\nc,d\n").2);
    }

    #[test]
    fn a_cut_sample_is_read_up_to_its_last_whole_line() {
        let text = "a;b\n1;2\n3;\"4\n5";
        let s = sniff(text.as_bytes(), false, Dialect::default(), ALL);
        assert_eq!(s.dialect.delimiter, b';');
    }

    #[test]
    fn given_parts_are_kept() {
        let given = Dialect { delimiter: b'|', quote: None, ..Dialect::default() };
        let s = sniff(b"a,b\n1,2\n", true, given, Sniff { header: true, ..Sniff::default() });
        assert_eq!(s.dialect, given);
    }
}
