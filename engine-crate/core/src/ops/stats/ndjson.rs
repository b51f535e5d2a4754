//! NDJSON (JSON lines) for `stats`: one JSON object per line.
//!
//! Objects are flattened to field paths (`a.b.c`); an array is summarised by
//! its length; a field missing from a row, or null in it, is a null of that
//! row. Values reach the column accumulators as a CSV cell would give them
//! (numbers as written, strings unescaped, booleans as `true`/`false`), so
//! a column gets the same statistics whichever format it came from; like a
//! CSV cell, an empty string counts as null. Each column also counts the
//! JSON kinds it saw, so a field that is a number in some rows and a string
//! in others says so.
//!
//! Blank lines are skipped and a BOM at file start is dropped. A line that
//! is not a JSON object is a bad line (its number and the parser's reason)
//! and the rest of the file goes on; past [`MAX_BAD_LINES`] the file is an
//! error record and contributes nothing. Big files are split into line
//! aligned chunks parsed in parallel, as for grep.

use hashbrown::HashMap;
use rayon::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::column::ColumnAcc;
use super::StatsOp;
use crate::codec::{for_each_block, Flow, Framing, Input};
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::frames::fold_groups;
use crate::io::{read_to_end_from, with_buffer};
use crate::split::{chunk_count, read_aligned};
use crate::FileTask;

mod scan;

/// Bad lines a file may have before it is given up as a whole.
pub const MAX_BAD_LINES: usize = 100;

/// How many values of each JSON kind a column saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kinds {
    pub null: u64,
    pub boolean: u64,
    pub number: u64,
    pub string: u64,
    pub array: u64,
}

impl Kinds {
    pub fn merge(&mut self, o: Kinds) {
        self.null += o.null;
        self.boolean += o.boolean;
        self.number += o.number;
        self.string += o.string;
        self.array += o.array;
    }

    /// The kinds seen, with their counts (nulls, missing fields included, are
    /// the column's `nulls`).
    pub fn result(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (name, n) in [("boolean", self.boolean), ("number", self.number), ("string", self.string), ("array", self.array)] {
            if n > 0 {
                m.insert(name.to_string(), json!(n));
            }
        }
        Value::Object(m)
    }
}

/// A column of one file (or of a chunk of it).
#[derive(Debug, Clone)]
pub struct JsonColumn {
    pub acc: ColumnAcc,
    pub kinds: Kinds,
}

/// What one line-aligned range of a file holds.
#[derive(Debug, Default)]
pub struct JsonChunk {
    pub rows: u64,
    newlines: u64,
    pub columns: Vec<(String, JsonColumn)>,
    index: HashMap<String, usize>,
    /// Bad lines: line number (from the range's start, 1-based) and reason.
    pub bad: Vec<(u64, String)>,
}

impl JsonChunk {
    /// The index of the column of `path`, added when new.
    fn column_index(&mut self, op: &StatsOp, path: &str) -> usize {
        match self.index.get(path) {
            Some(&i) => i,
            None => {
                self.columns.push((path.to_string(), JsonColumn { acc: op.new_column(), kinds: Kinds::default() }));
                self.index.insert(path.to_string(), self.columns.len() - 1);
                self.columns.len() - 1
            }
        }
    }

    /// Joins with the range that directly follows in the file.
    pub fn then(mut self, next: JsonChunk) -> JsonChunk {
        let shift = self.newlines;
        self.bad.extend(next.bad.into_iter().map(|(line, reason)| (line + shift, reason)));
        self.rows += next.rows;
        self.newlines += next.newlines;
        for (name, col) in next.columns {
            match self.index.get(&name) {
                Some(&i) => {
                    let mine = &mut self.columns[i].1;
                    mine.acc.merge(col.acc);
                    mine.kinds.merge(col.kinds);
                }
                None => {
                    self.index.insert(name.clone(), self.columns.len());
                    self.columns.push((name, col));
                }
            }
        }
        self
    }

    /// Folds the columns' buffered state into their mergeable fields.
    fn flushed(mut self) -> JsonChunk {
        for (_, c) in &mut self.columns {
            c.acc.flush();
        }
        self
    }

