//! Opening inputs (files under the source root, or objects of a bucket),
//! and positioned reads into reusable buffers.
//!
//! Big files are never loaded whole: every op reads a bounded range (a chunk)
//! or streams through a fixed-size buffer.

use std::cell::RefCell;
use rustix::fs::OFlags;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::blob::Blob;
use crate::dirs::OpenDir;
use crate::error::{EngineError, FileError};
use crate::remote::Bucket;

/// The reason recorded for a file that resolves outside the source root.
pub const OUTSIDE_ROOT: &str = "symbolic link leads outside the source root";

/// Where a run may read. Every input file is opened through [`Inputs::open`],
/// so a file replaced by a symbolic link after the scan is still held to the
/// rules the scan applied: not followed at all when links are not followed,
/// and never to a file outside the source root. With a bucket, every path
/// names one of its objects (`s3://bucket/key`).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The root as the caller named it, and where it resolves.
    root: Option<(PathBuf, PathBuf)>,
    follow_symlinks: bool,
    bucket: Option<Bucket>,
}

impl Inputs {
    /// `root` is the scanned directory (or file); `None` checks no containment.
    pub fn new(root: Option<&str>, follow_symlinks: bool) -> Result<Inputs, EngineError> {
        let root = match root {
            None => None,
            Some(r) => {
                let real = std::fs::canonicalize(r)
                    .map_err(|e| EngineError::Invalid(format!("root: cannot resolve {r}: {e}")))?;
                Some((PathBuf::from(r), real))
            }
        };
        Ok(Inputs { root, follow_symlinks, bucket: None })
    }

    /// Inputs that are the objects of `bucket`.
    pub fn objects(bucket: Bucket) -> Inputs {
        Inputs { bucket: Some(bucket), ..Inputs::default() }
    }

    /// Opens one input for reading; `dirs` holds the directory of the
    /// previous file opened.
    pub fn open(&self, path: &str, dirs: &mut OpenDir) -> Result<Blob, FileError> {
        match &self.bucket {
            Some(bucket) => bucket.open(path).map(Blob::Remote),
            None => self.open_file(path, dirs).map(Blob::from),
        }
    }

    /// Opens one input file. The root itself, named by the caller, may be
    /// a link; below it, links obey `follow_symlinks`.
    fn open_file(&self, path: &str, dirs: &mut OpenDir) -> Result<File, FileError> {
        let is_root = self.root.as_ref().is_some_and(|(given, _)| given.as_path() == Path::new(path));
        let no_follow = !self.follow_symlinks && !is_root;
        // O_NONBLOCK: a FIFO put in a file's place must not hang the open; it
        // changes nothing for the regular files that are then accepted.
        let flags = OFlags::NONBLOCK | if no_follow { OFlags::NOFOLLOW } else { OFlags::empty() };
        let file = dirs.open(Path::new(path), flags).map_err(|e| {
            if no_follow && e.raw_os_error() == Some(libc::ELOOP) {
                FileError::new(path, None, "is a symbolic link, and symbolic links are not followed")
            } else {
                FileError::io(path, &e)
            }
        })?;
        if let Some((_, real_root)) = &self.root {
            let real = opened_path(&file)
                .map_err(|e| FileError::new(path, None, format!("cannot tell where the file resolves: {e}")))?;
            if !real.starts_with(real_root) {
                return Err(FileError::new(path, None, OUTSIDE_ROOT));
            }
        }
        match file.metadata() {
            Ok(m) if m.is_file() => Ok(file),
            Ok(_) => Err(FileError::new(path, None, "not a regular file")),
            Err(e) => Err(FileError::io(path, &e)),
        }
    }
}

/// Where an open file actually is, all links resolved, as the kernel opened
/// it: checking this instead of a path leaves no window for a swap.
pub fn opened_path(file: &File) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Size of the streaming buffer used by sequential ops (checksum).
pub const STREAM_BUF: usize = 1 << 20;

