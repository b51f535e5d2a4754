//! Objects in an S3-compatible store, read where they are: listed under a
//! prefix and read by ranged GETs, never copied to local disk.
//!
//! Requests run on one tokio runtime owned by the engine and created on
//! first use; the engine's own threads (rayon workers, decompression
//! threads) wait for a range with `block_on`. Requests that fail with a 5xx
//! answer or throttling are retried with backoff (object_store's
//! [`RetryConfig`]). An object is named `s3://bucket/key` in file lists and
//! error records, the key as stored (no URL escaping).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::error::{EngineError, FileError};
use crate::scan::{Filter, ScanOptions, ScanResult};

/// How paths name objects: `s3://bucket/key`.
pub const SCHEME: &str = "s3://";
/// Bytes one GET asks for when an object is streamed.
pub const RANGE: u64 = 8 << 20;
/// GETs a stream keeps in flight ahead of its reader.
pub const AHEAD: usize = 2;
/// Threads of the runtime driving the requests (they only wait on sockets).
const IO_THREADS: usize = 2;

/// The engine's runtime for store requests, created once.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("pravah-io")
            .enable_all()
            .build()
            .expect("cannot start the object store runtime")
    })
}

/// Waits, on an engine thread, for a store request.
fn wait<F: Future>(request: F) -> F::Output {
    runtime().block_on(request)
}

fn to_io(e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

/// Where the objects are and who reads them; unset fields come from the
/// standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (plain http allowed).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// How store requests are retried: up to ten times with exponential backoff,
/// for at most three minutes, on 5xx answers, throttling and broken connections.
fn retry() -> RetryConfig {
    RetryConfig { max_retries: 10, retry_timeout: Duration::from_secs(180), ..RetryConfig::default() }
}

/// One bucket of a store.
#[derive(Debug, Clone)]
pub struct Bucket {
    name: String,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// A bucket of an S3-compatible store.
    pub fn s3(name: &str, config: &S3Config) -> Result<Bucket, EngineError> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(name).with_retry(retry());
        if let Some(endpoint) = &config.endpoint {
            b = b.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let fields = [
            (&config.region, AmazonS3Builder::with_region as fn(AmazonS3Builder, String) -> AmazonS3Builder),
            (&config.access_key_id, AmazonS3Builder::with_access_key_id),
            (&config.secret_access_key, AmazonS3Builder::with_secret_access_key),
            (&config.session_token, AmazonS3Builder::with_token),
        ];
        for (value, set) in fields {
            if let Some(v) = value {
                b = set(b, v.clone());
            }
        }
        let store = b.build().map_err(|e| EngineError::Invalid(format!("s3: {e}")))?;
        Ok(Bucket::new(name, Arc::new(store)))
    }

    /// A bucket served by any store (tests use an in-memory one).
    pub fn new(name: &str, store: Arc<dyn ObjectStore>) -> Bucket {
        Bucket { name: name.to_string(), store }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("{SCHEME}{}/{key}", self.name)
    }

    /// The key a path of this bucket names; an error for another bucket's
    /// path or a key the store's paths cannot hold (`..`, empty segments).
    fn key_of(&self, path: &str) -> Result<Key, String> {
        let key = path
            .strip_prefix(SCHEME)
            .and_then(|p| p.strip_prefix(self.name.as_str()))
            .and_then(|p| p.strip_prefix('/'))
            .ok_or_else(|| format!("not an object of {}{}", SCHEME, self.name))?;
        match Key::parse(key) {
            Ok(parsed) if parsed.as_ref() == key => Ok(parsed),
            Ok(_) => Err("not a readable object key: it starts or ends with '/'".to_string()),
            Err(e) => Err(format!("not a readable object key: {e}")),
        }
    }

    /// Opens the object a path names: its size is asked for (a HEAD), so a
    /// missing object is an error record, and reads stop at its end.
    pub fn open(&self, path: &str) -> Result<Object, FileError> {
        let key = self.key_of(path).map_err(|why| FileError::new(path, None, why))?;
        let meta = wait(self.store.head(&key)).map_err(|e| FileError::io(path, &to_io(e)))?;
        Ok(Object { store: self.store.clone(), key, len: meta.size })
    }

    /// The objects under `prefix` (whole path segments, as a directory)
    /// that the globs select, sorted by key, with their listed sizes. A
    /// prefix naming one object lists that object. The store pages the
    /// listing.
    pub fn list(&self, prefix: &str, opts: &ScanOptions) -> Result<ScanResult, EngineError> {
        let filter = Filter::new(opts)?;
        let listing = |e: String| EngineError::Invalid(format!("cannot list {}: {e}", self.url(prefix)));
        let root = Key::parse(prefix).map_err(|e| listing(e.to_string()))?;
        let mut out = ScanResult::default();
        let mut objects = self.store.list(Some(&root));
        while let Some(meta) = wait(objects.next()) {
            let meta = meta.map_err(|e| listing(e.to_string()))?;
            let key = meta.location.as_ref();
            let rel = key.strip_prefix(root.as_ref()).map_or(key, |r| r.trim_start_matches('/'));
            if filter.selects(rel) {
                out.files.push((self.url(key), meta.size));
            }
        }
        if out.files.is_empty() && !root.as_ref().is_empty() {
            if let Ok(meta) = wait(self.store.head(&root)) {
                out.files.push((self.url(root.as_ref()), meta.size));
            }
        }
        out.files.sort();
        Ok(out)
    }
}

/// An object open for reading.
#[derive(Debug, Clone)]
pub struct Object {
    store: Arc<dyn ObjectStore>,
    key: Key,
    len: u64,
}

impl Object {
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Up to `len` bytes at `offset` (fewer only at the object's end),
    /// appended to `buf`: one GET.
    pub fn read_into(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
        let range = offset.min(self.len)..offset.saturating_add(len as u64).min(self.len);
        if range.is_empty() {
            return Ok(0);
        }
        let bytes = checked(wait(self.store.get_range(&self.key, range.clone())), &range)?;
        buf.extend_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// A sequential reader of `range`, GETting [`RANGE`] bytes at a time
    /// with [`AHEAD`] GETs in flight.
    pub fn stream(&self, range: Range<u64>) -> Ranges {
        Ranges { object: self.clone(), next: range.start, end: range.end.min(self.len), pending: VecDeque::new(), current: Bytes::new() }
    }
}

/// The bytes of a GET, which must be as many as asked: an object that
/// shrank after it was opened is a read error, not a short file.
fn checked(got: object_store::Result<Bytes>, range: &Range<u64>) -> io::Result<Bytes> {
    let bytes = got.map_err(to_io)?;
    let want = range.end - range.start;
    if bytes.len() as u64 != want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("object changed while read: {} bytes at {} instead of {want}", bytes.len(), range.start),
        ));
    }
    Ok(bytes)
}