    /// Adds one leaf value to column `i`.
    fn add_leaf(&mut self, i: usize, kind: Kind, field: &[u8]) {
        let col = &mut self.columns[i].1;
        col.kinds.bump(kind);
        col.acc.add(field);
    }
}

/// The JSON kinds a leaf value may have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
}

impl Kinds {
    fn bump(&mut self, kind: Kind) {
        *match kind {
            Kind::Null => &mut self.null,
            Kind::Boolean => &mut self.boolean,
            Kind::Number => &mut self.number,
            Kind::String => &mut self.string,
            Kind::Array => &mut self.array,
        } += 1;
    }
}

/// One line's leaf values, kept until the whole line has parsed so that a
/// line found bad adds nothing; reused from line to line.
#[derive(Default)]
struct LineLeaves<'b> {
    /// The paths of leaves below the top level, one after the other.
    paths: String,
    /// Values not borrowed from the line: unescaped strings and numbers.
    text: Vec<u8>,
    leaves: Vec<Leaf<'b>>,
    /// The top-level key of each leaf of the last line added to the columns.
    previous: Vec<Option<&'b str>>,
}

/// One leaf: its path, its kind and its value.
struct Leaf<'b> {
    path: LeafPath<'b>,
    /// The leaf at this place in the last line added had the same key.
    known: bool,
    kind: Kind,
    value: LeafValue<'b>,
}

impl Leaf<'_> {
    fn path<'s>(&'s self, paths: &'s str) -> &'s str {
        match self.path {
            LeafPath::Line(key) => key,
            LeafPath::Built(start, end) => &paths[start..end],
        }
    }

    fn value<'s>(&'s self, text: &'s [u8]) -> &'s [u8] {
        match self.value {
            LeafValue::Borrowed(v) => v,
            LeafValue::Text(start, end) => &text[start..end],
        }
    }
}

enum LeafPath<'b> {
    /// A top-level key, as it stands in the line.
    Line(&'b str),
    /// A range of `paths`.
    Built(usize, usize),
}

enum LeafValue<'b> {
    Borrowed(&'b [u8]),
    /// A range of `text`.
    Text(usize, usize),
}

impl<'b> LineLeaves<'b> {
    fn clear(&mut self) {
        self.paths.clear();
        self.text.clear();
        self.leaves.clear();
    }

    fn push(&mut self, path: &str, kind: Kind, value: LeafValue<'b>) {
        let start = self.paths.len();
        self.paths.push_str(path);
        self.leaves.push(Leaf { path: LeafPath::Built(start, self.paths.len()), known: false, kind, value });
    }

    /// A leaf under `key` of the object at `prefix` (the top level when
    /// empty, where the key is the whole path and is not copied). `known`:
    /// the key is the one [`Self::previous`] has at this place.
    fn push_under(&mut self, prefix: &str, key: &'b str, known: bool, kind: Kind, value: LeafValue<'b>) {
        let path = if prefix.is_empty() {
            LeafPath::Line(key)
        } else {
            let start = self.paths.len();
            self.paths.push_str(prefix);
            self.paths.push('.');
            self.paths.push_str(key);
            LeafPath::Built(start, self.paths.len())
        };
        self.leaves.push(Leaf { path, known, kind, value });
    }

    /// Keeps a value that does not outlive the parser's call.
    fn copy(&mut self, value: &[u8]) -> LeafValue<'b> {
        let start = self.text.len();
        self.text.extend_from_slice(value);
        LeafValue::Text(start, self.text.len())
    }

    fn push_copied(&mut self, path: &str, kind: Kind, value: &[u8]) {
        let value = self.copy(value);
        self.push(path, kind, value);
    }

    /// Adds the line's leaves to their columns. `slots` holds the column of
    /// each leaf of the line before: rows mostly have the same fields in the
    /// same order, so a leaf whose key the scanner found where the last line
    /// had it goes straight to that column, and any other compares its path
    /// with that column's name before a hash lookup.
    fn apply(&mut self, chunk: &mut JsonChunk, op: &StatsOp, slots: &mut Vec<usize>) {
        for (n, leaf) in self.leaves.iter().enumerate() {
            let column = match slots.get(n) {
                Some(&i) if leaf.known || chunk.columns[i].0 == leaf.path(&self.paths) => i,
                _ => {
                    let i = chunk.column_index(op, leaf.path(&self.paths));
                    slots.truncate(n);
                    slots.push(i);
                    i
                }
            };
            chunk.add_leaf(column, leaf.kind, leaf.value(&self.text));
        }
        self.previous.clear();
        self.previous.extend(self.leaves.iter().map(|leaf| match leaf.path {
            LeafPath::Line(key) => Some(key),
            LeafPath::Built(..) => None,
        }));
    }
}

