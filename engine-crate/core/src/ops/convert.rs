//! `convert`: CSV, TSV or NDJSON to Parquet, one output file per input file.
//!
//! NDJSON fields become flat columns named by their paths (`user.age`), as
//! `stats` names them; an array is kept whole, as its JSON text in a
//! `utf8` column, and a missing field is null.
//!
//! A plain CSV file of several chunks is read once: its schema is guessed
//! from the first chunk and every later record is checked against the guess
//! while it is written; a record that disproves it (see [`guess_schema`])
//! sends the file through the two passes below, so the output and the
//! reports are always those of the whole file.
//!
//! Otherwise two passes per file: the first infers the schema (and validates the whole
//! file: a file with any problem produces an error record and no output;
//! CSV rows of the wrong width are handled and reported by the `bad_rows`
//! policy, as `stats` does, and left out or fixed the same way when written);
//! the second parses record-aligned chunks in parallel into Arrow arrays and
//! encodes each chunk as one row group with all threads, appending row
//! groups in order through a bounded window so memory stays bounded. The
//! first row group decides which columns are dictionary-encoded (see
//! [`dictionary`]); the others are written plain, which zstd compresses
//! better than dictionary indices of near-unique values.
//!
//! Types per column: `int64` (all ints), `float64` (ints and floats),
//! `bool` (true/false, any case), `date32` (YYYY-MM-DD), else `utf8`; every
//! column is nullable and an empty field is null. Outputs mirror the input
//! path under `output_dir` (`/data/in/a.csv` -> `<output_dir>/data/in/a.csv.parquet`;
//! `..` components become `_up_`), written to a temporary name and renamed.
//! Only normal path components are kept, and a directory that resolves
//! outside `output_dir` (a symbolic link in the output volume) or a link in
//! the temporary file's place is refused, so no output lands elsewhere.

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder};
use arrow_array::{ArrayRef, BinaryArray, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::options::Options;
use super::stats::column::{classify, parse_bool, Class};
use super::stats::csv::{Reader, Record};
use super::stats::bad_rows::{BadRows, Found};
use super::stats::sniff::{Dialects, FileDialect};
use super::stats::{column_names, csv_options, parse_file, parse_first_chunk, ChunkStats, CsvOptions, StatsOp};
use super::Operation;
use crate::codec::{for_each_block, Flow, Framing, Input};
use crate::format::{Choice, Format};
use hashbrown::HashMap;
use super::stats::ndjson;
use crate::control::Control;
use crate::error::{invalid, EngineError, FileError};
use crate::io::{read_to_end_from, with_buffer};
use crate::partial::Body;
use crate::frames::fold_windows;
use crate::split::{chunk_count, quote_parities, read_aligned};
use crate::FileTask;

mod dictionary;

/// Bytes of CSV per row group / parallel chunk.
pub const CHUNK: u64 = 8 << 20;

/// The zstd level of `compression: zstd`.
const ZSTD_LEVEL: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Zstd,
    Snappy,
    None,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Snappy => "snappy",
            Codec::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertOp {
    pub csv: CsvOptions,
    pub compression: Codec,
    pub output_dir: PathBuf,
    pub chunk: u64,
    pub format: Choice,
}

/// The formats `convert` reads.
pub const CONVERT_FORMATS: &[Format] = &[Format::Csv, Format::Tsv, Format::Ndjson];

impl ConvertOp {
    pub fn from_options(text: &str) -> Result<Self, EngineError> {
        let mut o = Options::parse("convert", text)?;
        let to = o.string("to", Some("parquet"))?;
        let compression = o.string("compression", Some("zstd"))?;
        let output_dir = o.string("output_dir", None)?;
        let csv = csv_options(&mut o)?;
        let format = Choice::from_options(&mut o, "convert", CONVERT_FORMATS)?;
        o.finish()?;
        if to != "parquet" {
            return invalid(format!("convert.to: unknown '{to}' (expected parquet)"));
        }
        let compression = match compression.as_str() {
            "zstd" => Codec::Zstd,
            "snappy" => Codec::Snappy,
            "none" => Codec::None,
            other => return invalid(format!("convert.compression: unknown '{other}' (expected zstd, snappy, none)")),
        };
        if output_dir.is_empty() {
            return invalid("convert.output_dir: must not be empty");
        }
        Ok(ConvertOp { csv, compression, output_dir: PathBuf::from(output_dir), chunk: CHUNK, format })
    }

    /// Writer properties for a file whose first row group holds `first`:
    /// the codec, and a dictionary only for the columns that repeat values.
    fn props(&self, schema: &Schema, first: &[ArrayRef]) -> WriterProperties {
        let c = match self.compression {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let mut props = WriterProperties::builder().set_compression(c);
        for (field, values) in schema.fields().iter().zip(first) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), dictionary::pays_off(values));
        }
        props.build()
    }

    /// Output path for an input path (mirrored under `output_dir`); an
    /// object `s3://bucket/key` is mirrored as `bucket/key`.
    pub fn output_path(&self, source: &str) -> PathBuf {
        let mut out = self.output_dir.clone();
        let source = source.strip_prefix(crate::remote::SCHEME).unwrap_or(source);
        for c in Path::new(source).components() {
            match c {
                Component::Normal(s) => out.push(s),
                Component::ParentDir => out.push("_up_"),
                _ => {}
            }
        }
        let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".parquet");
        out.set_file_name(name);
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub source: String,
    pub path: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub first: (String, usize),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConvertBody {
    pub compression: Codec,
    pub rows: u64,
    pub outputs: Vec<Output>,
    pub schema: Vec<SchemaColumn>,
    #[serde(default)]
    pub bad_rows: BadRows,
    /// The dialects sniffed for files.
    #[serde(default)]
    pub dialects: Dialects,
}

