//! Error types: per-file error records (data) and engine errors (control flow).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A problem with one input file. Never fatal to a run: it is recorded in the
/// partial and the other files go on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileError {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub reason: String,
}

impl FileError {
    pub fn new(path: &str, line: Option<u64>, reason: impl Into<String>) -> Self {
        FileError { path: path.to_string(), line, reason: reason.into() }
    }

    pub fn io(path: &str, err: &std::io::Error) -> Self {
        FileError::new(path, None, format!("read error: {err}"))
    }
}

/// Sorts error records into their canonical order (path, line, reason).
pub fn sort_errors(errors: &mut [FileError]) {
    errors.sort_by(|a, b| {
        a.path
            .as_bytes()
            .cmp(b.path.as_bytes())
            .then(a.line.cmp(&b.line))
            .then(a.reason.cmp(&b.reason))
    });
}

/// Errors that stop a request or a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The request is invalid (bad op, option or argument). The message names the option.
    Invalid(String),
    /// The run was cancelled.
    Cancelled,
    /// A bug or an unexpected system failure.
    Internal(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Invalid(m) => write!(f, "{m}"),
            EngineError::Cancelled => write!(f, "cancelled"),
            EngineError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T, EngineError> {
    Err(EngineError::Invalid(msg.into()))
}
