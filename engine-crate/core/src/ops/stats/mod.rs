//! `stats`: per-column profile of CSV, TSV, NDJSON ([`ndjson`]) and
//! Parquet ([`parquet`]) files, each file read by the format
//! [`crate::format`] chooses for it.
//!
//! CSV files are parsed with [`csv::Reader`] in the dialect of the job's
//! options ([`dialect`]; parts of it may be sniffed per file, [`sniff`]);
//! big files are split into chunks aligned to records by quote parity
//! ([`crate::split`]) and parsed in parallel, chunk results joined in file
//! order; every chunk knows the width of the file's first record, read
//! beforehand. Escapes, comment lines and lines left out at either end make
//! a file be read as one ordered stream instead ([`crate::codec`]). A row of another
//! width is handled by the `bad_rows` policy ([`bad_rows`]). A file with
//! any other problem (invalid UTF-8, unterminated quote, read error), or a
//! ragged row under `fail`, contributes nothing but one error record
//! carrying the earliest problem's line.
//!
//! Conventions: a null is an empty field (quoted or not; no `NA`/`NULL`
//! words); blank lines are skipped; a UTF-8 BOM at file start is dropped;
//! columns are merged by name across files (header names, or `column_1`,
//! `column_2`, ... without a header; a repeated header name gets a `_2`,
//! `_3`, ... suffix) and listed in order of first appearance by file path.

pub mod bad_rows;
pub mod column;
pub mod csv;
pub mod dialect;
pub mod footer;
pub mod ndjson;
pub mod parquet;
pub mod sketch;
pub mod sniff;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::bad_rows::{BadRows, Fix, Found, Lines};
use self::column::ColumnAcc;
use self::csv::{Reader, Record};
pub use self::dialect::{csv_options, CsvOptions};
use self::sniff::Dialects;
use self::ndjson::Kinds;
use super::options::Options;
use crate::codec::{for_each_block, At, Flow, Input, Reading, Records};
use super::Operation;
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::frames::{fold_groups, splittable};
use crate::format::{Choice, Format};
use crate::io::{line_of_offset, read_to_end_from, with_buffer};
use crate::partial::Body;
use crate::split::{chunk_count, quote_parities, read_aligned};
use crate::FileTask;

/// Bytes per parallel chunk of a big file.
pub const CHUNK: u64 = 8 << 20;
/// Frequent-value table capacity per requested top value.
pub const TOP_FACTOR: usize = 64;

#[derive(Debug, Clone)]
pub struct StatsOp {
    pub csv: CsvOptions,
    pub quantiles: Vec<f64>,
    pub top: usize,
    pub chunk: u64,
    /// Only infer column types (schema inference for `convert`).
    pub types_only: bool,
    pub format: Choice,
}

/// The formats `stats` reads.
pub const STATS_FORMATS: &[Format] = &[Format::Csv, Format::Tsv, Format::Ndjson, Format::Parquet];

impl StatsOp {
    pub fn from_options(text: &str) -> Result<Self, EngineError> {
        let mut o = Options::parse("stats", text)?;
        let csv = csv_options(&mut o)?;
        let quantiles = o.floats("quantiles", &[0.5, 0.9, 0.99], 0.0, 1.0)?;
        let top = o.uint("top", 5, 0, 100)? as usize;
        let format = Choice::from_options(&mut o, "stats", STATS_FORMATS)?;
        o.finish()?;
        Ok(StatsOp { csv, quantiles, top, chunk: CHUNK, types_only: false, format })
    }

    /// A parse-only configuration that infers column types.
    pub fn type_inference(csv: CsvOptions, chunk: u64) -> Self {
        StatsOp { csv, quantiles: Vec::new(), top: 0, chunk, types_only: true, format: Choice::Forced(Format::Csv) }
    }

    /// This configuration with other CSV options (a TSV file's, or those
    /// sniffed from a file).
    fn with_csv(&self, csv: CsvOptions) -> StatsOp {
        StatsOp { csv, ..self.clone() }
    }

