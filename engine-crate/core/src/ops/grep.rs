//! `grep`: lines matching a regular expression, with 1-based line numbers.
//!
//! The regex runs over whole buffers (its literal prefilters do the heavy
//! lifting), and line boundaries are located only around matches. A line
//! matches when the regex matches within the line alone: a candidate match
//! that crosses a newline (e.g. through `\s`) is re-checked against its first
//! line. `^`/`$` match at line starts/ends. A pattern whose matches all
//! contain an inner literal (see [`literal`]) is searched for that literal
//! instead, and only the lines holding it are checked, by a DFA built once
//! for the pattern (see [`line_dfa`]). Newlines are
//! counted only as far as line numbers are needed: up to the last line kept.
//! Big files are mapped into memory, split into chunks aligned to lines and
//! searched in parallel; chunk results are joined in order so line numbers
//! stay exact.

use rayon::prelude::*;
use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::options::Options;
use line_dfa::LineDfa;
use crate::codec::{for_each_block, Decode, Flow, Framing, Input};
use crate::frames::fold_groups;
use super::Operation;
use crate::control::Control;
use crate::error::{invalid, EngineError, FileError};
use crate::io::{read_to_end_from, with_buffer};
use crate::partial::Body;
use crate::split::{chunk_count, raw_start, read_aligned};
use crate::FileTask;

mod line_dfa;
mod literal;

pub const CHUNK: u64 = 8 << 20;

/// The most matching lines a job may keep per file. The one bound: the Python
/// spec (and the CRD generated from it) reads it from the engine.
pub const MAX_MATCHES_PER_FILE: u64 = 100_000;

#[derive(Debug, Clone)]
pub struct GrepOp {
    pub pattern: String,
    pub ignore_case: bool,
    pub max_matches_per_file: usize,
    pub matcher: Matcher,
    pub chunk: u64,
}

/// What finds matching lines: the regex, and the literal every match
/// contains when searching for it first is faster, with the DFA that checks
/// the lines holding that literal.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub regex: Regex,
    pub inner: Option<Finder<'static>>,
    line_dfa: Option<LineDfa>,
}

impl GrepOp {
    pub fn from_options(text: &str) -> Result<Self, EngineError> {
        let mut o = Options::parse("grep", text)?;
        let pattern = o.string("pattern", None)?;
        let ignore_case = o.boolean("ignore_case", false)?;
        let max = o.uint("max_matches_per_file", 100, 0, MAX_MATCHES_PER_FILE)? as usize;
        o.finish()?;
        Self::new(&pattern, ignore_case, max)
    }

    /// The only place a grep regex is built: running and checking options
    /// both come here, so a pattern accepted by one is accepted by the other.
    pub fn new(pattern: &str, ignore_case: bool, max_matches_per_file: usize) -> Result<Self, EngineError> {
        let regex = match RegexBuilder::new(pattern).case_insensitive(ignore_case).multi_line(true).build() {
            Ok(r) => r,
            Err(e) => return invalid(format!("grep.pattern: {e}")),
        };
        let inner = literal::required_inner(pattern, ignore_case).map(|l| Finder::new(&l).into_owned());
        let line_dfa = inner.as_ref().and_then(|_| LineDfa::new(pattern, ignore_case));
        let matcher = Matcher { regex, inner, line_dfa };
        Ok(GrepOp { pattern: pattern.to_string(), ignore_case, max_matches_per_file, matcher, chunk: CHUNK })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    pub line: u64,
    pub text: String,
}

/// A file's kept lines as JSON text (`[{"line":…,"text":…},…]`), written once
/// by the thread that found them: merging, splitting and finalizing copy the
/// text instead of parsing and writing every line again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeptLines(Box<RawValue>);

impl KeptLines {
    fn new(lines: &[Line]) -> KeptLines {
        KeptLines(serde_json::value::to_raw_value(lines).expect("lines of text serialise"))
    }

    fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for KeptLines {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrepFile {
    pub path: String,
    pub matches: u64,
    pub lines: KeptLines,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrepBody {
    pub pattern: String,
    pub max_matches_per_file: usize,
    pub matches: u64,
    pub files_with_matches: u64,
    pub files: Vec<GrepFile>,
}

fn file_order(a: &GrepFile, b: &GrepFile) -> std::cmp::Ordering {
    a.path.as_bytes().cmp(b.path.as_bytes()).then(a.matches.cmp(&b.matches)).then(a.lines.text().cmp(b.lines.text()))
}

fn sort_files(files: &mut [GrepFile]) {
    files.sort_by(file_order);
}

impl Body for GrepBody {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        if self.pattern != other.pattern {
            return Err("grep.pattern: cannot merge partials of different patterns".into());
        }
        self.matches += other.matches;
        self.files_with_matches += other.files_with_matches;
        self.files.extend(other.files);
        sort_files(&mut self.files);
        Ok(())
    }

    fn result(&self) -> Value {
        let mut files = self.files.clone();
        sort_files(&mut files);
        json!({
            "pattern": self.pattern,
            "matches": self.matches,
            "files_with_matches": self.files_with_matches,
            "files": files,
        })
    }

    fn write_result(&self, out: &mut dyn std::io::Write) -> Result<(), String> {
        // Keys in sorted order, as in `result`; `Line` already declares its
        // fields that way.
        #[derive(Serialize)]
        struct FileOut<'a> {
            lines: &'a KeptLines,
            matches: u64,
            path: &'a str,
        }
        #[derive(Serialize)]
        struct ResultOut<'a> {
            files: Vec<FileOut<'a>>,
            files_with_matches: u64,
            matches: u64,
            pattern: &'a str,
        }
        let mut files: Vec<&GrepFile> = self.files.iter().collect();
        files.sort_by(|a, b| file_order(a, b));
        let files = files.iter().map(|f| FileOut { lines: &f.lines, matches: f.matches, path: &f.path }).collect();
        let r = ResultOut { files, files_with_matches: self.files_with_matches, matches: self.matches, pattern: &self.pattern };
        serde_json::to_writer(out, &r).map_err(|e| e.to_string())
    }

    fn strip(&mut self) {
        self.files.clear();
    }
}

/// Matches in one line-aligned range; line numbers are 0-based within it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    /// Newlines in the range; only counted when fewer than the most lines
    /// kept were found, since otherwise no later line is kept and needs
    /// shifting by them.
    pub newlines: u64,
    pub matches: u64,
    pub lines: Vec<Line>,
}

impl Hits {
    /// Joins with the range that directly follows.
    fn then(mut self, next: Hits, max: usize) -> Hits {
        let shift = self.newlines;
        for l in next.lines {
            if self.lines.len() >= max {
                break;
            }
            self.lines.push(Line { line: l.line + shift, text: l.text });
        }
        self.newlines += next.newlines;
        self.matches += next.matches;
        self
    }
}

impl Matcher {
    fn line_matches(&self, line: &[u8]) -> bool {
        match self.line_dfa.as_ref().and_then(|dfa| dfa.is_match(line)) {
            Some(found) => found,
            None => self.regex.is_match(line),
        }
    }

    /// The next line at or after `pos` that matches, as (start, end) with
    /// the end at its newline (or the end of `buf`).
    fn next_line(&self, buf: &[u8], pos: usize) -> Option<(usize, usize)> {
        let mut pos = pos;
        while pos < buf.len() {
            let (start, end) = match &self.inner {
                Some(inner) => inner.find(&buf[pos..]).map(|at| pos + at).map(|at| (at, at + inner.needle().len()))?,
                None => self.regex.find_at(buf, pos).map(|m| (m.start(), m.end()))?,
            };
            let ls = memchr::memrchr(b'\n', &buf[pos..start]).map_or(pos, |p| pos + p + 1);
            let le = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |p| start + p);
            if start == buf.len() && ls == buf.len() {
                return None; // an empty match after the final newline is not a line
            }
            let verified = match &self.inner {
                Some(_) => self.line_matches(&buf[ls..le]),
                None => end <= le || self.regex.is_match(&buf[ls..le]),
            };
            if verified {
                return Some((ls, le));
            }
            pos = le + 1;
        }
        None
    }
}

/// Searches a buffer of whole lines.
pub fn search(matcher: &Matcher, buf: &[u8], max: usize) -> Hits {
    let mut hits = Hits::default();
    let mut pos = 0usize;
    let mut counted_to = 0usize;
    let mut line_no = 0u64;
    while let Some((ls, le)) = matcher.next_line(buf, pos) {
        hits.matches += 1;
        if hits.lines.len() < max {
            line_no += bytecount::count(&buf[counted_to..ls], b'\n') as u64;
            counted_to = ls;
            hits.lines.push(Line { line: line_no, text: String::from_utf8_lossy(&buf[ls..le]).into_owned() });
        }
        pos = le + 1;
    }
    if hits.lines.len() < max {
        hits.newlines = bytecount::count(buf, b'\n') as u64;
    }
    hits
}

