//! Rows whose width differs from the file's first record (its header, when
//! there is one): what the [`Policy`] makes of them, and how they are
//! reported. One such row no longer costs the whole file: it is skipped,
//! padded or cut, and listed with its line in the result's `badRows`
//! (at most `max_bad_rows` per file, all of them counted), away from the
//! file errors that count toward a job's error budget. `fail` keeps the
//! stricter rule: the file is one error record and contributes nothing.

use serde::{Deserialize, Serialize};

use super::super::options::Options;
use crate::error::{invalid, sort_errors, EngineError, FileError};

/// What a row of the wrong width becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Left out.
    Skip,
    /// Short rows padded with nulls, long rows cut.
    Pad,
    /// Long rows cut, short rows left out.
    Truncate,
    /// The file is an error record.
    Fail,
}

/// What becomes of one row of the wrong width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    Skip,
    Pad,
    Cut,
    Fail,
}

impl Fix {
    /// Whether the row is still counted (its missing fields null, its extra ones dropped).
    pub fn keeps(self) -> bool {
        matches!(self, Fix::Pad | Fix::Cut)
    }

    pub fn reason(self, expected: usize, found: usize) -> String {
        let what = format!("expected {expected} fields, found {found}");
        match self {
            Fix::Skip => what,
            Fix::Pad => format!("{what}; padded with nulls"),
            Fix::Cut => format!("{what}; truncated"),
            Fix::Fail => format!("ragged row: {what}"),
        }
    }
}

impl Policy {
    pub fn fix(self, expected: usize, found: usize) -> Fix {
        match self {
            Policy::Skip => Fix::Skip,
            Policy::Fail => Fix::Fail,
            Policy::Pad if found < expected => Fix::Pad,
            Policy::Truncate if found < expected => Fix::Skip,
            Policy::Pad | Policy::Truncate => Fix::Cut,
        }
    }
}

/// The most bad rows `max_bad_rows` may ask to list per file.
pub const MAX_BAD_ROWS: u64 = 100_000;

/// The `bad_rows` policy and the `max_bad_rows` cap on rows listed per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRowOptions {
    pub policy: Policy,
    pub max: usize,
}

impl BadRowOptions {
    pub fn from_options(o: &mut Options) -> Result<Self, EngineError> {
        let policy = match o.string("bad_rows", Some("skip"))?.as_str() {
            "skip" => Policy::Skip,
            "pad" => Policy::Pad,
            "truncate" => Policy::Truncate,
            "fail" => Policy::Fail,
            other => return invalid(format!("{}.bad_rows: unknown '{other}' (expected skip, pad, truncate, fail)", o.op())),
        };
        let max = o.uint("max_bad_rows", 100, 0, MAX_BAD_ROWS)? as usize;
        Ok(BadRowOptions { policy, max })
    }
}

/// Bad rows of one range of a file: how many, and the first `max` of them
/// with their lines counted from the range's start (1-based).
#[derive(Debug, Default)]
pub struct Found {
    pub total: u64,
    pub rows: Vec<(u64, String)>,
}

impl Found {
    /// Counts a row; lists it while under `max` (its line and reason are
    /// only worked out then).
    pub fn note(&mut self, max: usize, row: impl FnOnce() -> (u64, String)) {
        self.total += 1;
        if self.rows.len() < max {
            self.rows.push(row());
        }
    }

    /// Joins with the range that directly follows, `shift` newlines later.
    pub fn then(mut self, next: Found, shift: u64, max: usize) -> Found {
        let room = max.saturating_sub(self.rows.len());
        self.rows.extend(next.rows.into_iter().take(room).map(|(line, reason)| (line + shift, reason)));
        self.total += next.total;
        self
    }
}

/// Lines of a buffer, counted lazily up to the positions asked for, so a
/// buffer without bad rows is counted once, at the end.
#[derive(Debug, Default)]
pub struct Lines {
    at: usize,
    newlines: u64,
}

impl Lines {
    /// The 1-based line of `pos` (positions asked in increasing order).
    pub fn line_of(&mut self, buf: &[u8], pos: usize) -> u64 {
        self.newlines += bytecount::count(&buf[self.at..pos], b'\n') as u64;
        self.at = pos;
        self.newlines + 1
    }

    /// All the newlines of `buf`.
    pub fn total(mut self, buf: &[u8]) -> u64 {
        self.line_of(buf, buf.len()) - 1
    }
}

/// Rows files could not use as they were (CSV rows of the wrong width,
/// NDJSON lines that are not JSON objects): how many, and each listed
/// with its path, line and reason, sorted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BadRows {
    pub total: u64,
    pub rows: Vec<FileError>,
}

impl BadRows {
    /// Adds one file's bad rows: `total` of them, `rows` listed.
    pub fn add_file(&mut self, path: &str, total: u64, rows: Vec<(u64, String)>) {
        self.total += total;
        self.rows.extend(rows.into_iter().map(|(line, reason)| FileError::new(path, Some(line), reason)));
        sort_errors(&mut self.rows);
    }

    pub fn merge(&mut self, other: BadRows) {
        self.total += other.total;
        self.rows.extend(other.rows);
        sort_errors(&mut self.rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_by_policy() {
        let fixes = |p: Policy| (p.fix(3, 2), p.fix(3, 4));
        assert_eq!(fixes(Policy::Skip), (Fix::Skip, Fix::Skip));
        assert_eq!(fixes(Policy::Pad), (Fix::Pad, Fix::Cut));
        assert_eq!(fixes(Policy::Truncate), (Fix::Skip, Fix::Cut));
        assert_eq!(fixes(Policy::Fail), (Fix::Fail, Fix::Fail));
        assert_eq!(Fix::Skip.reason(3, 4), "expected 3 fields, found 4");
    }

    #[test]
    fn joined_ranges_shift_lines_and_keep_the_cap() {
        let range = |lines: &[u64]| {
            let mut f = Found::default();
            for &l in lines {
                f.note(3, || (l, "r".into()));
            }
            f
        };
        let joined = range(&[2, 5]).then(range(&[1, 4]), 10, 3);
        assert_eq!(joined.total, 4);
        assert_eq!(joined.rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 5, 11]);
    }

    #[test]
    fn lines_are_counted_up_to_each_position() {
        let buf = b"a\nb\n\nc\n";
        let mut lines = Lines::default();
        assert_eq!(lines.line_of(buf, 0), 1);
        assert_eq!(lines.line_of(buf, 5), 4);
        assert_eq!(lines.total(buf), 4);
    }
}