/// Walks one row as the parser reads it, collecting every leaf value without
/// building the row in memory: strings are borrowed from the line unless
/// they hold escapes.
struct Leaves<'a, 'b> {
    line: &'a mut LineLeaves<'b>,
    path: &'a mut String,
}

impl<'b> Leaves<'_, 'b> {
    fn leaf<E>(self, kind: Kind, value: &'b [u8]) -> Result<(), E> {
        self.line.push(self.path, kind, LeafValue::Borrowed(value));
        Ok(())
    }

    /// A whole number, or an array's length: its decimal text.
    fn integer<E>(self, kind: Kind, n: impl itoa::Integer) -> Result<(), E> {
        self.line.push_copied(self.path, kind, itoa::Buffer::new().format(n).as_bytes());
        Ok(())
    }
}

impl<'b> DeserializeSeed<'b> for Leaves<'_, 'b> {
    type Value = ();

    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'b> Visitor<'b> for Leaves<'_, 'b> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf(Kind::Null, b"")
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.leaf(Kind::Boolean, if b { b"true" } else { b"false" })
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.integer(Kind::Number, n)
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        self.integer(Kind::Number, n)
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        let mut buf = ryu::Buffer::new();
        self.line.push_copied(self.path, Kind::Number, float_text(n, &mut buf).as_bytes());
        Ok(())
    }

    fn visit_borrowed_str<E>(self, s: &'b str) -> Result<(), E> {
        self.leaf(Kind::String, s.as_bytes())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.line.push_copied(self.path, Kind::String, s.as_bytes());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'b>>(self, mut items: A) -> Result<(), A::Error> {
        let mut n = 0u64;
        while items.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        self.integer(Kind::Array, n)
    }

    fn visit_map<A: MapAccess<'b>>(self, mut fields: A) -> Result<(), A::Error> {
        let len = self.path.len();
        while fields.next_key_seed(Key { path: self.path })?.is_some() {
            fields.next_value_seed(Leaves { line: self.line, path: self.path })?;
            self.path.truncate(len);
        }
        Ok(())
    }
}

/// A float's text as Rust's `Display` writes it (shortest round-trip digits,
/// never an exponent, no `.0`), through `ryu`, which finds the same digits
/// faster. Two cases go through `Display`: the values `ryu` writes with an
/// exponent, and texts of 16 or more significant digits. Only there can the
/// exact value lie halfway between two shortest candidates (its expansion
/// then has 17 or more digits, ending in 5), and the two break that tie
/// differently: `ryu` to even, `Display` up (982796954799253.25 is
/// `…253.2` in one and `…253.3` in the other).
fn float_text(n: f64, buf: &mut ryu::Buffer) -> std::borrow::Cow<'_, str> {
    if !n.is_finite() {
        return n.to_string().into();
    }
    let s = buf.format_finite(n);
    if s.contains('e') || significant_digits(s) >= 16 {
        n.to_string().into()
    } else {
        s.strip_suffix(".0").unwrap_or(s).into()
    }
}

/// Digits of a plain decimal text after its leading zeros (an upper bound
/// of its significant digits: trailing zeros are counted too).
fn significant_digits(text: &str) -> usize {
    text.bytes().skip_while(|&b| matches!(b, b'-' | b'0' | b'.')).filter(u8::is_ascii_digit).count()
}

/// Appends an object key to the path (see [`push_key`]).
struct Key<'a> {
    path: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<(), E> {
        push_key(self.path, key);
        Ok(())
    }
}

