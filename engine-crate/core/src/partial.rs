//! The partial envelope shared by every op, and the merge / finalize plumbing.
//!
//! A partial is `{operation, files, bytes, errors, body}`; `body` is the op's
//! own mergeable state. Merging adds the counters, unions the error records
//! (kept sorted, so the result does not depend on merge order) and merges the
//! bodies. Finalizing turns a partial into the result document.

use std::io::Write;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{sort_errors, EngineError, FileError};

/// An op's mergeable state.
pub trait Body: Serialize + DeserializeOwned + Send {
    /// Merges `other` into `self`. Must be associative and commutative as
    /// observed through [`Body::result`].
    fn merge(&mut self, other: Self) -> Result<(), String>;
    /// The op's `result` object.
    fn result(&self) -> Value;

    /// Writes [`Body::result`] as JSON text. Ops with long file lists override
    /// this to serialise straight from their state; the text must equal the
    /// default's (object keys in sorted order).
    fn write_result(&self, out: &mut dyn Write) -> Result<(), String> {
        serde_json::to_writer(out, &self.result()).map_err(|e| e.to_string())
    }

    /// Drops what grows with the number of files (an op's per-file list),
    /// keeping what an aggregate of many partials needs; see [`Fold::add_split`].
    fn strip(&mut self) {}
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Partial<B> {
    pub operation: String,
    pub files: u64,
    pub bytes: u64,
    pub errors: Vec<FileError>,
    pub body: B,
}

impl<B: Body> Partial<B> {
    pub fn new(operation: &str, body: B) -> Self {
        Partial { operation: operation.to_string(), files: 0, bytes: 0, errors: Vec::new(), body }
    }

    pub fn merge(mut self, other: Self) -> Result<Self, EngineError> {
        if self.operation != other.operation {
            return Err(EngineError::Invalid(format!(
                "cannot merge a '{}' partial with a '{}' partial",
                self.operation, other.operation
            )));
        }
        self.files += other.files;
        self.bytes += other.bytes;
        self.errors.extend(other.errors);
        sort_errors(&mut self.errors);
        self.body.merge(other.body).map_err(EngineError::Invalid)?;
        Ok(self)
    }

    pub fn finalize(&self) -> Value {
        let mut errors = self.errors.clone();
        sort_errors(&mut errors);
        json!({
            "operation": self.operation,
            "files": self.files,
            "bytes": self.bytes,
            "errors": errors,
            "result": self.body.result(),
        })
    }

    /// [`Partial::finalize`] as JSON text, without building the document as
    /// a `Value` first.
    pub fn finalize_text(&self) -> Result<String, EngineError> {
        let mut out = Vec::with_capacity(256);
        self.write_document(&mut out).map_err(|e| EngineError::Internal(format!("serialising result: {e}")))?;
        String::from_utf8(out).map_err(|e| EngineError::Internal(format!("serialising result: {e}")))
    }

    /// Writes [`Partial::finalize`]'s document to `out` as it goes: a result listing
    /// many files reaches its file without a copy of the whole text in memory.
    pub fn write_document(&self, out: &mut dyn Write) -> Result<(), String> {
        let mut errors = self.errors.clone();
        sort_errors(&mut errors);
        // Through a `Value`, so that each record's keys come out sorted.
        let errors = serde_json::to_value(&errors).map_err(|e| e.to_string())?;
        write!(out, "{{\"bytes\":{},\"errors\":", self.bytes).map_err(|e| e.to_string())?;
        serde_json::to_writer(&mut *out, &errors).map_err(|e| e.to_string())?;
        write!(out, ",\"files\":{},\"operation\":", self.files).map_err(|e| e.to_string())?;
        serde_json::to_writer(&mut *out, &self.operation).map_err(|e| e.to_string())?;
        out.write_all(b",\"result\":").map_err(|e| e.to_string())?;
        self.body.write_result(out)?;
        out.write_all(b"}").map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> Result<String, EngineError> {
        serde_json::to_string(self).map_err(|e| EngineError::Internal(format!("serialising partial: {e}")))
    }

    pub fn from_json(op: &str, text: &str) -> Result<Self, EngineError> {
        let p: Self = serde_json::from_str(text)
            .map_err(|e| EngineError::Invalid(format!("invalid {op} partial: {e}")))?;
        if p.operation != op {
            return Err(EngineError::Invalid(format!("partial is for '{}', not '{op}'", p.operation)));
        }
        Ok(p)
    }
}

/// `finalize(op, partial)` on a JSON text.
pub fn finalize_json<B: Body>(op: &str, p: &str) -> Result<String, EngineError> {
    Partial::<B>::from_json(op, p)?.finalize_text()
}

/// Partials of one op folded into one held in memory, each parsed once. Merging many
/// partials a pair of JSON texts at a time would write and parse the growing aggregate
/// again at every step: for `stats`, a few hundred KB of sketches per batch.
pub trait Fold: Send + Sync {
    /// Folds in a partial (JSON text), whole.
    fn add(&mut self, partial: &str) -> Result<(), EngineError>;
    /// Folds in a partial without its errors and per-file list, and returns its result
    /// document, which has them: a merge of many partials keeps only the aggregate in
    /// memory while the lists go to disk.
    fn add_split(&mut self, partial: &str) -> Result<String, EngineError>;
    /// The aggregate as partial JSON text; `None` before the first partial.
    fn partial(&self) -> Result<Option<String>, EngineError>;
    /// The aggregate's result document; `None` before the first partial.
    fn finalize(&self) -> Result<Option<String>, EngineError>;
}

/// [`Fold`] for the op whose body is `B`. A partial that fails to merge leaves the
/// aggregate unusable (its counters may be half updated): every later call fails too.
pub struct Folded<B> {
    op: String,
    aggregate: Result<Option<Partial<B>>, EngineError>,
}

impl<B: Body + Sync> Folded<B> {
    pub fn new(op: &str) -> Self {
        Folded { op: op.to_string(), aggregate: Ok(None) }
    }

    fn fold(&mut self, partial: Partial<B>) -> Result<(), EngineError> {
        self.aggregate = match std::mem::replace(&mut self.aggregate, Ok(None)) {
            Ok(None) => Ok(Some(partial)),
            Ok(Some(aggregate)) => aggregate.merge(partial).map(Some),
            Err(e) => Err(e), // stays unusable
        };
        self.current().map(|_| ())
    }

    fn current(&self) -> Result<Option<&Partial<B>>, EngineError> {
        self.aggregate.as_ref().map(Option::as_ref).map_err(Clone::clone)
    }
}

impl<B: Body + Sync> Fold for Folded<B> {
    fn add(&mut self, partial: &str) -> Result<(), EngineError> {
        self.current()?;
        let partial = Partial::<B>::from_json(&self.op, partial)?;
        self.fold(partial)
    }

    fn add_split(&mut self, partial: &str) -> Result<String, EngineError> {
        self.current()?;
        let mut partial = Partial::<B>::from_json(&self.op, partial)?;
        let document = partial.finalize_text()?;
        partial.errors.clear();
        partial.body.strip();
        self.fold(partial)?;
        Ok(document)
    }

    fn partial(&self) -> Result<Option<String>, EngineError> {
        self.current()?.map(Partial::to_json).transpose()
    }

    fn finalize(&self) -> Result<Option<String>, EngineError> {
        self.current()?.map(Partial::finalize_text).transpose()
    }
}

/// Merges two lists sorted by `key` into one sorted list.
pub fn merge_sorted<T, K: Ord>(a: Vec<T>, b: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(x) <= key(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.push(if take_a { a.next().unwrap() } else { b.next().unwrap() });
    }
    out
}