fn widen(a: &str, b: &str) -> &'static str {
    match (a, b) {
        _ if a == b => match a {
            "int64" => "int64",
            "float64" => "float64",
            "bool" => "bool",
            "date32" => "date32",
            _ => "utf8",
        },
        ("int64", "float64") | ("float64", "int64") => "float64",
        _ => "utf8",
    }
}

impl ConvertBody {
    fn add_column(&mut self, c: SchemaColumn) {
        match self.schema.iter_mut().find(|x| x.name == c.name) {
            Some(x) => {
                x.ty = widen(&x.ty, &c.ty).to_string();
                if (c.first.0.as_bytes(), c.first.1) < (x.first.0.as_bytes(), x.first.1) {
                    x.first = c.first;
                }
            }
            None => self.schema.push(c),
        }
    }
}

impl Body for ConvertBody {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        if self.compression != other.compression {
            return Err("convert.compression: cannot merge partials with different compression".into());
        }
        self.rows += other.rows;
        self.outputs.extend(other.outputs);
        self.outputs.sort_by(|a, b| (a.source.as_bytes(), &a.path, a.rows).cmp(&(b.source.as_bytes(), &b.path, b.rows)));
        for c in other.schema {
            self.add_column(c);
        }
        self.bad_rows.merge(other.bad_rows);
        self.dialects.add(other.dialects.0);
        Ok(())
    }

    fn result(&self) -> Value {
        let mut outputs = self.outputs.clone();
        outputs.sort_by(|a, b| (a.source.as_bytes(), &a.path, a.rows).cmp(&(b.source.as_bytes(), &b.path, b.rows)));
        let mut schema: Vec<&SchemaColumn> = self.schema.iter().collect();
        schema.sort_by(|a, b| (a.first.0.as_bytes(), a.first.1).cmp(&(b.first.0.as_bytes(), b.first.1)));
        let schema: Vec<Value> = schema.iter().map(|c| json!({"name": c.name, "type": c.ty})).collect();
        let mut result = json!({
            "format": "parquet",
            "compression": self.compression.name(),
            "rows": self.rows,
            "outputs": outputs,
            "schema": schema,
            "badRows": self.bad_rows,
        });
        self.dialects.report_in(&mut result);
        result
    }

    fn strip(&mut self) {
        self.outputs.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Date,
    Str,
}

impl Kind {
    fn from_type_name(t: &str) -> Kind {
        match t {
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "date" => Kind::Date,
            _ => Kind::Str,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::Str => DataType::Utf8,
        }
    }

