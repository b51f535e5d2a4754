//! Which reader a file gets: the one the job forces (`format`), or one
//! chosen per file, from its name (compression suffixes aside) and then
//! from its first bytes.
//!
//! Names: `.csv`; `.tsv`, `.tab`; `.ndjson`, `.jsonl`; `.parquet`, `.pq`,
//! each optionally followed by `.gz`, `.zst`, `.bz2` or `.xz`. Content:
//! `PAR1` is Parquet, a first `{` (after a BOM and blanks) is NDJSON.
//! Anything else is read as the op's default: CSV for `stats` and `convert`
//! (with the job's delimiter), text for `count`.

use serde::{Deserialize, Serialize};

use crate::codec::Input;
use crate::error::{EngineError, FileError};
use crate::ops::options::Options;
use crate::FileTask;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Ndjson,
    Parquet,
    Text,
}

/// The values of the `format` option.
pub const FORMATS: &[&str] = &["auto", "csv", "tsv", "ndjson", "parquet", "text"];
/// Suffixes of compressed files, looked past when reading a name.
const COMPRESSED_SUFFIXES: &[&str] = &["gz", "gzip", "zst", "zstd", "bz2", "xz"];
/// Bytes of content looked at to recognise a format.
const HEAD: usize = 4096;

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
            Format::Text => "text",
        }
    }

    /// Whether a file is Parquet, by name or magic bytes: cheap enough for
    /// ops that read every file as bytes except Parquet's.
    pub fn is_parquet(path: &str, input: &Input) -> bool {
        match Format::of_path(path) {
            Some(f) => f == Format::Parquet,
            None => input.codec.is_none() && input.magic().starts_with(b"PAR1"),
        }
    }

    /// The format a file's name announces, if any.
    pub fn of_path(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        let mut parts = name.rsplit('.');
        let mut ext = parts.next()?;
        if COMPRESSED_SUFFIXES.contains(&ext) {
            ext = parts.next()?;
        }
        match ext {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format the first bytes of a file's content show, if any.
    pub fn of_content(head: &[u8], stored: bool) -> Option<Format> {
        if stored && head.starts_with(b"PAR1") {
            return Some(Format::Parquet);
        }
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// The job's `format` option: forced, or chosen per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Forced(Format),
}

impl Choice {
    /// Reads the `format` option; `accepted` are the formats the op can read.
    pub fn from_options(o: &mut Options, op: &str, accepted: &[Format]) -> Result<Choice, EngineError> {
        let name = o.string("format", Some("auto"))?;
        if name == "auto" {
            return Ok(Choice::Auto);
        }
        match accepted.iter().find(|f| f.name() == name) {
            Some(&f) => Ok(Choice::Forced(f)),
            None => {
                let known: Vec<&str> = std::iter::once("auto").chain(accepted.iter().map(|f| f.name())).collect();
                Err(EngineError::Invalid(format!("{op}.format: cannot read '{name}' (expected one of {})", known.join(", "))))
            }
        }
    }

    /// The format one file is read as; `default` when nothing tells.
    pub fn resolve(self, task: &FileTask, input: &Input, default: Format) -> Result<Format, FileError> {
        if let Choice::Forced(f) = self {
            return Ok(f);
        }
        if let Some(f) = Format::of_path(&task.path) {
            return Ok(f);
        }
        let head = input.head(HEAD).map_err(|e| FileError::io(&task.path, &e))?;
        Ok(Format::of_content(&head, input.codec.is_none()).unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_announce_formats_past_compression_suffixes() {
        let cases = [
            ("a/b.csv", Some(Format::Csv)),
            ("b.CSV.gz", Some(Format::Csv)),
            ("events.jsonl.zst", Some(Format::Ndjson)),
            ("x.ndjson", Some(Format::Ndjson)),
            ("t.tab.xz", Some(Format::Tsv)),
            ("p.parquet", Some(Format::Parquet)),
            ("notes.txt", None),
            ("archive.gz", None),
            ("dir.csv/file", None),
        ];
        for (path, want) in cases {
            assert_eq!(Format::of_path(path), want, "{path}");
        }
    }

    #[test]
    fn content_shows_parquet_and_ndjson() {
        assert_eq!(Format::of_content(b"PAR1\x15\x04", true), Some(Format::Parquet));
        assert_eq!(Format::of_content(b"PAR1", false), None);
        assert_eq!(Format::of_content(b"\xEF\xBB\xBF \n{\"a\": 1}", true), Some(Format::Ndjson));
        assert_eq!(Format::of_content(b"a,b\n{1},2\n", true), None);
        assert_eq!(Format::of_content(b"", true), None);
    }
}