    fn new_column(&self) -> ColumnAcc {
        if self.types_only { ColumnAcc::types_only() } else { ColumnAcc::new(self.top_capacity()) }
    }

    fn top_capacity(&self) -> usize {
        if self.top == 0 { 0 } else { (self.top * TOP_FACTOR).max(256) }
    }
}

/// A column of the merged result: its accumulator and where it first appeared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// (path, position) of its first appearance; orders the columns.
    pub first: (String, usize),
    pub acc: ColumnAcc,
    /// The formats of the files it came from.
    #[serde(default)]
    pub formats: Vec<Format>,
    /// JSON kinds of its values, when it came from NDJSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Kinds>,
    /// Every file's part of it was settled by its Parquet footer, no data read.
    #[serde(default)]
    pub from_footer: bool,
}

/// A column of one file, before columns merge by name.
pub struct FileColumn {
    pub name: String,
    pub acc: ColumnAcc,
    pub kinds: Option<Kinds>,
    pub from_footer: bool,
}

impl FileColumn {
    /// A column whose values were read.
    fn read(name: String, acc: ColumnAcc, kinds: Option<Kinds>) -> FileColumn {
        FileColumn { name, acc, kinds, from_footer: false }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsBody {
    pub quantiles: Vec<f64>,
    pub top: usize,
    pub rows: u64,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub bad_rows: BadRows,
    /// The dialects sniffed for files.
    #[serde(default)]
    pub dialects: Dialects,
}

impl StatsBody {
    /// Adds one file's columns (already named).
    fn add_file(&mut self, path: &str, format: Format, rows: u64, cols: Vec<FileColumn>) {
        self.rows += rows;
        for (i, c) in cols.into_iter().enumerate() {
            let first = (path.to_string(), i);
            self.add_column(Column { name: c.name, first, acc: c.acc, formats: vec![format], kinds: c.kinds, from_footer: c.from_footer });
        }
    }

    fn add_column(&mut self, c: Column) {
        match self.columns.iter_mut().find(|x| x.name == c.name) {
            Some(x) => {
                if (c.first.0.as_bytes(), c.first.1) < (x.first.0.as_bytes(), x.first.1) {
                    x.first = c.first;
                }
                x.acc.merge(c.acc);
                x.from_footer &= c.from_footer;
                for f in c.formats {
                    if let Err(at) = x.formats.binary_search(&f) {
                        x.formats.insert(at, f);
                    }
                }
                x.kinds = match (x.kinds, c.kinds) {
                    (Some(mut a), Some(b)) => {
                        a.merge(b);
                        Some(a)
                    }
                    (a, b) => a.or(b),
                };
            }
            None => self.columns.push(c),
        }
    }

    fn sorted_columns(&self) -> Vec<&Column> {
        let mut v: Vec<&Column> = self.columns.iter().collect();
        v.sort_by(|a, b| (a.first.0.as_bytes(), a.first.1, &a.name).cmp(&(b.first.0.as_bytes(), b.first.1, &b.name)));
        v
    }
}

impl Body for StatsBody {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        if self.quantiles != other.quantiles || self.top != other.top {
            return Err("stats: cannot merge partials made with different quantiles/top options".into());
        }
        self.rows += other.rows;
        for c in other.columns {
            self.add_column(c);
        }
        self.bad_rows.merge(other.bad_rows);
        self.dialects.add(other.dialects.0);
        Ok(())
    }

    /// Columns say which formats they came from when the files mixed
    /// formats, and which JSON kinds they held when they came from NDJSON.
    fn result(&self) -> Value {
        let columns = self.sorted_columns();
        let mut formats: Vec<Format> = columns.iter().flat_map(|c| c.formats.iter().copied()).collect();
        formats.sort();
        formats.dedup();
        let cols: Vec<Value> = columns
            .into_iter()
            .map(|c| {
                let mut v = c.acc.result(&c.name, &self.quantiles, self.top);
                if formats.len() > 1 {
                    v["formats"] = json!(c.formats);
                }
                if let Some(k) = c.kinds {
                    v["jsonTypes"] = k.result();
                }
                if c.from_footer {
                    v["fromFooter"] = json!(true);
                }
                v
            })
            .collect();
        let mut result = json!({"rows": self.rows, "columns": cols, "badRows": self.bad_rows});
        self.dialects.report_in(&mut result);
        result
    }
}

/// A problem found in a chunk: file offset and reason.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    offset: u64,
    line: Option<u64>,
    reason: String,
}