/// A sequential reader of an object's range with bounded read-ahead.
pub struct Ranges {
    object: Object,
    next: u64,
    end: u64,
    pending: VecDeque<(Range<u64>, JoinHandle<object_store::Result<Bytes>>)>,
    current: Bytes,
}

impl Ranges {
    /// Starts GETs until [`AHEAD`] are in flight or the range is covered.
    fn ask_ahead(&mut self) {
        while self.pending.len() < AHEAD && self.next < self.end {
            let range = self.next..(self.next + RANGE).min(self.end);
            self.next = range.end;
            let (store, key, r) = (self.object.store.clone(), self.object.key.clone(), range.clone());
            let handle = runtime().spawn(async move { store.get_range(&key, r).await });
            self.pending.push_back((range, handle));
        }
    }
}

impl Read for Ranges {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            self.ask_ahead();
            let Some((range, handle)) = self.pending.pop_front() else {
                return Ok(0);
            };
            let got = wait(handle).map_err(io::Error::other)?;
            self.current = checked(got, &range)?;
        }
        let n = buf.len().min(self.current.len());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl Drop for Ranges {
    fn drop(&mut self) {
        for (_, handle) in &self.pending {
            handle.abort();
        }
    }
}

/// The bucket and the key prefix that `s3://bucket/prefix` names.
pub fn locate(url: &str, config: &S3Config) -> Result<(Bucket, String), EngineError> {
    let (name, prefix) = url
        .strip_prefix(SCHEME)
        .map(|rest| rest.split_once('/').unwrap_or((rest, "")))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| EngineError::Invalid(format!("not an {SCHEME}bucket/prefix URL: {url}")))?;
    Ok((Bucket::s3(name, config)?, prefix.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;
    use crate::io::{read_range_into, Inputs};
    use crate::FileTask;
    use object_store::memory::InMemory;
    use std::io::Write;

    fn bucket(objects: &[(&str, &[u8])]) -> Bucket {
        let store = Arc::new(InMemory::new());
        for (key, data) in objects {
            wait(store.put(&Key::parse(key).unwrap(), data.to_vec().into())).unwrap();
        }
        Bucket::new("data", store)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn streams_cover_ranges_across_get_boundaries() {
        let data = pattern(2 * RANGE as usize + 12_345);
        let object = bucket(&[("big.bin", &data)]).open("s3://data/big.bin").unwrap();
        let r = RANGE as usize;
        for (start, end) in [(0, data.len()), (r - 3, r + 5), (1, 2 * r + 1), (r, data.len() + 99), (data.len(), data.len())] {
            let mut got = Vec::new();
            // Odd-sized reads straddle every internal boundary.
            let mut stream = object.stream(start as u64..end as u64);
            let mut piece = vec![0u8; 1 << 20 | 3];
            loop {
                match stream.read(&mut piece).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&piece[..n]),
                }
            }
            assert_eq!(got, &data[start..end.min(data.len())], "{start}..{end}");
        }
    }

    #[test]
    fn positioned_reads_stop_at_the_end() {
        let data = pattern(1000);
        let blob = Blob::Remote(bucket(&[("a", &data)]).open("s3://data/a").unwrap());
        assert_eq!(blob.size().unwrap(), 1000);
        let mut buf = b"kept".to_vec();
        assert_eq!(read_range_into(&blob, 990, 64, &mut buf).unwrap(), 10);
        assert_eq!(&buf[4..], &data[990..]);
        assert_eq!(read_range_into(&blob, 1000, 64, &mut buf).unwrap(), 0);
        assert_eq!(read_range_into(&blob, 5000, 64, &mut buf).unwrap(), 0);
    }

    #[test]
    fn an_object_that_shrinks_after_it_was_opened_is_a_read_error() {
        let b = bucket(&[("a", &pattern(100))]);
        let blob = Blob::Remote(b.open("s3://data/a").unwrap());
        wait(b.store.put(&Key::from("a"), pattern(10).into())).unwrap();
        let err = read_range_into(&blob, 0, 100, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("object changed while read"), "{err}");
    }

    #[test]
    fn missing_objects_and_foreign_paths_are_error_records() {
        let b = bucket(&[("a", b"x")]);
        let missing = b.open("s3://data/nope").unwrap_err();
        assert_eq!(missing.path, "s3://data/nope");
        assert!(missing.reason.contains("not found"), "{}", missing.reason);
        assert_eq!(b.open("s3://other/a").unwrap_err().reason, "not an object of s3://data");
        for unsafe_key in ["x/../a", "/a", "a/", "x//a", "./a"] {
            let refused = b.open(&format!("s3://data/{unsafe_key}")).unwrap_err();
            assert!(refused.reason.starts_with("not a readable object key"), "{unsafe_key}: {}", refused.reason);
        }
    }

    #[test]
    fn listing_pages_filters_and_keeps_keys_as_stored() {
        let odd = ["in/with space.csv", "in/plus+sign.csv", "in/per%25cent.csv", "in/ünï©ødé.csv"];
        let mut objects: Vec<(String, Vec<u8>)> = (0..1500).map(|i| (format!("in/k{i:04}.csv"), vec![b'x'; i % 7])).collect();
        objects.extend(odd.iter().map(|k| (k.to_string(), b"a\n".to_vec())));
        objects.push(("in/skip/z.csv".into(), b"z".to_vec()));
        objects.push(("in/k.txt".into(), b"t".to_vec()));
        objects.push(("inner/k.csv".into(), b"not under in/".to_vec()));
        let refs: Vec<(&str, &[u8])> = objects.iter().map(|(k, d)| (k.as_str(), d.as_slice())).collect();
        let b = bucket(&refs);
        let opts = ScanOptions { include: vec!["**/*.csv".into()], exclude: vec!["skip".into()], follow_symlinks: false };
        let listed = b.list("in", &opts).unwrap();
        let mut want: Vec<(String, u64)> = objects[..1504].iter().map(|(k, d)| (format!("s3://data/{k}"), d.len() as u64)).collect();
        want.sort();
        assert_eq!(listed.files, want);
        assert!(listed.errors.is_empty());
        for (path, size) in listed.files.iter().filter(|(p, _)| odd.iter().any(|k| p.ends_with(k))) {
            assert_eq!((b.open(path).unwrap().size(), *size), (2, 2), "{path}");
        }
        let one = b.list("in/k0001.csv", &ScanOptions::default()).unwrap();
        assert_eq!(one.files, vec![("s3://data/in/k0001.csv".to_string(), 1)]);
    }

    /// An S3 endpoint that answers HEAD, then throttles the first GET (503
    /// SlowDown) and serves the second; returns its address and a GET counter.
    fn throttling_server(body: &'static [u8]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = gets.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                while reader.read_line(&mut request).is_ok_and(|n| n > 2) && !request.ends_with("\r\n\r\n") {}
                let common = "Connection: close\r\nLast-Modified: Fri, 04 Dec 2026 10:00:00 GMT\r\nETag: \"e\"\r\n";
                let answer = if request.starts_with("HEAD") {
                    format!("HTTP/1.1 200 OK\r\n{common}Content-Length: {}\r\n\r\n", body.len()).into_bytes()
                } else if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    let why = "<Error><Code>SlowDown</Code><Message>slow down</Message></Error>";
                    format!("HTTP/1.1 503 Slow Down\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{why}", why.len()).into_bytes()
                } else {
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes 0-{}/{}\r\nContent-Length: {}\r\n\r\n",
                        body.len() - 1,
                        body.len(),
                        body.len()
                    );
                    [head.as_bytes(), body].concat()
                };
                let _ = (&stream).write_all(&answer);
            }
        });
        (address, gets)
    }

    #[test]
    fn a_throttled_read_is_retried() {
        let (endpoint, gets) = throttling_server(b"hello");
        let config = S3Config {
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret".into()),
            session_token: None,
        };
        let object = Bucket::s3("b", &config).unwrap().open("s3://b/k").unwrap();
        let mut buf = Vec::new();
        assert_eq!(object.read_into(0, 64, &mut buf).unwrap(), 5);
        assert_eq!((buf.as_slice(), gets.load(std::sync::atomic::Ordering::SeqCst)), (&b"hello"[..], 2));
    }

    #[test]
    fn a_run_reads_objects_in_place() {
        let csv: Vec<u8> = (0..200_000).flat_map(|i| format!("{i},\"v {i}\"\n").into_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&csv).unwrap();
        let gz = gz.finish().unwrap();
        let b = bucket(&[("t/a.csv", &csv), ("t/b.csv.gz", &gz)]);
        let listed = b.list("t", &ScanOptions::default()).unwrap();
        let mut files: Vec<FileTask> = listed.files.iter().map(|(p, s)| FileTask::new(p, *s)).collect();
        files.push(FileTask::new("s3://data/t/gone.csv", 3));
        let inputs = Inputs::objects(b);
        let op = crate::ops::count::CountOp::from_options("{}").unwrap();
        let p = crate::job::run_partial(&op, &files, &inputs, &crate::Control::default()).unwrap();
        let lines = bytecount::count(&csv, b'\n') as u64;
        assert_eq!(p.body.lines, 2 * lines);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].path, "s3://data/t/gone.csv");
        let op = crate::ops::checksum::ChecksumOp::from_options(r#"{"algorithm": "sha256"}"#).unwrap();
        let p = crate::job::run_partial(&op, &files[..1], &inputs, &crate::Control::default()).unwrap();
        use sha2::Digest;
        let want: String = sha2::Sha256::digest(&csv).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(p.body.files[0].digest, want);
    }
}
