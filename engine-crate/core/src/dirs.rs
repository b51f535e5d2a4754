//! Files reached by name from their directory, kept open from one file to
//! the next: a run or a scan goes through the files of one directory after
//! another, so each file costs the lookup of one path component instead of
//! its whole path.

use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The directory of the last file reached, open.
#[derive(Debug, Default)]
pub struct OpenDir {
    dir: Option<(PathBuf, OwnedFd)>,
}

impl OpenDir {
    /// The open directory of `path` and the file's name in it; `None` for a
    /// path without both (such as a bare name), which is then used whole.
    fn locate<'p>(&mut self, path: &'p Path) -> io::Result<Option<(&OwnedFd, &'p OsStr)>> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return Ok(None) };
        if parent.as_os_str().is_empty() {
            return Ok(None);
        }
        if self.dir.as_ref().is_none_or(|(open, _)| open.as_os_str() != parent.as_os_str()) {
            self.dir = None;
            let fd = rustix::fs::open(parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
            self.dir = Some((parent.to_path_buf(), fd));
        }
        Ok(self.dir.as_ref().map(|(_, fd)| (fd, name)))
    }

    /// The size of the file at `path`, or with `follow` of its link's target.
    pub fn size(&mut self, path: &Path, follow: bool) -> io::Result<u64> {
        let flags = if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW };
        let stat = match self.locate(path)? {
            Some((dir, name)) => rustix::fs::statat(dir.as_fd(), name, flags)?,
            None => rustix::fs::statat(rustix::fs::CWD, path, flags)?,
        };
        Ok(stat.st_size as u64)
    }

    /// Opens the file at `path` for reading, with `flags` added.
    pub fn open(&mut self, path: &Path, flags: OFlags) -> io::Result<File> {
        let flags = flags | OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = match self.locate(path)? {
            Some((dir, name)) => rustix::fs::openat(dir.as_fd(), name, flags, Mode::empty())?,
            None => rustix::fs::open(path, flags, Mode::empty())?,
        };
        Ok(File::from(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_several_directories_are_reached_by_name() {
        let d = tempfile::tempdir().unwrap();
        let mut dirs = OpenDir::default();
        for (sub, body) in [("a", "1"), ("a", "22"), ("b", "333"), ("a", "4444")] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
            let path = d.path().join(sub).join(format!("f{}", body.len()));
            std::fs::write(&path, body).unwrap();
            assert_eq!(dirs.size(&path, false).unwrap(), body.len() as u64);
            assert_eq!(std::io::read_to_string(dirs.open(&path, OFlags::empty()).unwrap()).unwrap(), body);
        }
        let missing = d.path().join("c/none");
        assert_eq!(dirs.size(&missing, false).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