/// Result of parsing one record-aligned range of a file.
#[derive(Debug, Default)]
pub struct ChunkStats {
    pub header: Option<Vec<String>>,
    pub cols: Vec<ColumnAcc>,
    pub rows: u64,
    /// Fields per row: the width of the file's first record.
    pub width: Option<usize>,
    /// Rows of another width, lines counted from the range's start.
    pub bad: Found,
    /// Newlines in the range, shifting the lines of the ranges after it.
    newlines: u64,
    problem: Option<Problem>,
}

impl ChunkStats {
    /// Folds the columns' buffered state into their mergeable fields.
    fn flushed(mut self) -> ChunkStats {
        for c in &mut self.cols {
            c.flush();
        }
        self
    }

    /// Joins with the chunk that directly follows in the file; `max` caps
    /// the bad rows listed.
    fn then(mut self, next: ChunkStats, max: usize) -> ChunkStats {
        // A problem's line, when known, counts from its chunk's start.
        let shift = self.newlines;
        self.problem = self.problem.take().or(next.problem.map(|p| Problem { line: p.line.map(|l| l + shift), ..p }));
        self.header = self.header.or(next.header);
        self.width = self.width.or(next.width);
        self.bad = self.bad.then(next.bad, self.newlines, max);
        self.newlines += next.newlines;
        if self.problem.is_none() {
            self.rows += next.rows;
            let mut it = next.cols.into_iter();
            for (a, b) in self.cols.iter_mut().zip(it.by_ref()) {
                a.merge(b);
            }
            self.cols.extend(it);
        }
        self
    }
}

/// Drops a UTF-8 BOM at file start, returning the rest and how many bytes went.
fn strip_bom(buf: &[u8], file_start: bool) -> (&[u8], u64) {
    match buf.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if file_start => (rest, 3),
        _ => (buf, 0),
    }
}

/// Parses `buf` (whole records; `base` = file offset of `buf[0]`); rows
/// should have `width` fields, or the first record's when it is not known.
pub fn parse_chunk(op: &StatsOp, buf: &[u8], base: u64, file_start: bool, width: Option<usize>) -> ChunkStats {
    let mut out = ChunkStats { width, ..ChunkStats::default() };
    parse_records(&mut out, op, buf, base, file_start);
    out.flushed()
}

