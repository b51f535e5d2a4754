//! `checksum`: one digest per file (sha256, blake3 or xxh3-64).
//!
//! Digests are sequential per file, so parallelism comes from hashing many
//! files at once. Big files are hashed straight from a memory map, without
//! copying them out of the page cache (falling back to buffered reads if the
//! file cannot be mapped); blake3 hashes each such file with all threads
//! (`update_rayon`). Progress and cancellation are checked after every
//! buffer or slice.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use super::options::Options;
use crate::codec::{for_each_block, Decode, Flow, Framing, Input};
use crate::frames::for_each_group;
use super::Operation;
use crate::control::Control;
use crate::error::{invalid, EngineError, FileError};
use crate::io::{read_piece, with_buffer, STREAM_BUF};
use crate::partial::Body;
use crate::FileTask;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Blake3,
    Xxh3,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
            Algorithm::Xxh3 => "xxh3",
        }
    }
}

/// Files at least this big are hashed from a memory map.
const MAPPED_MIN: u64 = 4 << 20;
/// Slice of a mapped file hashed between progress / cancel checks.
const MAPPED_SLICE: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct ChecksumOp {
    pub algorithm: Algorithm,
    /// Hash a compressed file's content instead of its stored bytes.
    pub decompressed: bool,
}

impl ChecksumOp {
    pub fn from_options(text: &str) -> Result<Self, EngineError> {
        let mut o = Options::parse("checksum", text)?;
        let name = o.string("algorithm", Some("sha256"))?;
        let decompressed = o.boolean("decompressed", false)?;
        o.finish()?;
        let algorithm = match name.as_str() {
            "sha256" => Algorithm::Sha256,
            "blake3" => Algorithm::Blake3,
            "xxh3" => Algorithm::Xxh3,
            other => return invalid(format!("checksum.algorithm: unknown '{other}' (expected sha256, blake3, xxh3)")),
        };
        Ok(ChecksumOp { algorithm, decompressed })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileDigest {
    pub path: String,
    pub bytes: u64,
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChecksumBody {
    pub algorithm: Algorithm,
    pub files: Vec<FileDigest>,
}

fn file_order(a: &FileDigest, b: &FileDigest) -> std::cmp::Ordering {
    a.path.as_bytes().cmp(b.path.as_bytes()).then(a.bytes.cmp(&b.bytes)).then(a.digest.cmp(&b.digest))
}

fn sort_files(files: &mut [FileDigest]) {
    files.sort_by(file_order);
}

impl Body for ChecksumBody {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        if self.algorithm != other.algorithm {
            return Err(format!(
                "checksum.algorithm: cannot merge {} with {}",
                self.algorithm.name(),
                other.algorithm.name()
            ));
        }
        self.files.extend(other.files);
        sort_files(&mut self.files);
        Ok(())
    }

    fn result(&self) -> Value {
        let mut files = self.files.clone();
        sort_files(&mut files);
        json!({"algorithm": self.algorithm.name(), "files": files})
    }

    fn write_result(&self, out: &mut dyn std::io::Write) -> Result<(), String> {
        #[derive(Serialize)]
        struct DigestOut<'a> {
            bytes: u64,
            digest: &'a str,
            path: &'a str,
        }
        #[derive(Serialize)]
        struct ResultOut<'a> {
            algorithm: &'static str,
            files: Vec<DigestOut<'a>>,
        }
        let mut files: Vec<&FileDigest> = self.files.iter().collect();
        files.sort_by(|a, b| file_order(a, b));
        let files = files.iter().map(|f| DigestOut { bytes: f.bytes, digest: &f.digest, path: &f.path }).collect();
        serde_json::to_writer(out, &ResultOut { algorithm: self.algorithm.name(), files }).map_err(|e| e.to_string())
    }

    fn strip(&mut self) {
        self.files.clear();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

enum Hasher {
    Sha256(Box<sha2::Sha256>),
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3Default>),
}

impl Hasher {
    fn new(a: Algorithm) -> Self {
        match a {
            Algorithm::Sha256 => Hasher::Sha256(Box::default()),
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
            Algorithm::Xxh3 => Hasher::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3Default::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Xxh3(h) => h.update(data),
        }
    }

