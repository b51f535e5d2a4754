//! Progress counters and the cancellation flag shared by a run's workers.
//!
//! Everything is a relaxed atomic: reading progress costs a few loads, and
//! workers publish after every chunk or read buffer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::error::EngineError;

#[derive(Debug, Default)]
pub struct Control {
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicBool,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub errors: u64,
}

impl Control {
    pub fn new(files_total: u64, bytes_total: u64) -> Self {
        let c = Control::default();
        c.files_total.store(files_total, Relaxed);
        c.bytes_total.store(bytes_total, Relaxed);
        c
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            files_total: self.files_total.load(Relaxed),
            files_done: self.files_done.load(Relaxed),
            bytes_total: self.bytes_total.load(Relaxed),
            bytes_done: self.bytes_done.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    #[inline]
    pub fn add_bytes(&self, n: u64) {
        if n > 0 {
            self.bytes_done.fetch_add(n, Relaxed);
        }
    }

    #[inline]
    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn file_error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Relaxed);
    }

    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Relaxed)
    }

    /// `Err(Cancelled)` once cancellation was requested; workers call this
    /// between chunks and read buffers.
    #[inline]
    pub fn check(&self) -> Result<(), EngineError> {
        if self.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }
}