/// Parses `buf` (whole records; `base` = file offset of `buf[0]`), which
/// directly follows the records `out` holds, into the same columns:
/// consecutive chunks of a file share one accumulator, so their tables and
/// sketches warm up once. Nothing is added once `out` has a problem.
fn parse_records(out: &mut ChunkStats, op: &StatsOp, buf: &[u8], base: u64, file_start: bool) {
    if out.problem.is_some() {
        return;
    }
    let before = out.newlines;
    let (buf, bom) = strip_bom(buf, file_start);
    let base = base + bom;
    if let Err(e) = std::str::from_utf8(buf) {
        out.problem = Some(Problem { offset: base + e.valid_up_to() as u64, line: None, reason: "invalid UTF-8".into() });
        return;
    }
    let policy = op.csv.bad_rows;
    let mut lines = Lines::default();
    let mut reader = Reader::new(buf, op.csv.dialect);
    let mut rec = Record::default();
    let mut header_rows = if file_start { op.csv.header_rows } else { 0 };
    loop {
        let start = match reader.next_record(&mut rec) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => {
                out.problem = Some(Problem { offset: base + e.0 as u64, line: None, reason: "unterminated quoted field".into() });
                return;
            }
        };
        let found = rec.len();
        let expected = *out.width.get_or_insert(found);
        if header_rows > 0 {
            header_rows -= 1;
            add_header_row(&mut out.header, rec.iter(buf));
            continue;
        }
        if found != expected {
            let fix = policy.policy.fix(expected, found);
            if fix == Fix::Fail {
                out.problem = Some(Problem { offset: base + start as u64, line: None, reason: fix.reason(expected, found) });
                return;
            }
            out.bad.note(policy.max, || (before + lines.line_of(buf, start), fix.reason(expected, found)));
            if !fix.keeps() {
                continue;
            }
        }
        out.rows += 1;
        if out.cols.len() < expected {
            out.cols.resize_with(expected, || op.new_column());
        }
        for (col, f) in out.cols.iter_mut().zip(rec.iter(buf)) {
            col.add(f);
        }
        for col in out.cols.iter_mut().skip(found) {
            col.add(b"");
        }
    }
    out.newlines = before + lines.total(buf);
}

/// Adds a header record's fields to the column names: the names of
/// several header records are joined by `.`, empty parts left out.
fn add_header_row<'a>(names: &mut Option<Vec<String>>, fields: impl Iterator<Item = &'a [u8]>) {
    let names = names.get_or_insert_with(Vec::new);
    for (i, f) in fields.enumerate() {
        let part = String::from_utf8_lossy(f);
        match names.get_mut(i) {
            None => names.push(part.into_owned()),
            Some(name) if name.is_empty() => *name = part.into_owned(),
            Some(name) if !part.is_empty() => {
                name.push('.');
                name.push_str(&part);
            }
            Some(_) => {}
        }
    }
}

/// The width of a file's first record, read ahead so that every chunk
/// parsed in parallel knows it (`None` for a file without records).
fn first_width(op: &StatsOp, input: &Input, size: u64) -> std::io::Result<Option<usize>> {
    let mut want = 64 << 10;
    loop {
        let head = input.head(want)?;
        let whole = head.len() < want || head.len() as u64 >= size;
        let end = if whole { head.len() } else { Records::of(op.csv.dialect).last_end(&head).unwrap_or(0) };
        let mut rec = Record::default();
        match Reader::new(strip_bom(&head[..end], true).0, op.csv.dialect).next_record(&mut rec) {
            Ok(Some(_)) => return Ok(Some(rec.len())),
            _ if whole => return Ok(None),
            _ => want *= 4,
        }
    }
}