    /// Like `update`; blake3 spreads a big slice over the pool's threads.
    fn update_in_parallel(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update_rayon(data);
            }
            other => other.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(h.finalize().as_slice()),
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
            Hasher::Xxh3(h) => format!("{:016x}", h.digest()),
        }
    }
}

/// Streams a file through the hasher. `Ok(Err)` is a per-file problem.
fn digest_file(alg: Algorithm, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<(u64, String), FileError>, EngineError> {
    if let Some(all) = input.whole() {
        ctl.add_bytes(all.len() as u64);
        return Ok(Ok((all.len() as u64, one_shot(alg, all))));
    }
    let blob = &input.blob;
    if task.size >= MAPPED_MIN {
        if let Some(r) = blob.file().map(|file| digest_mapped(alg, file, ctl)).transpose()?.flatten() {
            return Ok(r);
        }
    }
    let mut hasher: Option<Hasher> = None;
    let mut total = 0u64;
    // Small files (the common case) are read with one call into a reused
    // buffer and hashed in one shot; bigger ones stream in fixed pieces.
    let mut want = if task.size < STREAM_BUF as u64 { task.size as usize + 1 } else { STREAM_BUF };
    let mut stream = blob.stream(0..u64::MAX);
    with_buffer(|buf| -> Result<Result<(u64, String), FileError>, EngineError> {
        loop {
            ctl.check()?;
            buf.clear();
            let n = match read_piece(&mut stream, want, buf) {
                Ok(n) => n,
                Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
            };
            total += n as u64;
            ctl.add_bytes(n as u64);
            if n < want {
                let digest = match hasher.take() {
                    None => one_shot(alg, &buf[..n]),
                    Some(mut h) => {
                        h.update(&buf[..n]);
                        h.finish()
                    }
                };
                return Ok(Ok((total, digest)));
            }
            hasher.get_or_insert_with(|| Hasher::new(alg)).update(&buf[..n]);
            want = STREAM_BUF;
        }
    })
}

/// Streams a compressed file's content through the hasher.
fn digest_content(alg: Algorithm, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<(u64, String), FileError>, EngineError> {
    let Some(reading) = input.reading(task, Decode::Bytes, Framing::LINES, true) else {
        return digest_file(alg, task, input, ctl);
    };
    let mut hasher = Hasher::new(alg);
    let mut total = 0u64;
    let mut each = |block: &[u8]| {
        hasher.update(block);
        total += block.len() as u64;
    };
    let done = match for_each_group(&reading, ctl, &mut each) {
        Some(done) => done?,
        None => for_each_block(reading, ctl, |block, _| {
            each(block);
            Ok(Flow::More)
        })?,
    };
    Ok(done.map(|()| (total, hasher.finish())))
}

/// Digest of a whole buffer.
fn one_shot(alg: Algorithm, data: &[u8]) -> String {
    match alg {
        Algorithm::Sha256 => hex(sha2::Sha256::digest(data).as_slice()),
        Algorithm::Blake3 => blake3::hash(data).to_hex().to_string(),
        Algorithm::Xxh3 => format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data)),
    }
}