/// Reads up to `len` bytes at `offset`, appending them to `buf`. Returns the
/// number of bytes read (less than `len` only at end of input). An object
/// is read by one GET.
pub fn read_range_into(blob: &Blob, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    match blob {
        Blob::Local(file) => pread_into(file, offset, len, buf),
        Blob::Remote(object) => object.read_into(offset, len, buf),
    }
}

/// Reads the start of an input expected to hold `size` bytes, asking for one
/// byte more so that the end of input is seen: returns whether `buf` now
/// holds the whole input. A file that still has its scanned size takes one
/// `pread`, with no second call to confirm the end.
pub fn read_whole_into(blob: &Blob, size: usize, buf: &mut Vec<u8>) -> io::Result<bool> {
    let want = size.saturating_add(1);
    let Blob::Local(file) = blob else {
        return Ok(read_range_into(blob, 0, want, buf)? < want);
    };
    buf.reserve(want);
    let first = loop {
        match pread_spare(file, buf, want, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if first == size || first == 0 {
        return Ok(true);
    }
    Ok(first + pread_into(file, first as u64, want - first, buf)? < want)
}

/// [`read_range_into`] for a file: reads go straight into the vector's
/// spare capacity, so a reused buffer is never zero-filled.
fn pread_into(file: &File, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    buf.reserve(len);
    let mut done = 0;
    while done < len {
        match pread_spare(file, buf, len - done, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// One `pread` of at most `max` bytes into the spare capacity of `buf`
/// (which must hold at least `max` spare bytes); extends `buf` by the count.
fn pread_spare(file: &File, buf: &mut Vec<u8>, max: usize, offset: u64) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len()).min(isize::MAX as usize);
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the destination is `max` bytes of the vector's own spare
    // capacity; the kernel writes at most `max` bytes there, and exactly the
    // returned count is then marked initialised.
    let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), max, offset) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: `n <= max` bytes past the old length were written by `pread`.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Reads from `offset` to end of input, appending to `buf`.
pub fn read_to_end_from(blob: &Blob, offset: u64, buf: &mut Vec<u8>, hint: usize) -> io::Result<usize> {
    let mut total = 0;
    let mut want = hint.max(64 * 1024);
    loop {
        let n = read_range_into(blob, offset + total as u64, want, buf)?;
        total += n;
        if n < want {
            return Ok(total);
        }
        want = want.max(1 << 20);
    }
}

/// Reads up to `want` bytes from a sequential reader, appending to `buf`;
/// fewer only at the end of the stream.
pub fn read_piece(stream: &mut impl Read, want: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    stream.take(want as u64).read_to_end(buf)
}

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a cleared buffer borrowed from a per-thread pool, so chunk
/// reads reuse their allocations. Nested use (rayon work stealing inside `f`)
/// simply takes another buffer.
pub fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    buf.clear();
    let r = f(&mut buf);
    // Keep at most a few buffers per thread and drop oversized ones.
    if buf.capacity() <= 64 << 20 {
        BUFFERS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < 4 {
                b.push(buf);
            }
        });
    }
    r
}

