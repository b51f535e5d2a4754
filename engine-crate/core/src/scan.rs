//! Directory scanning: a deterministic, filtered list of regular files.
//!
//! * Output is sorted by path bytes, whatever order the file system returns.
//! * `include`/`exclude` globs match the path relative to the root (with `*`
//!   allowed to cross `/`, and a leading `**/` matching zero directories, so
//!   `**/*.csv` matches both `a.csv` and `x/y/a.csv`). An empty include list
//!   means everything; exclude wins over include. A directory whose relative
//!   path matches an exclude glob is not descended into.
//! * Symlinks are followed only when asked, and then only to a target inside
//!   the root: a link that resolves outside it is reported and not entered.
//!   Loops are detected by `walkdir` and reported. A broken symlink is
//!   reported in both modes; when links are not followed, other symlinks are
//!   skipped silently. (Files are opened under the same rule, see
//!   [`crate::io::Inputs`].)
//! * Problems (unreadable directory, broken link, loop, non-UTF-8 path) are
//!   returned as `(path, reason)` pairs and never abort the scan.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use walkdir::WalkDir;

use crate::dirs::OpenDir;
use crate::error::{invalid, EngineError};
use crate::io::OUTSIDE_ROOT;

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow_symlinks: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanResult {
    pub files: Vec<(String, u64)>,
    pub errors: Vec<(String, String)>,
}

fn build_set(kind: &str, globs: &[String]) -> Result<Option<GlobSet>, EngineError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        match GlobBuilder::new(g).literal_separator(false).build() {
            Ok(glob) => {
                b.add(glob);
            }
            Err(e) => return invalid(format!("{kind}: invalid glob '{g}': {e}")),
        }
    }
    b.build().map(Some).map_err(|e| EngineError::Invalid(format!("{kind}: {e}")))
}

/// The include and exclude globs of a scan, matched against paths relative
/// to the root.
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    pub fn new(opts: &ScanOptions) -> Result<Filter, EngineError> {
        Ok(Filter { include: build_set("include", &opts.include)?, exclude: build_set("exclude", &opts.exclude)? })
    }

    pub fn excluded(&self, rel: &Path) -> bool {
        self.exclude.as_ref().is_some_and(|x| x.is_match(rel))
    }

    pub fn selected(&self, rel: &Path) -> bool {
        self.include.as_ref().is_none_or(|inc| inc.is_match(rel)) && !self.excluded(rel)
    }

    /// For a flat listing of keys: the key is selected and none of its
    /// parent "directories" is excluded (a walk would not enter them).
    pub fn selects(&self, rel: &str) -> bool {
        let mut parents = rel.match_indices('/').map(|(i, _)| &rel[..i]);
        self.selected(Path::new(rel)) && !parents.any(|dir| self.excluded(Path::new(dir)))
    }
}

/// Files sized together by one thread while the walk goes on.
const SIZE_BLOCK: usize = 256;

/// `path` relative to `root`, which the walk put at its start: cutting the
/// bytes costs less than comparing the paths component by component.
fn below<'p>(path: &'p Path, root: &Path) -> &'p Path {
    let Some(rest) = path.as_os_str().as_bytes().strip_prefix(root.as_os_str().as_bytes()) else { return path };
    let slashes = rest.iter().take_while(|&&b| b == b'/').count();
    Path::new(OsStr::from_bytes(&rest[slashes..]))
}

fn path_string(p: &Path) -> Option<String> {
    p.to_str().map(str::to_string)
}

