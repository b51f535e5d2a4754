//! What an op reads: a local file or an object in a store, behind one
//! interface of positioned reads ([`crate::io::read_range_into`]) and
//! sequential ones ([`Blob::stream`]).

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::remote::{Object, Ranges};

/// An open input, cheap to clone (threads reading parts of it share it).
#[derive(Debug, Clone)]
pub enum Blob {
    Local(Arc<File>),
    Remote(Object),
}

impl Blob {
    /// The size now (a local file's, or the object's when it was opened).
    pub fn size(&self) -> io::Result<u64> {
        match self {
            Blob::Local(file) => file.metadata().map(|m| m.len()),
            Blob::Remote(object) => Ok(object.size()),
        }
    }

    /// The local file, for what only a file allows (memory maps).
    pub fn file(&self) -> Option<&File> {
        match self {
            Blob::Local(file) => Some(file),
            Blob::Remote(_) => None,
        }
    }

    /// A sequential reader of `range` (cut at the end of the input): an
    /// object is read ahead in large ranges, a file by `pread`.
    pub fn stream(&self, range: Range<u64>) -> Stream {
        match self {
            Blob::Local(file) => Stream::Local { file: file.clone(), at: range.start, end: range.end },
            Blob::Remote(object) => Stream::Remote(object.stream(range)),
        }
    }
}

impl From<File> for Blob {
    fn from(file: File) -> Blob {
        Blob::Local(Arc::new(file))
    }
}

/// A sequential reader of part of a [`Blob`].
pub enum Stream {
    Local { file: Arc<File>, at: u64, end: u64 },
    Remote(Ranges),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Local { file, at, end } => {
                let want = buf.len().min(end.saturating_sub(*at).try_into().unwrap_or(usize::MAX));
                let n = file.read_at(&mut buf[..want], *at)?;
                *at += n as u64;
                Ok(n)
            }
            Stream::Remote(ranges) => ranges.read(buf),
        }
    }
}
