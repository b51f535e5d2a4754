//! Pravah core: parallel, chunked, mergeable file operations.
//!
//! The crate has no Python dependency; `pravah-engine` wraps it for Python.
//! Layout, one concern per module:
//!
//! * [`scan`]: walking a directory tree into a sorted file list.
//! * [`split`]: planning byte ranges of big files and moving CSV chunk
//!   boundaries to record boundaries (quote parity).
//! * [`dirs`]: files reached by name from their directory, kept open.
//! * [`io`]: opening inputs (files under the source root, or objects);
//!   positioned reads into reusable buffers.
//! * [`blob`]: what an op reads, a local file or an object, behind one
//!   interface of positioned and sequential reads.
//! * [`remote`]: objects of an S3-compatible store, listed and read by
//!   ranged GETs with read-ahead, never copied to disk.
//! * [`codec`]: compressed inputs, recognised by magic bytes and streamed
//!   to the ops in blocks of whole records.
//! * [`format`]: which reader a file gets (CSV, TSV, NDJSON, Parquet, text).
//! * [`control`]: progress counters and cancellation.
//! * [`partial`]: the serialisable partial envelope shared by every op.
//! * [`ops`]: the operations (`count`, `checksum`, `grep`, `stats`, `convert`).
//! * [`job`]: validating a request and running it on a dedicated thread pool.
//! * [`sys`]: CPUs usable by this process.
//! * [`trim`]: leaving out a content's first and last lines as it streams.

pub mod blob;
pub mod codec;
pub mod control;
pub mod dirs;
pub mod error;
pub mod format;
pub mod frames;
pub mod io;
pub mod job;
pub mod ops;
pub mod partial;
pub mod remote;
pub mod scan;
pub mod split;
pub mod sys;
pub mod trim;

pub use control::{Control, ProgressSnapshot};
pub use error::{EngineError, FileError};
pub use io::Inputs;
pub use job::{aggregate, check_options, finalize, Finished, Job, Outcome, Request};
pub use partial::Fold;
pub use ops::grep::MAX_MATCHES_PER_FILE;
pub use ops::stats::bad_rows::MAX_BAD_ROWS;
pub use ops::stats::dialect::{MAX_HEADER_ROWS, MAX_TRIMMED_LINES};
pub use remote::{locate, Bucket, S3Config};
pub use scan::{scan, ScanOptions, ScanResult};

/// A file to process: path and size in bytes as seen when it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTask {
    pub path: String,
    pub size: u64,
}

impl FileTask {
    pub fn new(path: impl Into<String>, size: u64) -> Self {
        FileTask { path: path.into(), size }
    }
}