/// Appends an object key to a field path: `a.b` and `c` give `a.b.c`; at
/// the top level, where the path is empty, the key is the path.
fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Calls `leaf` with the path (`a.b.c`) and value of every value under
/// `value` that is not an object: objects are flattened, an empty one adds
/// nothing.
pub fn for_each_leaf<'v>(value: &'v Value, path: &mut String, leaf: &mut impl FnMut(&str, &'v Value)) {
    match value {
        Value::Object(fields) => {
            let len = path.len();
            for (key, v) in fields {
                push_key(path, key);
                for_each_leaf(v, path, leaf);
                path.truncate(len);
            }
        }
        _ => leaf(path, value),
    }
}

/// Parses one line into `leaves`, or says why it is bad.
fn parse_line<'b>(line: &'b [u8], leaves: &mut LineLeaves<'b>, path: &mut String) -> Result<(), String> {
    if line[0] != b'{' {
        return Err(match serde_json::from_slice::<IgnoredAny>(line) {
            Ok(_) => "not a JSON object".into(),
            Err(e) => format!("malformed JSON: {e}"),
        });
    }
    leaves.clear();
    path.clear();
    if scan::scan_object(line, leaves, path).is_ok() {
        return Ok(());
    }
    leaves.clear();
    path.clear();
    parse_with_serde(line, leaves, path)
}

/// Parses one object line with serde_json: the lines the fast scanner is
/// unsure of, and the reason a bad line gives.
fn parse_with_serde<'b>(line: &'b [u8], leaves: &mut LineLeaves<'b>, path: &mut String) -> Result<(), String> {
    // One UTF-8 check of the whole line spares the parser a check of every
    // string; a line that fails it is parsed from bytes, so its error says
    // where the bad bytes are.
    match std::str::from_utf8(line) {
        Ok(text) => parse_object(&mut serde_json::Deserializer::from_str(text), leaves, path),
        Err(_) => parse_object(&mut serde_json::Deserializer::from_slice(line), leaves, path),
    }
}

fn parse_object<'b, R: serde_json::de::Read<'b>>(
    parser: &mut serde_json::Deserializer<R>,
    leaves: &mut LineLeaves<'b>,
    path: &mut String,
) -> Result<(), String> {
    Leaves { line: leaves, path }
        .deserialize(&mut *parser)
        .and_then(|()| parser.end())
        .map_err(|e| format!("malformed JSON: {e}"))
}

/// The pieces of `buf` between newlines, as `split` on `\n` gives them, found
/// with `memchr` rather than by testing every byte.
fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', buf).chain([buf.len()]).map(move |end| {
        let line = &buf[start..end];
        start = end + 1;
        line
    })
}

/// Parses a buffer of whole lines.
pub fn parse_chunk(op: &StatsOp, buf: &[u8], file_start: bool) -> JsonChunk {
    let mut out = JsonChunk::default();
    parse_lines(&mut out, op, buf, file_start);
    out.flushed()
}

/// Parses a buffer of whole lines that directly follows the ones `out`
/// holds, into the same columns: consecutive chunks of a file share one
/// accumulator, so their tables and sketches warm up once.
fn parse_lines(out: &mut JsonChunk, op: &StatsOp, buf: &[u8], file_start: bool) {
    let buf = if file_start { buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf) } else { buf };
    let before = out.newlines;
    let mut path = String::new();
    let mut leaves = LineLeaves::default();
    let mut slots = Vec::new();
    for (i, line) in lines(buf).enumerate() {
        // The pieces between newlines are one more than the newlines.
        out.newlines = before + i as u64;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match parse_line(line, &mut leaves, &mut path) {
            Ok(()) => {
                out.rows += 1;
                leaves.apply(out, op, &mut slots);
            }
            Err(reason) => out.bad.push((before + i as u64 + 1, reason)),
        }
    }
}

/// One file's columns, rows and bad lines.
#[derive(Debug)]
pub struct JsonFile {
    pub rows: u64,
    pub columns: Vec<(String, JsonColumn)>,
    /// Bad lines: 1-based line number and reason.
    pub bad: Vec<(u64, String)>,
}

fn finish(task: &FileTask, chunk: JsonChunk) -> Result<JsonFile, FileError> {
    if chunk.bad.len() > MAX_BAD_LINES {
        let (line, reason) = &chunk.bad[MAX_BAD_LINES];
        return Err(FileError::new(
            &task.path,
            Some(*line),
            format!("more than {MAX_BAD_LINES} bad lines, the file is skipped; this one: {reason}"),
        ));
    }
    let rows = chunk.rows;
    let mut columns = chunk.columns;
    for (_, c) in &mut columns {
        // A field missing from a row is a null of that row.
        c.acc.nulls += rows.saturating_sub(c.acc.count + c.acc.nulls);
    }
    Ok(JsonFile { rows, columns, bad: chunk.bad })
}