    fn arrow_name(self) -> &'static str {
        match self {
            Kind::Int => "int64",
            Kind::Float => "float64",
            Kind::Bool => "bool",
            Kind::Date => "date32",
            Kind::Str => "utf8",
        }
    }
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`.
fn days_from_civil(f: &[u8]) -> i32 {
    let n = |s: &[u8]| s.iter().fold(0i64, |a, &b| a * 10 + (b - b'0') as i64);
    let (y, m, d) = (n(&f[..4]), n(&f[5..7]), n(&f[8..10]));
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    /// Text is gathered as bytes and checked as UTF-8 once per array (see [`utf8`]).
    Str(BinaryBuilder),
}

impl Builder {
    fn new(k: Kind, rows: usize) -> Self {
        match k {
            Kind::Int => Builder::Int(Int64Builder::with_capacity(rows)),
            Kind::Float => Builder::Float(Float64Builder::with_capacity(rows)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            Kind::Str => Builder::Str(BinaryBuilder::with_capacity(rows, rows * 8)),
        }
    }

    /// Appends a field; `false` when it does not fit the column's kind (it
    /// is then stored as null), which only a guessed schema can meet.
    #[inline]
    fn push(&mut self, f: &[u8]) -> bool {
        if f.is_empty() {
            match self {
                Builder::Int(b) => b.append_null(),
                Builder::Float(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::Date(b) => b.append_null(),
                Builder::Str(b) => b.append_null(),
            }
            return true;
        }
        let value = match self {
            Builder::Int(b) => match classify(f) {
                Class::Int(i) => Some(b.append_value(i)),
                _ => None,
            },
            Builder::Float(b) => match classify(f) {
                Class::Int(i) => Some(b.append_value(i as f64)),
                Class::Float(x) => Some(b.append_value(x)),
                _ => None,
            },
            Builder::Bool(b) => parse_bool(f).map(|v| b.append_value(v)),
            Builder::Date(b) => matches!(classify(f), Class::Date).then(|| b.append_value(days_from_civil(f))),
            Builder::Str(b) => Some(b.append_value(f)),
        };
        if value.is_none() {
            self.push(b"");
        }
        value.is_some()
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(utf8(b.finish())),
        }
    }
}

/// A column's values as text: one UTF-8 check of the whole array instead of
/// one per value (those were 5 % of a convert's time). The first pass refuses
/// a file that is not UTF-8, so the check holds; were it not to, the values
/// are decoded lossily rather than the worker stopping.
fn utf8(values: BinaryArray) -> StringArray {
    StringArray::try_from_binary(values.clone())
        .unwrap_or_else(|_| values.iter().map(|v| v.map(String::from_utf8_lossy)).collect())
}

/// How a file's records become rows of the output.
enum Layout {
    /// CSV records, in this dialect.
    Csv(CsvOptions),
    /// NDJSON objects: the column of each field path.
    Json(HashMap<String, usize>),
}

impl Layout {
    /// How the file divides into records.
    fn framing(&self) -> Framing {
        match self {
            Layout::Csv(csv) => csv.framing(),
            Layout::Json(_) => Framing::LINES,
        }
    }

    /// The block's rows as arrays of the given kinds. With a guessed schema
    /// (CSV only) the third value says whether every record fitted it.
    fn build(&self, buf: &[u8], file_start: bool, kinds: &[Kind], guess: Option<&Guess>) -> (Vec<ArrayRef>, u64, bool) {
        match self {
            Layout::Csv(csv) => build_arrays(csv, buf, file_start, kinds, guess),
            Layout::Json(columns) => {
                let (arrays, rows) = build_json_arrays(columns, buf, file_start, kinds);
                (arrays, rows, true)
            }
        }
    }
}

/// A leaf NDJSON value as the text a CSV cell would hold; arrays are kept
/// whole, as their JSON text, and null is `None`.
fn json_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Value::Null | Value::Object(_) => None,
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Array(_) => Some(Cow::Owned(value.to_string())),
    }
}

/// Parses whole NDJSON lines into arrays of the given kinds; lines that are
/// not JSON objects are left out, as the inference pass reported them.
fn build_json_arrays(columns: &HashMap<String, usize>, buf: &[u8], file_start: bool, kinds: &[Kind]) -> (Vec<ArrayRef>, u64) {
    let buf = if file_start { buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf) } else { buf };
    let est = (buf.len() / (kinds.len().max(1) * 16)).max(16);
    let mut builders: Vec<Builder> = kinds.iter().map(|&k| Builder::new(k, est)).collect();
    let mut rows = 0u64;
    let mut path = String::new();
    for line in buf.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else { continue };
        let mut row = vec![None; kinds.len()];
        path.clear();
        ndjson::for_each_leaf(&value, &mut path, &mut |path, leaf| {
            if let Some(&i) = columns.get(path) {
                row[i] = json_text(leaf);
            }
        });
        for (b, f) in builders.iter_mut().zip(&row) {
            b.push(f.as_deref().map_or(b"", str::as_bytes));
        }
        rows += 1;
    }
    (builders.into_iter().map(Builder::finish).collect(), rows)
}

/// Parses whole records into arrays of the given kinds; with a guessed
/// schema, also whether the block is valid UTF-8 and every record has the
/// file's width and values of its columns' kinds (no value in an unseen
/// column).
fn build_arrays(csv: &CsvOptions, buf: &[u8], file_start: bool, kinds: &[Kind], guess: Option<&Guess>) -> (Vec<ArrayRef>, u64, bool) {
    let mut buf = buf;
    if file_start && buf.starts_with(b"\xEF\xBB\xBF") {
        buf = &buf[3..];
    }
    let est = (buf.len() / (kinds.len().max(1) * 8)).max(16);
    let mut builders: Vec<Builder> = kinds.iter().map(|&k| Builder::new(k, est)).collect();
    let mut reader = Reader::new(buf, csv.dialect);
    let mut rec = Record::default();
    let mut header_rows = if file_start { csv.header_rows } else { 0 };
    let mut rows = 0u64;
    let mut fits = guess.is_none() || std::str::from_utf8(buf).is_ok();
    let all_seen = vec![false; kinds.len()];
    let unseen = guess.map_or(&all_seen, |g| &g.unseen);
    // The inference pass validated the file and reported its rows of the
    // wrong width: here they are only left out or fixed. A guessed schema
    // met neither, so one such row disproves it.
    loop {
        match reader.next_record(&mut rec) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                fits &= guess.is_none();
                break;
            }
        }
        if header_rows > 0 {
            header_rows -= 1;
            continue;
        }
        let found = rec.len();
        if found != kinds.len() {
            fits &= guess.is_none();
            if !csv.bad_rows.policy.fix(kinds.len(), found).keeps() {
                continue;
            }
        }
        rows += 1;
        for ((b, f), &unseen) in builders.iter_mut().zip(rec.iter(buf)).zip(unseen) {
            fits &= b.push(f) & (!unseen || f.is_empty());
        }
        for b in builders.iter_mut().skip(found) {
            b.push(b"");
        }
    }
    (builders.into_iter().map(Builder::finish).collect(), rows, fits)
}

fn encode(factory: &ArrowRowGroupWriterFactory, schema: &Schema, index: usize, arrays: &[ArrayRef]) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
    let writers = factory.create_column_writers(index)?;
    let mut writers = writers.into_iter();
    let mut chunks = Vec::with_capacity(arrays.len());
    for (field, arr) in schema.fields().iter().zip(arrays) {
        for leaf in compute_leaves(field, arr)? {
            let mut w = writers.next().ok_or_else(|| parquet::errors::ParquetError::General("column writer missing".into()))?;
            w.write(&leaf)?;
            chunks.push(w.close()?);
        }
    }
    Ok(chunks)
}

/// Adds one encoded row group to the file being written.
fn append_row_group<W: std::io::Write + Send>(
    writer: &mut parquet::file::writer::SerializedFileWriter<W>,
    chunks: Vec<ArrowColumnChunk>,
) -> parquet::errors::Result<()> {
    let mut rg = writer.next_row_group()?;
    for c in chunks {
        c.append_to_row_group(&mut rg)?;
    }
    rg.close()?;
    Ok(())
}

/// What the first pass learns of a file.
struct Inferred {
    names: Vec<String>,
    kinds: Vec<Kind>,
    /// How to read the rows.
    layout: Layout,
    /// Rows left out or fixed.
    bad: Found,
    /// The dialect sniffed for it.
    sniffed: Option<FileDialect>,
    /// Set when the schema is only guessed, from the first chunk.
    guess: Option<Guess>,
}

impl Inferred {
    /// The schema of a CSV file's rows, from their type evidence.
    fn of_csv(stats: ChunkStats, csv: CsvOptions, sniffed: Option<FileDialect>) -> Inferred {
        let width = stats.width.unwrap_or(0);
        let kinds = (0..width)
            .map(|i| stats.cols.get(i).map_or(Kind::Str, |c| Kind::from_type_name(c.type_name())))
            .collect();
        Inferred { names: column_names(stats.header, width), kinds, layout: Layout::Csv(csv), bad: stats.bad, sniffed, guess: None }
    }
}

/// What writing a file with a guessed schema checks the rest against.
struct Guess {
    /// The columns with no value in the first chunk: their kind is not
    /// known, so a value in one of them later disproves the guess.
    unseen: Vec<bool>,
    /// Quote parities at the chunk starts, computed for the guess.
    parity: Vec<bool>,
}

/// A schema guessed from the first chunk of a plain CSV file of several
/// chunks, so that the file is read once instead of twice (the inference
/// pass was a fifth of a convert's time). The write checks every later
/// record against it: a value of another kind, a value in a column the
/// chunk left empty, a row of another width, an unterminated quote or
/// invalid UTF-8 disproves it, and the file is written again after a
/// whole-file inference, which also reports those rows. `None` when the
/// file is compressed, NDJSON, a single chunk, or its first chunk is not
/// clean: those get the two passes straight away.
fn guess_schema(op: &ConvertOp, task: &FileTask, source: &Input, ctl: &Control) -> Result<Option<Inferred>, EngineError> {
    let n = chunk_count(task.size, op.chunk);
    let format = match op.format.resolve(task, source, Format::Csv) {
        Ok(f) if n > 1 && f != Format::Ndjson => f,
        _ => return Ok(None),
    };
    let Ok((csv, sniffed)) = op.csv.for_file(format, source, &task.path) else { return Ok(None) };
    let framing = csv.framing();
    if source.reading(task, op.csv.decode, framing, false).is_some() {
        return Ok(None);
    }
    let parity = match framing.records.quote() {
        Some(q) => match quote_parities(&source.blob, n, op.chunk, q, ctl) {
            Ok(p) if !p[n] => p,
            _ => return Ok(None),
        },
        None => vec![false; n + 1],
    };
    ctl.check()?;
    let infer = StatsOp::type_inference(csv.clone(), op.chunk);
    let Ok(Some(stats)) = parse_first_chunk(&infer, source, n, &parity) else { return Ok(None) };
    let width = stats.width.unwrap_or(0);
    let unseen = (0..width).map(|i| stats.cols.get(i).is_none_or(|c| c.count == 0)).collect();
    let mut inferred = Inferred::of_csv(stats, csv, sniffed);
    inferred.guess = Some(Guess { unseen, parity });
    Ok(Some(inferred))
}

/// The schema of a file, from a first pass over it in the format chosen
/// for it (which also validates it).
fn infer_schema(op: &ConvertOp, task: &FileTask, source: &Input, ctl: &Control) -> Result<Result<Inferred, FileError>, EngineError> {
    let format = match op.format.resolve(task, source, Format::Csv) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    if format == Format::Ndjson {
        let infer = StatsOp::type_inference(op.csv.clone(), op.chunk);
        return Ok(ndjson::parse_file(&infer, task, source, ctl)?.map(|f| {
            let kinds = f.columns.iter()
                .map(|(_, c)| if c.kinds.array > 0 { Kind::Str } else { Kind::from_type_name(c.acc.type_name()) })
                .collect();
            let names: Vec<String> = f.columns.into_iter().map(|(name, _)| name).collect();
            let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
            let bad = Found { total: f.bad.len() as u64, rows: f.bad };
            Inferred { names, kinds, layout: Layout::Json(index), bad, sniffed: None, guess: None }
        }));
    }
    let (csv, sniffed) = match op.csv.for_file(format, source, &task.path) {
        Ok(x) => x,
        Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
    };
    let infer = StatsOp::type_inference(csv.clone(), op.chunk);
    Ok(parse_file(&infer, task, source, ctl)?.map(|stats| Inferred::of_csv(stats, csv, sniffed)))
}

/// How writing a file ended.
enum Written {
    Done { output: Output, columns: Vec<(String, Kind)>, bad: Found, sniffed: Option<FileDialect> },
    Failed(FileError),
    /// A record did not fit the guessed schema; nothing was kept, and
    /// `counted` bytes of progress were reported already.
    Misfit { counted: u64 },
}

/// Pass 2: writes the file's rows with the schema pass 1 inferred (or
/// guessed). `counted` bytes of progress were reported by a write given up.
fn convert_file(op: &ConvertOp, task: &FileTask, source: &Input, ctl: &Control, inferred: Inferred, counted: u64) -> Result<Written, EngineError> {
    let input = &source.blob;
    let Inferred { names, kinds, layout, bad, sniffed, guess } = inferred;
    let schema: SchemaRef = Arc::new(Schema::new(
        names.iter().zip(&kinds).map(|(n, k)| Field::new(n, k.data_type(), true)).collect::<Vec<_>>(),
    ));
    let columns: Vec<(String, Kind)> = names.into_iter().zip(kinds.iter().copied()).collect();

    let out_path = op.output_path(&task.path);
    let tmp_path = {
        let mut n = out_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        n.push(".tmp");
        out_path.with_file_name(n)
    };
    let fail = |e: String| -> Result<Written, EngineError> {
        let _ = std::fs::remove_file(&tmp_path);
        Ok(Written::Failed(FileError::new(&task.path, None, e)))
    };
    let finish = |rows: u64| -> Result<Written, String> {
        std::fs::rename(&tmp_path, &out_path).map_err(|e| format!("cannot rename output: {e}"))
            .map(|()| Output { source: task.path.clone(), path: out_path.to_string_lossy().into_owned(), rows })
            .map(|output| Written::Done { output, columns, bad, sniffed })
    };
    if let Some(parent) = out_path.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return fail(format!("cannot create output directory {}: {e}", parent.display()));
        }
        let inside = std::fs::canonicalize(parent)
            .and_then(|p| Ok(p.starts_with(std::fs::canonicalize(&op.output_dir)?)));
        if !matches!(inside, Ok(true)) {
            return fail(format!("output directory {} leads outside convert.output_dir", parent.display()));
        }
    }
    // A fresh file that is not a link: a link left in its place is not followed.
    let _ = std::fs::remove_file(&tmp_path);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp_path);
    let out = match created {
        Ok(f) => std::io::BufWriter::with_capacity(1 << 20, f),
        Err(e) => return fail(format!("cannot create {}: {e}", tmp_path.display())),
    };
    let mut sink = Sink::new(out);

    let framing = layout.framing();
    let quote = framing.records.quote();
    let mut rows = 0u64;
    // The next row group's ordinal.
    let mut index = 0;
    if let Some(reading) = source.reading(task, op.csv.decode, framing, true) {
        let mut failure = None;
        // Compressed in independent frames: groups of them parsed in
        // parallel, their blocks encoded in parallel, written in order.
        let build = |mut built: Vec<Built>, block: &[u8], file_start: bool| {
            let (arrays, r, _) = layout.build(block, file_start, &kinds, None);
            if r > 0 || file_start {
                built.push(Built { arrays, rows: r, bytes: 0, fits: true });
            }
            built
        };
        let windows = fold_windows(&reading, ctl, Vec::new, build, |groups| {
            let built: Vec<Built> = groups.into_iter().flatten().collect();
            match write_in_order(op, &schema, &mut sink, built, &mut index) {
                Ok(r) => {
                    rows += r;
                    Flow::More
                }
                Err(e) => {
                    failure = Some(e);
                    Flow::Stop
                }
            }
        });
        // Otherwise one row group per block, encoded while the next block
        // is decompressed.
        let done = windows.unwrap_or_else(|| for_each_block(reading, ctl, |block, at| {
            let (arrays, r, _) = layout.build(block, at.is_start(), &kinds, None);
            if r == 0 && !at.is_start() {
                return Ok(Flow::More);
            }
            let written = sink.factory(op, &schema, &arrays)
                .and_then(|factory| encode(factory, &schema, index, &arrays).map_err(|e| format!("parquet encode: {e}")))
                .and_then(|chunks| sink.append(chunks));
            index += 1;
            rows += r;
            Ok(match written {
                Ok(()) => Flow::More,
                Err(e) => {
                    failure = Some(e);
                    Flow::Stop
                }
            })
        }))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp_path);
        })?;
        match (done, failure) {
            (Err(e), _) => return fail(e.reason),
            (Ok(()), Some(e)) => return fail(e),
            (Ok(()), None) => {}
        }
        return sink.close(op, &schema).and_then(|()| finish(rows)).map_or_else(fail, Ok);
    }
    let n = chunk_count(task.size, op.chunk);
    let parity = match (&guess, quote) {
        (Some(g), _) => g.parity.clone(),
        (None, Some(q)) if n > 1 => match quote_parities(input, n, op.chunk, q, ctl) {
            Ok(p) => p,
            Err(e) => return fail(format!("read error: {e}")),
        },
        _ => vec![false; n + 1],
    };
    // Progress: what this write reported, and what a write given up before
    // it did (not counted twice).
    let (mut reported, mut uncounted) = (0, counted);
    let window = rayon::current_num_threads().max(1) * 2;
    for start in (0..n).step_by(window) {
        let end = (start + window).min(n);
        // Parse the window's chunks, then encode them: the first chunk of
        // the file decides the writer's dictionaries before any is encoded.
        let built: Vec<Result<Option<Built>, String>> = (start..end)
            .into_par_iter()
            .map(|i| {
                if ctl.is_cancelled() {
                    return Err("cancelled".to_string());
                }
                with_buffer(|buf| {
                    let (s, e) = if n == 1 {
                        read_to_end_from(input, 0, buf, task.size as usize + 1).map_err(|e| format!("read error: {e}"))?;
                        (0, buf.len())
                    } else {
                        let a = read_aligned(input, i, n, op.chunk, quote, &parity, buf)
                            .map_err(|e| format!("read error: {e}"))?;
                        (a.start, a.end)
                    };
                    let (arrays, r, fits) = layout.build(&buf[s..e], i == 0, &kinds, guess.as_ref());
                    if r == 0 && fits && !(i == 0 && n == 1) {
                        return Ok(None);
                    }
                    Ok(Some(Built { arrays, rows: r, bytes: (e - s) as u64, fits }))
                })
            })
            .collect();
        ctl.check().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp_path);
        })?;
        let built = match built.into_iter().filter_map(Result::transpose).collect::<Result<Vec<Built>, String>>() {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        if built.iter().any(|b| !b.fits) {
            let _ = std::fs::remove_file(&tmp_path);
            return Ok(Written::Misfit { counted: reported });
        }
        let bytes: u64 = built.iter().map(|b| b.bytes).sum();
        match write_in_order(op, &schema, &mut sink, built, &mut index) {
            Ok(r) => rows += r,
            Err(e) => return fail(e),
        }
        ctl.add_bytes(bytes.saturating_sub(uncounted));
        uncounted = uncounted.saturating_sub(bytes);
        reported += bytes;
    }
    sink.close(op, &schema).and_then(|()| finish(rows)).map_or_else(fail, Ok)
}

/// Encodes parsed blocks as the next row groups, in parallel, and appends
/// them in order; the rows written.
fn write_in_order(op: &ConvertOp, schema: &SchemaRef, sink: &mut Sink, built: Vec<Built>, index: &mut usize) -> Result<u64, String> {
    let Some(first) = built.first() else { return Ok(0) };
    let factory = sink.factory(op, schema, &first.arrays)?;
    let start = *index;
    *index += built.len();
    let encoded: Vec<Result<(Vec<ArrowColumnChunk>, u64), String>> = built
        .into_par_iter()
        .enumerate()
        .map(|(i, b)| {
            let chunks = encode(factory, schema, start + i, &b.arrays).map_err(|e| format!("parquet encode: {e}"))?;
            Ok((chunks, b.rows))
        })
        .collect();
    let mut rows = 0;
    for item in encoded {
        let (chunks, r) = item?;
        sink.append(chunks)?;
        rows += r;
    }
    Ok(rows)
}

/// One parsed chunk of a file, waiting to be encoded as a row group.
struct Built {
    arrays: Vec<ArrayRef>,
    rows: u64,
    bytes: u64,
    /// Every record fitted the schema (always, unless it is guessed).
    fits: bool,
}

type Out = std::io::BufWriter<std::fs::File>;

/// The output file: opened as Parquet once the first row group's values
/// are known, since they decide the writer's properties.
struct Sink {
    unopened: Option<Out>,
    open: Option<(SerializedFileWriter<Out>, ArrowRowGroupWriterFactory)>,
}

impl Sink {
    fn new(out: Out) -> Self {
        Sink { unopened: Some(out), open: None }
    }

    /// The factory of column writers, opening the file with properties
    /// chosen from `first` if it is not open yet.
    fn factory(&mut self, op: &ConvertOp, schema: &SchemaRef, first: &[ArrayRef]) -> Result<&ArrowRowGroupWriterFactory, String> {
        if let Some(out) = self.unopened.take() {
            let opened = ArrowWriter::try_new(out, schema.clone(), Some(op.props(schema, first)))
                .and_then(ArrowWriter::into_serialized_writer)
                .map_err(|e| format!("parquet writer: {e}"))?;
            self.open = Some(opened);
        }
        self.open.as_ref().map(|(_, factory)| factory).ok_or_else(not_open)
    }

    /// Adds one encoded row group to the file.
    fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<(), String> {
        let (writer, _) = self.open.as_mut().ok_or_else(not_open)?;
        append_row_group(writer, chunks).map_err(|e| format!("parquet write: {e}"))
    }

    /// Writes the footer, opening the file first if no row group was written.
    fn close(mut self, op: &ConvertOp, schema: &SchemaRef) -> Result<(), String> {
        self.factory(op, schema, &[])?;
        let (writer, _) = self.open.ok_or_else(not_open)?;
        writer.close().map(drop).map_err(|e| format!("parquet write: {e}"))
    }
}

fn not_open() -> String {
    "parquet writer: not open".into()
}

impl Operation for ConvertOp {
    type Body = ConvertBody;
    const NAME: &'static str = "convert";

    fn empty(&self) -> ConvertBody {
        ConvertBody { compression: self.compression, rows: 0, outputs: Vec::new(), schema: Vec::new(), bad_rows: BadRows::default(), dialects: Dialects::default() }
    }

    fn prepare(&self) -> Result<(), EngineError> {
        std::fs::create_dir_all(&self.output_dir).map_err(|e| {
            EngineError::Invalid(format!("convert.output_dir: cannot create {}: {e}", self.output_dir.display()))
        })
    }

    fn process_file(&self, task: &FileTask, input: &Input, ctl: &Control, acc: &mut ConvertBody) -> Result<Result<(), FileError>, EngineError> {
        // A guessed schema first; when it does not fit, the whole-file
        // inference (which a write never gives up).
        let mut guess = guess_schema(self, task, input, ctl)?;
        let mut counted = 0;
        let written = loop {
            let inferred = match guess.take() {
                Some(guessed) => guessed,
                None => match infer_schema(self, task, input, ctl)? {
                    Ok(inferred) => inferred,
                    Err(e) => break Err(e),
                },
            };
            ctl.check()?;
            match convert_file(self, task, input, ctl, inferred, counted)? {
                Written::Done { output, columns, bad, sniffed } => break Ok((output, columns, bad, sniffed)),
                Written::Failed(e) => break Err(e),
                Written::Misfit { counted: reported } => counted = reported,
            }
        };
        Ok(written.map(|(output, columns, bad, sniffed)| {
            acc.rows += output.rows;
            for (i, (name, kind)) in columns.into_iter().enumerate() {
                acc.add_column(SchemaColumn { name, ty: kind.arrow_name().to_string(), first: (task.path.clone(), i) });
            }
            acc.outputs.push(output);
            acc.bad_rows.add_file(&task.path, bad.total, bad.rows);
            acc.dialects.add(sniffed);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(b"1970-01-01"), 0);
        assert_eq!(days_from_civil(b"2000-03-01"), 11017);
        assert_eq!(days_from_civil(b"1969-12-31"), -1);
    }

    #[test]
    fn output_paths_mirror_input() {
        let op = ConvertOp::from_options(r#"{"output_dir": "/out"}"#).unwrap();
        assert_eq!(op.output_path("/data/in/a.csv"), PathBuf::from("/out/data/in/a.csv.parquet"));
        assert_eq!(op.output_path("../x.csv"), PathBuf::from("/out/_up_/x.csv.parquet"));
        assert_eq!(op.output_path("s3://bkt/in/a b.csv"), PathBuf::from("/out/bkt/in/a b.csv.parquet"));
    }

    #[test]
    fn output_names_stay_in_the_output_dir() {
        let op = ConvertOp::from_options(r#"{"output_dir": "/out"}"#).unwrap();
        for source in ["../../etc/passwd", "/../../x.csv", "a/./../b.csv", "./x.csv", "//x.csv", "/data/../.."] {
            let out = op.output_path(source);
            let plain = out.strip_prefix("/out").unwrap().components().all(|c| matches!(c, Component::Normal(_)));
            assert!(plain, "{source} -> {}", out.display());
        }
    }

    #[test]
    fn links_planted_in_the_output_dir_are_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in/a.csv");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, "x\n1\n").unwrap();
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let victim = elsewhere.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let op = ConvertOp::from_options(&format!(r#"{{"output_dir": "{}"}}"#, d.path().join("out").display())).unwrap();
        let task = FileTask::new(src.to_str().unwrap(), 4);
        let run = |op: &ConvertOp| {
            crate::job::run_partial(op, std::slice::from_ref(&task), &crate::io::Inputs::default(), &Control::default())
                .unwrap()
        };
        let out = op.output_path(&task.path);
        let tmp = out.with_file_name("a.csv.parquet.tmp");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let p = run(&op);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");

        let mirrored = out.parent().unwrap();
        std::fs::remove_dir_all(mirrored).unwrap();
        std::os::unix::fs::symlink(&elsewhere, mirrored).unwrap();
        let p = run(&op);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].reason.ends_with("leads outside convert.output_dir"), "{:?}", p.errors);
        let names: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["victim"]);
    }

    #[test]
    fn converts_and_merges_schema() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in.csv");
        let mut data = String::from("id,x,flag,day,name\n");
        for i in 0..5000 {
            data.push_str(&format!("{i},{}.5,{},2024-01-{:02},n{}\n", i, i % 2 == 0, 1 + i % 28, i % 7));
        }
        data.push_str(",,,,\n");
        std::fs::write(&src, &data).unwrap();
        let mut op = ConvertOp::from_options(&format!(r#"{{"output_dir": "{}"}}"#, d.path().join("out").display())).unwrap();
        op.chunk = 4096;
        let task = FileTask::new(src.to_str().unwrap(), data.len() as u64);
        let p = crate::job::run_partial(&op, &[task], &crate::io::Inputs::default(), &Control::default()).unwrap();
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let r = p.finalize();
        assert_eq!(r["result"]["rows"], 5001);
        let types: Vec<&str> = r["result"]["schema"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, vec!["int64", "float64", "bool", "date32", "utf8"]);
        let out = r["result"]["outputs"][0]["path"].as_str().unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(out).unwrap()).unwrap();
        use parquet::file::reader::FileReader;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 5001);
        assert!(reader.metadata().num_row_groups() > 1);
    }
}