fn grep_file(op: &GrepOp, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<Hits, FileError>, EngineError> {
    let max = op.max_matches_per_file;
    if let Some(reading) = input.reading(task, Decode::Bytes, Framing::LINES, true) {
        let each = |hits: Hits, block: &[u8], _| hits.then(search(&op.matcher, block, max), max);
        if let Some(split) = fold_groups(&reading, ctl, Hits::default, each, |a, b| a.then(b, max)) {
            return split;
        }
        let mut hits = Hits::default();
        let done = for_each_block(reading, ctl, |block, _| {
            hits = each(std::mem::take(&mut hits), block, false);
            Ok(Flow::More)
        })?;
        return Ok(done.map(|()| hits));
    }
    if let Some(all) = input.whole() {
        ctl.add_bytes(all.len() as u64);
        return Ok(Ok(search(&op.matcher, all, max)));
    }
    let blob = &input.blob;
    let n = chunk_count(task.size, op.chunk);
    if n == 1 {
        return Ok(with_buffer(|buf| match read_to_end_from(blob, 0, buf, task.size as usize + 1) {
            Ok(_) => {
                ctl.add_bytes(buf.len() as u64);
                Ok(search(&op.matcher, buf, max))
            }
            Err(e) => Err(FileError::io(&task.path, &e)),
        }));
    }
    if let Some(hits) = blob.file().map(|file| grep_mapped(op, file, n, ctl)).transpose()?.flatten() {
        return Ok(Ok(hits));
    }
    let parity = vec![false; n + 1];
    (0..n)
        .into_par_iter()
        .map(|i| -> Result<Result<Hits, FileError>, EngineError> {
            ctl.check()?;
            Ok(with_buffer(|buf| match read_aligned(blob, i, n, op.chunk, None, &parity, buf) {
                Ok(a) => {
                    ctl.add_bytes((a.end - a.start) as u64);
                    Ok(search(&op.matcher, &buf[a.start..a.end], max))
                }
                Err(e) => Err(FileError::io(&task.path, &e)),
            }))
        })
        .try_reduce(
            || Ok(Hits::default()),
            |a, b| Ok(match (a, b) {
                (Ok(a), Ok(b)) => Ok(a.then(b, max)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }),
        )
}

/// Searches a file of `n` chunks through a memory map, the line-aligned
/// chunks in parallel: the regex reads the page cache itself instead of a
/// copy of it (the copy was half the time of a literal search). `None` when
/// the file cannot be mapped (the caller then reads it).
fn grep_mapped(op: &GrepOp, file: &std::fs::File, n: usize, ctl: &Control) -> Result<Option<Hits>, EngineError> {
    // SAFETY: the map is read-only and dropped before returning; a file
    // truncated underneath would fault, the same trade-off as ripgrep's maps.
    let Ok(map) = (unsafe { memmap2::Mmap::map(file) }) else { return Ok(None) };
    let _ = map.advise(memmap2::Advice::Sequential);
    let bounds: Vec<usize> = (0..=n).map(|k| line_boundary(&map, k, n, op.chunk)).collect();
    let max = op.max_matches_per_file;
    (0..n)
        .into_par_iter()
        .map(|i| {
            ctl.check()?;
            let lines = &map[bounds[i]..bounds[i + 1]];
            ctl.add_bytes(lines.len() as u64);
            Ok(search(&op.matcher, lines, max))
        })
        .try_reduce(Hits::default, |a, b| Ok(a.then(b, max)))
        .map(Some)
}

/// Where chunk `k` of `n` starts: just after the first newline at or after
/// its raw start (the data's ends for the first and past the last).
fn line_boundary(data: &[u8], k: usize, n: usize, chunk: u64) -> usize {
    if k == 0 {
        return 0;
    }
    if k == n {
        return data.len();
    }
    let raw = (raw_start(k, chunk) as usize).min(data.len());
    memchr::memchr(b'\n', &data[raw..]).map_or(data.len(), |p| raw + p + 1)
}

impl Operation for GrepOp {
    type Body = GrepBody;
    const NAME: &'static str = "grep";

    fn empty(&self) -> GrepBody {
        GrepBody {
            pattern: self.pattern.clone(),
            max_matches_per_file: self.max_matches_per_file,
            matches: 0,
            files_with_matches: 0,
            files: Vec::new(),
        }
    }

    fn process_file(&self, task: &FileTask, input: &Input, ctl: &Control, acc: &mut GrepBody) -> Result<Result<(), FileError>, EngineError> {
        Ok(grep_file(self, task, input, ctl)?.map(|h| {
            if h.matches > 0 {
                acc.matches += h.matches;
                acc.files_with_matches += 1;
                let mut lines = h.lines;
                lines.iter_mut().for_each(|l| l.line += 1); // 1-based in the result
                acc.files.push(GrepFile { path: task.path.clone(), matches: h.matches, lines: KeptLines::new(&lines) });
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(re: &Regex, buf: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let text = buf.strip_suffix(b"\n").unwrap_or(buf);
        if buf.is_empty() {
            return out;
        }
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if re.is_match(line) {
                out.push((i as u64, line.to_vec()));
            }
        }
        out
    }

    #[test]
    fn finds_lines_and_numbers() {
        let op = GrepOp::new("fo+", false, 10).unwrap();
        let h = search(&op.matcher, b"a\nfoo bar\nbaz\nxfoo\n", 10);
        assert_eq!(h.matches, 2);
        assert_eq!(h.lines[0], Line { line: 1, text: "foo bar".into() });
        assert_eq!(h.lines[1].line, 3);
        let ws = GrepOp::new(r"a\s+b", false, 10).unwrap();
        assert_eq!(search(&ws.matcher, b"a\nb\na b\n", 10).matches, 1);
        let anchored = GrepOp::new("^b", false, 10).unwrap();
        assert_eq!(search(&anchored.matcher, b"ab\nba\nbb", 10).matches, 2);
    }

    #[test]
    fn mapped_chunks_equal_one_search_of_the_whole_file() {
        let mut data = String::new();
        for i in 0..2000 {
            data.push_str(&format!("row {i} day 2024-0{}-3{} {}\n", 1 + i % 9, i % 3, "x".repeat(i % 23)));
        }
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, data.as_bytes()).unwrap();
        for (pattern, max) in [("[0-9]{4}-[0-9]{2}-3[01]", 7), ("x{20}$", usize::MAX), ("^row 1", 3)] {
            let mut op = GrepOp::new(pattern, false, max).unwrap();
            op.chunk = 333;
            let n = chunk_count(data.len() as u64, op.chunk);
            let mapped = grep_mapped(&op, &file, n, &Control::default()).unwrap().unwrap();
            let whole = search(&op.matcher, data.as_bytes(), max);
            assert_eq!((mapped.matches, &mapped.lines), (whole.matches, &whole.lines), "{pattern}");
        }
    }

    fn refusal(options: &str) -> String {
        GrepOp::from_options(options).unwrap_err().to_string()
    }

    #[test]
    fn bad_pattern_is_named() {
        assert!(GrepOp::new("(", false, 1).unwrap_err().to_string().starts_with("grep.pattern: regex parse error"));
    }

    #[test]
    fn unsupported_syntax_is_refused_with_the_regex_message() {
        for (pattern, says) in [
            ("foo(?=bar)", "look-around"),
            ("(?<!x)y", "look-around"),
            (r"(a)\1", "backreferences are not supported"),
        ] {
            let e = refusal(&format!(r#"{{"pattern": {pattern:?}}}"#));
            assert!(e.starts_with("grep.pattern: ") && e.contains(says), "{pattern}: {e}");
        }
    }

    #[test]
    fn rust_only_syntax_is_accepted() {
        let op = GrepOp::from_options(r#"{"pattern": "\\p{Greek}+(?<word>\\w)", "ignore_case": true}"#).unwrap();
        assert_eq!(search(&op.matcher, "x\nΑΒΓa\n".as_bytes(), 10).matches, 1);
    }

    #[test]
    fn max_matches_per_file_has_one_bound() {
        let at = |n: u64| format!(r#"{{"pattern": "x", "max_matches_per_file": {n}}}"#);
        assert_eq!(GrepOp::from_options(&at(MAX_MATCHES_PER_FILE)).unwrap().max_matches_per_file as u64, MAX_MATCHES_PER_FILE);
        let e = refusal(&at(MAX_MATCHES_PER_FILE + 1));
        assert!(e.starts_with("grep.max_matches_per_file: ") && e.contains(&format!("0..={MAX_MATCHES_PER_FILE}")), "{e}");
    }

    proptest! {
        #[test]
        fn chunked_search_equals_per_line(lines in prop::collection::vec("[ab \n]{0,12}", 0..40), pat in prop_oneof![Just("ab"), Just("^a"), Just("b$"), Just(r"a\s*b"), Just("a|b b"), Just(""), Just("[ab]a b"), Just(r"^b\s*ab"), Just(r"ab\s*$")], cut_a in 0usize..400, cut_b in 0usize..400, max in prop_oneof![0usize..4, Just(usize::MAX)]) {
            let buf = lines.concat().into_bytes();
            let matcher = GrepOp::new(pat, false, usize::MAX).unwrap().matcher;
            let want = naive(&matcher.regex, &buf);
            // split at two arbitrary newline positions
            let mut cuts: Vec<usize> = [cut_a, cut_b].iter().filter_map(|&c| {
                let c = c.min(buf.len());
                memchr::memchr(b'\n', &buf[c..]).map(|p| c + p + 1)
            }).collect();
            cuts.sort();
            cuts.dedup();
            let mut joined = Hits::default();
            let mut last = 0;
            for c in cuts.into_iter().chain(std::iter::once(buf.len())) {
                joined = joined.then(search(&matcher, &buf[last..c], max), max);
                last = c;
            }
            let got: Vec<(u64, Vec<u8>)> = joined.lines.iter().map(|l| (l.line, l.text.clone().into_bytes())).collect();
            prop_assert_eq!(joined.matches, want.len() as u64);
            prop_assert_eq!(got, want.into_iter().take(max).collect::<Vec<_>>());
        }
    }
}