/// Column names for a file: header names made unique, or `column_N`.
pub fn column_names(header: Option<Vec<String>>, width: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(width);
    let header = header.unwrap_or_default();
    for i in 0..width {
        let base = match header.get(i) {
            Some(h) if !h.is_empty() => h.clone(),
            _ => format!("column_{}", i + 1),
        };
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

/// Parses a compressed file's content, block after block; stops at the
/// first problem, whose line is counted in the block that holds it.
fn parse_stream(op: &StatsOp, reading: Reading<'_>, ctl: &Control) -> Result<Result<ChunkStats, FileError>, EngineError> {
    // Bad rows' lines are counted in the file, skipped lines included.
    let mut joined = ChunkStats { newlines: op.csv.skip_rows, ..ChunkStats::default() };
    let mut failed = None;
    let done = for_each_block(reading, ctl, |block, at| {
        let chunk = parse_chunk(op, block, at.offset, at.is_start(), joined.width);
        if let Some(p) = &chunk.problem {
            failed = Some(FileError::new(&reading.task.path, Some(at.line_of(block, p.offset)), p.reason.clone()));
            return Ok(Flow::Stop);
        }
        joined = std::mem::take(&mut joined).then(chunk, op.csv.bad_rows.max);
        Ok(Flow::More)
    })?;
    Ok(match (done, failed) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(joined),
    })
}

/// Parses a compressed file split into groups of frames, the groups in
/// parallel (see [`crate::frames`]); `None` when it is read as one stream.
fn parse_groups(op: &StatsOp, reading: &Reading<'_>, input: &Input, ctl: &Control) -> Option<Result<Result<ChunkStats, FileError>, EngineError>> {
    splittable(reading)?;
    let path = &reading.task.path;
    let width = match first_width(op, input, reading.task.size) {
        Ok(w) => w,
        Err(e) => return Some(Ok(Err(FileError::io(path, &e)))),
    };
    let max = op.csv.bad_rows.max;
    let fold = |joined: ChunkStats, block: &[u8], file_start: bool| {
        let mut chunk = parse_chunk(op, block, 0, file_start, width);
        if let Some(p) = &mut chunk.problem {
            p.line = Some(At { offset: 0, lines: 0 }.line_of(block, p.offset));
        }
        joined.then(chunk, max)
    };
    let joined = fold_groups(reading, ctl, ChunkStats::default, fold, |a, b| a.then(b, max))?;
    Some(joined.map(|r| {
        r.and_then(|s| match s.problem {
            Some(p) => Err(FileError::new(path, p.line, p.reason)),
            None => Ok(s),
        })
    }))
}

/// Parses a whole file (in parallel chunks when big).
/// The evidence of chunk 0 of a plain file in `n` chunks, alone: what a
/// schema can be guessed from before the rest is read. `None` when the
/// chunk holds no row, a problem or a row of another width (those are for
/// the whole-file pass to report).
pub fn parse_first_chunk(op: &StatsOp, input: &Input, n: usize, parity: &[bool]) -> std::io::Result<Option<ChunkStats>> {
    let quote = op.csv.framing().records.quote();
    with_buffer(|buf| {
        let a = read_aligned(&input.blob, 0, n, op.chunk, quote, parity, buf)?;
        let mut stats = ChunkStats::default();
        parse_records(&mut stats, op, &buf[a.start..a.end], a.base + a.start as u64, true);
        let clean = stats.problem.is_none() && stats.bad.total == 0 && stats.rows > 0;
        Ok(clean.then(|| stats.flushed()))
    })
}

pub fn parse_file(op: &StatsOp, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<ChunkStats, FileError>, EngineError> {
    if let Some(reading) = input.reading(task, op.csv.decode, op.csv.framing(), !op.types_only) {
        if let Some(split) = parse_groups(op, &reading, input, ctl) {
            return split;
        }
        return parse_stream(op, reading, ctl);
    }
    let blob = &input.blob;
    let n = chunk_count(task.size, op.chunk);
    let quote = op.csv.framing().records.quote();
    let stats = if n == 1 {
        let whole = |buf: &[u8]| {
            if !op.types_only {
                ctl.add_bytes(buf.len() as u64);
            }
            let mut s = parse_chunk(op, buf, 0, true, None);
            if let Some(p) = &mut s.problem {
                let upto = (p.offset as usize).min(buf.len());
                p.line = Some(1 + bytecount::count(&buf[..upto], b'\n') as u64);
            }
            s
        };
        match input.whole() {
            Some(all) => whole(all),
            None => match with_buffer(|buf| read_to_end_from(blob, 0, buf, task.size as usize + 1).map(|_| whole(buf))) {
                Ok(s) => s,
                Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
            },
        }
    } else {
        let parity = match quote.map(|q| quote_parities(blob, n, op.chunk, q, ctl)) {
            None => vec![false; n + 1],
            Some(Ok(p)) => p,
            Some(Err(e)) => return Ok(Err(FileError::io(&task.path, &e))),
        };
        ctl.check()?;
        if parity[n] {
            return Ok(Err(FileError::new(&task.path, None, "unterminated quoted field (odd number of quote characters)")));
        }
        let width = match first_width(op, input, task.size) {
            Ok(w) => w,
            Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
        };
        // Consecutive chunks of one split of the range fold into one
        // accumulator; splits then join in file order, so bad-row lines
        // still count the lines before them.
        let joined = (0..n)
            .into_par_iter()
            .try_fold(
                || Ok(ChunkStats { width, ..ChunkStats::default() }),
                |joined: Result<ChunkStats, FileError>, i| -> Result<Result<ChunkStats, FileError>, EngineError> {
                    ctl.check()?;
                    let Ok(mut joined) = joined else { return Ok(joined) };
                    Ok(with_buffer(|buf| {
                        let a = read_aligned(blob, i, n, op.chunk, quote, &parity, buf).map_err(|e| FileError::io(&task.path, &e))?;
                        if !op.types_only {
                            ctl.add_bytes((a.end - a.start) as u64);
                        }
                        parse_records(&mut joined, op, &buf[a.start..a.end], a.base + a.start as u64, i == 0);
                        Ok(joined)
                    }))
                },
            )
            .map(|split| split.map(|joined| joined.map(ChunkStats::flushed)))
            .try_reduce(
                || Ok(ChunkStats::default()),
                |a, b| Ok(match (a, b) {
                    (Ok(a), Ok(b)) => Ok(a.then(b, op.csv.bad_rows.max)),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }),
            )?;
        match joined {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        }
    };
    if let Some(mut p) = stats.problem {
        if p.line.is_none() {
            p.line = line_of_offset(blob, p.offset);
        }
        return Ok(Err(FileError::new(&task.path, p.line, p.reason)));
    }
    Ok(Ok(stats))
}

impl Operation for StatsOp {
    type Body = StatsBody;
    const NAME: &'static str = "stats";

    fn empty(&self) -> StatsBody {
        StatsBody { quantiles: self.quantiles.clone(), top: self.top, rows: 0, columns: Vec::new(), bad_rows: BadRows::default(), dialects: Dialects::default() }
    }

    fn process_file(&self, task: &FileTask, input: &Input, ctl: &Control, acc: &mut StatsBody) -> Result<Result<(), FileError>, EngineError> {
        let format = match self.format.resolve(task, input, Format::Csv) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        if format == Format::Ndjson {
            return Ok(ndjson::parse_file(self, task, input, ctl)?.map(|f| {
                let cols = f.columns.into_iter().map(|(name, c)| FileColumn::read(name, c.acc, Some(c.kinds))).collect();
                acc.add_file(&task.path, format, f.rows, cols);
                acc.bad_rows.add_file(&task.path, f.bad.len() as u64, f.bad);
            }));
        }
        if format == Format::Parquet {
            return Ok(parquet::parse_file(self, task, input, ctl)?.map(|f| {
                let cols = f.columns.into_iter().map(|(name, acc, from_footer)| FileColumn { name, acc, kinds: None, from_footer }).collect();
                acc.add_file(&task.path, format, f.rows, cols);
            }));
        }
        let (csv, sniffed) = match self.csv.for_file(format, input, &task.path) {
            Ok(x) => x,
            Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
        };
        let op = self.with_csv(csv);
        Ok(parse_file(&op, task, input, ctl)?.map(|s| {
            acc.dialects.add(sniffed);
            let width = s.width.unwrap_or(0);
            let names = column_names(s.header, width);
            let mut cols = s.cols;
            cols.resize_with(width, || self.new_column());
            acc.add_file(&task.path, format, s.rows, names.into_iter().zip(cols).map(|(n, c)| FileColumn::read(n, c, None)).collect());
            acc.bad_rows.add_file(&task.path, s.bad.total, s.bad.rows);
        }))
    }
}

#[cfg(test)]
mod tests;
