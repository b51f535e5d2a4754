//! Positioned reads into reusable buffers.
//!
//! Big files are never loaded whole: every op reads a bounded range (a chunk)
//! or streams through a fixed-size buffer.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Size of the streaming buffer used by sequential ops (checksum).
pub const STREAM_BUF: usize = 1 << 20;

/// Reads up to `len` bytes at `offset`, appending them to `buf`. Returns the
/// number of bytes read (less than `len` only at end of file).
///
/// Reads go straight into the vector's spare capacity, so a reused buffer is
/// never zero-filled.
pub fn read_range_into(file: &File, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
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

/// Reads from `offset` to end of file, appending to `buf`.
pub fn read_to_end_from(file: &File, offset: u64, buf: &mut Vec<u8>, hint: usize) -> io::Result<usize> {
    let mut total = 0;
    let mut want = hint.max(64 * 1024);
    loop {
        let n = read_range_into(file, offset + total as u64, want, buf)?;
        total += n;
        if n < want {
            return Ok(total);
        }
        want = want.max(1 << 20);
    }
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

/// Counts `\n` bytes in `[0, upto)` of a file; used only to turn the byte
/// offset of an error into a line number.
pub fn line_of_offset(path: &str, upto: u64) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut lines = 1u64;
    let mut pos = 0u64;
    let mut buf = vec![0u8; STREAM_BUF];
    while pos < upto {
        let want = ((upto - pos) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], pos).ok()?;
        if n == 0 {
            break;
        }
        lines += bytecount::count(&buf[..n], b'\n') as u64;
        pos += n as u64;
    }
    Some(lines)
}