/// Counts `\n` bytes in `[0, upto)` of an input; used only to turn the byte
/// offset of an error into a line number.
pub fn line_of_offset(blob: &Blob, upto: u64) -> Option<u64> {
    let mut stream = blob.stream(0..upto);
    let mut lines = 1u64;
    let mut buf = vec![0u8; STREAM_BUF];
    loop {
        match stream.read(&mut buf).ok()? {
            0 => return Some(lines),
            n => lines += bytecount::count(&buf[..n], b'\n') as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A source root with `a.txt`, `dir/b.txt`, and a secret outside the root.
    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("a.txt"), "inside\n").unwrap();
        std::fs::write(root.join("dir/b.txt"), "inside too\n").unwrap();
        let secret = d.path().join("secret.txt");
        std::fs::write(&secret, "TOPSECRET-MARKER\n").unwrap();
        (d, root, secret)
    }

    fn read(f: Blob) -> String {
        let mut buf = Vec::new();
        read_to_end_from(&f, 0, &mut buf, 16).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn open(root: &Path, follow: bool, path: &Path) -> Result<Blob, FileError> {
        Inputs::new(Some(root.to_str().unwrap()), follow).unwrap().open(path.to_str().unwrap(), &mut OpenDir::default())
    }

    #[test]
    fn files_inside_the_root_open() {
        let (_d, root, _) = tree();
        for follow in [false, true] {
            assert_eq!(read(open(&root, follow, &root.join("dir/b.txt")).unwrap()), "inside too\n");
        }
    }

    #[test]
    fn a_file_swapped_for_a_link_out_of_the_root_is_refused() {
        let (_d, root, secret) = tree();
        let a = root.join("a.txt");
        std::fs::remove_file(&a).unwrap();
        symlink(&secret, &a).unwrap();
        let not_followed = open(&root, false, &a).unwrap_err();
        assert_eq!(not_followed.reason, "is a symbolic link, and symbolic links are not followed");
        let followed = open(&root, true, &a).unwrap_err();
        assert_eq!((followed.path.as_str(), followed.reason.as_str()), (a.to_str().unwrap(), OUTSIDE_ROOT));
    }

    #[test]
    fn a_directory_swapped_for_a_link_out_of_the_root_is_refused() {
        let (d, root, _) = tree();
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("b.txt"), "secret\n").unwrap();
        std::fs::remove_dir_all(root.join("dir")).unwrap();
        symlink(&elsewhere, root.join("dir")).unwrap();
        for follow in [false, true] {
            assert_eq!(open(&root, follow, &root.join("dir/b.txt")).unwrap_err().reason, OUTSIDE_ROOT);
        }
    }

    #[test]
    fn links_inside_the_root_are_followed_only_when_asked() {
        let (_d, root, _) = tree();
        let link = root.join("link.txt");
        symlink(root.join("dir/b.txt"), &link).unwrap();
        assert_eq!(read(open(&root, true, &link).unwrap()), "inside too\n");
        assert!(open(&root, false, &link).is_err());
    }

    #[test]
    fn the_named_root_may_itself_be_a_link() {
        let (d, root, _) = tree();
        let named = d.path().join("named");
        symlink(&root, &named).unwrap();
        assert_eq!(read(open(&named, false, &named.join("a.txt")).unwrap()), "inside\n");
        let file_root = d.path().join("file-link");
        symlink(root.join("a.txt"), &file_root).unwrap();
        assert_eq!(read(open(&file_root, false, &file_root).unwrap()), "inside\n");
    }

    #[test]
    fn a_fifo_in_a_files_place_is_refused_without_blocking() {
        let (_d, root, _) = tree();
        let a = root.join("a.txt");
        std::fs::remove_file(&a).unwrap();
        let c = std::ffi::CString::new(a.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(open(&root, false, &a).unwrap_err().reason, "not a regular file");
    }

    #[test]
    fn a_run_records_the_swapped_file_and_goes_on() {
        let (_d, root, secret) = tree();
        let a = root.join("a.txt");
        let b = root.join("dir/b.txt");
        let files = [crate::FileTask::new(a.to_str().unwrap(), 7), crate::FileTask::new(b.to_str().unwrap(), 11)];
        std::fs::remove_file(&a).unwrap();
        symlink(&secret, &a).unwrap();
        let inputs = Inputs::new(Some(root.to_str().unwrap()), true).unwrap();
        let op = crate::ops::grep::GrepOp::from_options(r#"{"pattern": "MARKER|inside"}"#).unwrap();
        let p = crate::job::run_partial(&op, &files, &inputs, &crate::Control::default()).unwrap();
        assert_eq!(p.errors, vec![FileError::new(a.to_str().unwrap(), None, OUTSIDE_ROOT)]);
        assert_eq!(p.body.matches, 1);
        let text = serde_json::to_string(&p.finalize()).unwrap();
        assert!(text.contains("inside too") && !text.contains("TOPSECRET"), "{text}");
    }
}