/// Walks `root` and returns its regular files (sorted) and the problems met.
pub fn scan(root: &str, opts: &ScanOptions) -> Result<ScanResult, EngineError> {
    let filter = Filter::new(opts)?;
    let mut out = ScanResult::default();
    let root_path = Path::new(root);

    let root_meta = match std::fs::metadata(root_path) {
        Ok(m) => m,
        Err(e) => {
            let reason = if std::fs::symlink_metadata(root_path).is_ok() {
                format!("broken symlink: {e}")
            } else {
                e.to_string()
            };
            out.errors.push((root.to_string(), reason));
            return Ok(out);
        }
    };
    if root_meta.is_file() {
        out.files.push((root.to_string(), root_meta.len()));
        return Ok(out);
    }

    let real_root = match std::fs::canonicalize(root_path) {
        Ok(r) => r,
        Err(e) => {
            out.errors.push((root.to_string(), e.to_string()));
            return Ok(out);
        }
    };
    let mut outside = Vec::new();
    let walker = WalkDir::new(root_path).follow_links(opts.follow_symlinks).into_iter();
    let walker = walker.filter_entry(|e| {
        if e.depth() == 0 {
            return true;
        }
        let rel = below(e.path(), root_path);
        let is_dir = e.file_type().is_dir();
        if is_dir && filter.excluded(rel) {
            return false;
        }
        let leaves_root = opts.follow_symlinks
            && e.path_is_symlink()
            && !std::fs::canonicalize(e.path()).is_ok_and(|target| target.starts_with(&real_root));
        if leaves_root && (is_dir || filter.selected(rel)) {
            outside.push((e.path().to_string_lossy().into_owned(), OUTSIDE_ROOT.to_string()));
        }
        !leaves_root
    });

    // Sizes are looked up by blocks of files, handed to the other threads
    // while the walk goes on: one `statx` per file is most of a listing's
    // time, and it now overlaps the walk instead of following it.
    let sized = Mutex::new(Vec::new());
    let size_block = |block: Vec<String>| {
        let mut dirs = OpenDir::default();
        let block: Vec<_> = block
            .into_iter()
            .map(|path| match dirs.size(Path::new(&path), opts.follow_symlinks) {
                Ok(size) => Ok((path, size)),
                Err(e) => Err((path, e.to_string())),
            })
            .collect();
        sized.lock().unwrap_or_else(PoisonError::into_inner).extend(block);
    };
    rayon::scope(|s| {
        let mut block = Vec::with_capacity(SIZE_BLOCK);
        for found in walker.filter_map(|item| listed_file(item, root, root_path, &filter)) {
            match found {
                Ok(path) => block.push(path),
                Err(problem) => out.errors.push(problem),
            }
            if block.len() == SIZE_BLOCK {
                let full = std::mem::replace(&mut block, Vec::with_capacity(SIZE_BLOCK));
                s.spawn(|_| size_block(full));
            }
        }
        size_block(block);
    });
    for item in sized.into_inner().unwrap_or_else(PoisonError::into_inner) {
        match item {
            Ok(file) => out.files.push(file),
            Err(problem) => out.errors.push(problem),
        }
    }
    out.errors.append(&mut outside);
    out.files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.errors.sort();
    Ok(out)
}