/// A digest over a memory map: the hash reads the page cache itself instead
/// of a copy of it (for sha256 on big files that copy was a fifth of the
/// time). `None` when the file cannot be mapped (the caller then streams it).
fn digest_mapped(alg: Algorithm, file: &std::fs::File, ctl: &Control) -> Result<Option<Result<(u64, String), FileError>>, EngineError> {
    // SAFETY: the map is read-only and dropped before returning; a file
    // truncated underneath would fault, the same trade-off as `b3sum`.
    let map = match unsafe { memmap2::Mmap::map(file) } {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    let mut h = Hasher::new(alg);
    for slice in map.chunks(MAPPED_SLICE) {
        ctl.check()?;
        h.update_in_parallel(slice);
        ctl.add_bytes(slice.len() as u64);
    }
    Ok(Some(Ok((map.len() as u64, h.finish()))))
}

impl Operation for ChecksumOp {
    type Body = ChecksumBody;
    const NAME: &'static str = "checksum";

    fn empty(&self) -> ChecksumBody {
        ChecksumBody { algorithm: self.algorithm, files: Vec::new() }
    }

    fn process_file(&self, task: &FileTask, input: &Input, ctl: &Control, acc: &mut ChecksumBody) -> Result<Result<(), FileError>, EngineError> {
        let digest = if self.decompressed {
            digest_content(self.algorithm, task, input, ctl)?
        } else {
            digest_file(self.algorithm, task, input, ctl)?
        };
        Ok(digest.map(|(bytes, digest)| {
            acc.files.push(FileDigest { path: task.path.clone(), bytes, digest });
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;

    /// `path` opened as the run driver opens it, `size` being its scanned size.
    fn input(path: &std::path::Path, size: u64) -> (FileTask, Input) {
        let task = FileTask::new(path.to_str().unwrap(), size);
        let input = Input::new(&task, Blob::from(std::fs::File::open(path).unwrap())).unwrap();
        (task, input)
    }

    #[test]
    fn known_digests() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let (t, f) = input(&p, 3);
        let ctl = Control::default();
        let sha = digest_file(Algorithm::Sha256, &t, &f, &ctl).unwrap().unwrap();
        assert_eq!(sha.1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let b3 = digest_file(Algorithm::Blake3, &t, &f, &ctl).unwrap().unwrap();
        assert_eq!(b3.1, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        let x = digest_file(Algorithm::Xxh3, &t, &f, &ctl).unwrap().unwrap();
        assert_eq!(x.1, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b"abc")));
    }

    #[test]
    fn a_file_read_whole_on_opening_and_a_streamed_one_agree() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("grown");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let ctl = Control::default();
        let (t, whole) = input(&p, data.len() as u64);
        assert!(whole.whole().is_some());
        // Scanned as smaller than it now is: not whole, so streamed.
        let (t_grown, streamed) = input(&p, 10);
        assert!(streamed.whole().is_none());
        for alg in [Algorithm::Sha256, Algorithm::Blake3, Algorithm::Xxh3] {
            let a = digest_file(alg, &t, &whole, &ctl).unwrap().unwrap();
            let b = digest_file(alg, &t_grown, &streamed, &ctl).unwrap().unwrap();
            assert_eq!(a, (data.len() as u64, one_shot(alg, &data)));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn big_files_hashed_from_a_map_match_the_digest_of_their_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        let data: Vec<u8> = (0..(MAPPED_MIN as usize * 5 + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (t, f) = input(&p, data.len() as u64);
        let want = [
            (Algorithm::Sha256, hex(sha2::Sha256::digest(&data).as_slice())),
            (Algorithm::Blake3, blake3::hash(&data).to_hex().to_string()),
            (Algorithm::Xxh3, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data))),
        ];
        for (alg, digest) in want {
            let got = digest_file(alg, &t, &f, &Control::default()).unwrap().unwrap();
            assert_eq!(got, (data.len() as u64, digest), "{}", alg.name());
        }
    }

    #[test]
    fn unknown_algorithm_is_named() {
        let e = ChecksumOp::from_options(r#"{"algorithm": "md5"}"#).unwrap_err().to_string();
        assert_eq!(e, "checksum.algorithm: unknown 'md5' (expected sha256, blake3, xxh3)");
    }

    #[test]
    fn merge_is_order_free() {
        let f = |p: &str| FileDigest { path: p.into(), bytes: 1, digest: "00".into() };
        let mut a = ChecksumBody { algorithm: Algorithm::Xxh3, files: vec![f("b"), f("a")] };
        let b = ChecksumBody { algorithm: Algorithm::Xxh3, files: vec![f("c")] };
        let mut b2 = b.clone();
        b2.merge(a.clone()).unwrap();
        a.merge(b).unwrap();
        assert_eq!(a.result(), b2.result());
    }
}