/// Parses a whole NDJSON file: in parallel chunks when big, block after
/// block when compressed.
pub fn parse_file(op: &StatsOp, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<JsonFile, FileError>, EngineError> {
    if let Some(reading) = input.reading(task, op.csv.decode, Framing::LINES, !op.types_only) {
        let fold = |joined: JsonChunk, block: &[u8], file_start: bool| joined.then(parse_chunk(op, block, file_start));
        if let Some(split) = fold_groups(&reading, ctl, JsonChunk::default, fold, JsonChunk::then) {
            return Ok(split?.and_then(|chunk| finish(task, chunk)));
        }
        let mut joined = JsonChunk::default();
        let done = for_each_block(reading, ctl, |block, at| {
            let mut chunk = parse_chunk(op, block, at.is_start());
            for (line, _) in &mut chunk.bad {
                *line += at.lines;
            }
            chunk.newlines = 0;
            joined = std::mem::take(&mut joined).then(chunk);
            Ok(if joined.bad.len() > MAX_BAD_LINES { Flow::Stop } else { Flow::More })
        })?;
        return Ok(done.and_then(|()| finish(task, joined)));
    }
    let blob = &input.blob;
    let n = chunk_count(task.size, op.chunk);
    let parity = vec![false; n + 1];
    // Consecutive chunks of one split of the range fold into one
    // accumulator; splits then join in file order, so bad-line numbers still
    // count the lines before them.
    let joined = (0..n)
        .into_par_iter()
        .try_fold(
            || Ok(JsonChunk::default()),
            |joined: Result<JsonChunk, FileError>, i| -> Result<Result<JsonChunk, FileError>, EngineError> {
                ctl.check()?;
                let Ok(mut joined) = joined else { return Ok(joined) };
                Ok(with_buffer(|buf| {
                    let range = if n == 1 {
                        read_to_end_from(blob, 0, buf, task.size as usize + 1).map(|_| 0..buf.len())
                    } else {
                        read_aligned(blob, i, n, op.chunk, None, &parity, buf).map(|a| a.start..a.end)
                    };
                    let range = range.map_err(|e| FileError::io(&task.path, &e))?;
                    if !op.types_only {
                        ctl.add_bytes(range.len() as u64);
                    }
                    parse_lines(&mut joined, op, &buf[range], i == 0);
                    Ok(joined)
                }))
            },
        )
        .map(|split| split.map(|joined| joined.map(JsonChunk::flushed)))
        .try_reduce(
            || Ok(JsonChunk::default()),
            |a, b| Ok(match (a, b) {
                (Ok(a), Ok(b)) => Ok(a.then(b)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }),
        )?;
    Ok(joined.and_then(|chunk| finish(task, chunk)))
}

#[cfg(test)]
mod tests {
    use super::{float_text, lines};
    use proptest::prelude::*;

    fn same_as_display(n: f64) {
        assert_eq!(float_text(n, &mut ryu::Buffer::new()), n.to_string(), "{n:e}");
    }

    #[test]
    fn float_text_matches_display_at_the_edges() {
        for n in [0.0, -0.0, 1.0, -1.5, 0.1, 1e15, 1e16, 1e-5, 1e-7, 123456789.125, f64::MAX, f64::MIN_POSITIVE, 5e-324,
                  982796954799253.25, -964367322320340.25, 4503599627370495.5] {
            same_as_display(n);
        }
    }

    proptest! {
        #[test]
        fn float_text_matches_display(bits in any::<u64>()) {
            same_as_display(f64::from_bits(bits));
        }

        #[test]
        fn lines_are_the_pieces_split_gives(buf in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), Just(b' ')], 0..40)) {
            prop_assert!(lines(&buf).eq(buf.split(|&b| b == b'\n')));
        }

        #[test]
        fn float_text_matches_display_for_decimals(n in -1e9f64..1e9) {
            same_as_display(n);
        }
    }
}