/// What the walk met at one entry: a selected regular file to size, a
/// problem to report, or nothing (a directory, a skipped link or a file the
/// globs leave out).
fn listed_file(
    item: walkdir::Result<walkdir::DirEntry>,
    root: &str,
    root_path: &Path,
    filter: &Filter,
) -> Option<Result<String, (String, String)>> {
    let entry = match item {
        Ok(e) => e,
        Err(err) => {
            let path = err.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| root.to_string());
            let reason = if let Some(anc) = err.loop_ancestor() {
                format!("symlink loop to {}", anc.display())
            } else if let Some(ioe) = err.io_error() {
                let dangling = err
                    .path()
                    .is_some_and(|p| std::fs::symlink_metadata(p).is_ok() && std::fs::metadata(p).is_err());
                if dangling {
                    format!("broken symlink: {ioe}")
                } else {
                    ioe.to_string()
                }
            } else {
                err.to_string()
            };
            return Some(Err((path, reason)));
        }
    };
    let ft = entry.file_type();
    if ft.is_dir() {
        return None;
    }
    let path = entry.path();
    if ft.is_symlink() {
        // Only reached when links are not followed.
        if let Err(e) = std::fs::metadata(path) {
            return Some(Err((path.to_string_lossy().into_owned(), format!("broken symlink: {e}"))));
        }
        return None;
    }
    if !ft.is_file() {
        return None;
    }
    if !filter.selected(below(path, root_path)) {
        return None;
    }
    Some(path_string(path).ok_or_else(|| (path.to_string_lossy().into_owned(), "path is not valid UTF-8".to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn opts(inc: &[&str], exc: &[&str], follow: bool) -> ScanOptions {
        ScanOptions {
            include: inc.iter().map(|s| s.to_string()).collect(),
            exclude: exc.iter().map(|s| s.to_string()).collect(),
            follow_symlinks: follow,
        }
    }

    #[test]
    fn sorted_filtered_and_relative_globs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("x/y")).unwrap();
        fs::write(root.join("b.csv"), "1").unwrap();
        fs::write(root.join("a.csv"), "12").unwrap();
        fs::write(root.join("x/y/a.csv"), "123").unwrap();
        fs::write(root.join("x/note.txt"), "t").unwrap();
        let r = root.to_str().unwrap();
        let all = scan(r, &opts(&[], &[], false)).unwrap();
        assert_eq!(all.files.len(), 4);
        assert!(all.files.windows(2).all(|w| w[0].0 < w[1].0));
        let csv = scan(r, &opts(&["**/*.csv"], &[], false)).unwrap();
        let names: Vec<_> = csv.files.iter().map(|f| f.0.strip_prefix(r).unwrap().to_string()).collect();
        assert_eq!(names, vec!["/a.csv", "/b.csv", "/x/y/a.csv"]);
        assert_eq!(csv.files[2].1, 3);
        let ex = scan(r, &opts(&["**/*.csv"], &["x/**"], false)).unwrap();
        assert_eq!(ex.files.len(), 2);
        let slashed = scan(&format!("{r}//"), &opts(&["x/y/*.csv"], &["b.csv"], false)).unwrap();
        assert_eq!(slashed.files.iter().map(|f| f.1).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn every_file_keeps_its_own_size_across_blocks() {
        let d = tempfile::tempdir().unwrap();
        let count = SIZE_BLOCK * 2 + 7;
        for i in 0..count {
            let dir = d.path().join(format!("d{}", i % 3));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("f{i:04}")), vec![b'x'; i]).unwrap();
        }
        let found = scan(d.path().to_str().unwrap(), &opts(&[], &[], false)).unwrap();
        assert!(found.errors.is_empty());
        assert_eq!(found.files.len(), count);
        for (path, size) in &found.files {
            let i: u64 = path.rsplit_once("/f").unwrap().1.parse().unwrap();
            assert_eq!(*size, i, "{path}");
        }
    }

    #[test]
    fn root_file_and_missing_root() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("one.txt");
        fs::write(&f, "hello").unwrap();
        let r = scan(f.to_str().unwrap(), &ScanOptions::default()).unwrap();
        assert_eq!(r.files, vec![(f.to_str().unwrap().to_string(), 5)]);
        let m = scan(d.path().join("nope").to_str().unwrap(), &ScanOptions::default()).unwrap();
        assert!(m.files.is_empty());
        assert_eq!(m.errors.len(), 1);
    }

    #[test]
    fn symlink_loop_and_broken_link() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("dangling")).unwrap();
        let r = root.to_str().unwrap();
        let nf = scan(r, &opts(&[], &[], false)).unwrap();
        assert_eq!(nf.files.len(), 1);
        assert!(nf.errors.iter().any(|e| e.1.contains("broken symlink")));
        let f = scan(r, &opts(&[], &[], true)).unwrap();
        assert_eq!(f.files.len(), 1);
        assert!(f.errors.iter().any(|e| e.1.contains("loop")), "{:?}", f.errors);
        assert!(f.errors.iter().any(|e| e.1.contains("broken symlink")), "{:?}", f.errors);
    }

    #[test]
    fn followed_links_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        fs::create_dir_all(root.join("real")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("real/in.txt"), "in").unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("inner-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("secret-file")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("secret-dir")).unwrap();
        std::os::unix::fs::symlink("../../outside/secret.txt", root.join("real/relative")).unwrap();
        let r = root.to_str().unwrap();
        let f = scan(r, &opts(&[], &[], true)).unwrap();
        let names: Vec<_> = f.files.iter().map(|f| f.0.strip_prefix(r).unwrap()).collect();
        assert_eq!(names, vec!["/inner-dir/in.txt", "/real/in.txt"]);
        let refused: Vec<_> = f.errors.iter().map(|(p, why)| (p.strip_prefix(r).unwrap(), why.as_str())).collect();
        assert_eq!(
            refused,
            vec![
                ("/inner-dir/relative", OUTSIDE_ROOT),
                ("/real/relative", OUTSIDE_ROOT),
                ("/secret-dir", OUTSIDE_ROOT),
                ("/secret-file", OUTSIDE_ROOT),
            ]
        );
        // A link the globs leave out is not worth an error record.
        let csv = scan(r, &opts(&["**/*.csv"], &[], true)).unwrap();
        assert!(csv.files.is_empty());
        assert_eq!(csv.errors, vec![(format!("{r}/secret-dir"), OUTSIDE_ROOT.to_string())]);
        let excluded = scan(r, &opts(&[], &["secret-*", "**/relative"], true)).unwrap();
        assert!(excluded.errors.is_empty(), "{:?}", excluded.errors);
    }
}
