//! Requests and runs: option validation, the per-file driver, and a handle
//! to a run executing in the background on its own thread pool.

use rayon::prelude::*;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::codec::Input;
use crate::control::{Control, ProgressSnapshot};
use crate::dirs::OpenDir;
use crate::error::{invalid, EngineError};
use crate::io::Inputs;
use crate::ops::checksum::{ChecksumBody, ChecksumOp};
use crate::ops::convert::{ConvertBody, ConvertOp};
use crate::ops::count::{CountBody, CountOp};
use crate::ops::grep::{GrepBody, GrepOp};
use crate::ops::stats::{StatsBody, StatsOp};
use crate::ops::{Operation, OPS};
use crate::partial::{finalize_json, Body, Fold, Folded, Partial};
use crate::FileTask;

/// A validated request.
#[derive(Debug, Clone)]
pub enum Request {
    Stats(StatsOp),
    Count(CountOp),
    Checksum(ChecksumOp),
    Grep(GrepOp),
    Convert(ConvertOp),
}

fn unknown_op<T>(op: &str) -> Result<T, EngineError> {
    invalid(format!("op: unknown '{op}' (expected {})", OPS.join(", ")))
}

impl Request {
    /// Validates `op` and its JSON options.
    pub fn parse(op: &str, options: &str) -> Result<Self, EngineError> {
        Ok(match op {
            "stats" => Request::Stats(StatsOp::from_options(options)?),
            "count" => Request::Count(CountOp::from_options(options)?),
            "checksum" => Request::Checksum(ChecksumOp::from_options(options)?),
            "grep" => Request::Grep(GrepOp::from_options(options)?),
            "convert" => Request::Convert(ConvertOp::from_options(options)?),
            other => return unknown_op(other),
        })
    }

    /// Runs on the current rayon pool and returns the partial, or with `per_file` one
    /// partial per file, in the files' order.
    pub fn run(&self, files: &[FileTask], inputs: &Inputs, ctl: &Control, per_file: bool) -> Result<Box<dyn Finished>, EngineError> {
        match self {
            Request::Stats(op) => run_op(op, files, inputs, ctl, per_file),
            Request::Count(op) => run_op(op, files, inputs, ctl, per_file),
            Request::Checksum(op) => run_op(op, files, inputs, ctl, per_file),
            Request::Grep(op) => run_op(op, files, inputs, ctl, per_file),
            Request::Convert(op) => run_op(op, files, inputs, ctl, per_file),
        }
    }
}

/// Validates `op` and its options as [`Job::start`] does, without running
/// anything: admission refuses what the engine would refuse.
pub fn check_options(op: &str, options: &str) -> Result<(), EngineError> {
    Request::parse(op, options).map(|_| ())
}

/// Processes every file, folding per-thread partials and merging them. Files
/// are opened here, through `inputs`, and nowhere else.
pub fn run_partial<O: Operation>(op: &O, files: &[FileTask], inputs: &Inputs, ctl: &Control) -> Result<Partial<O::Body>, EngineError> {
    op.prepare()?;
    let partial = files
        .par_iter()
        .try_fold(
            || (Partial::new(O::NAME, op.empty()), OpenDir::default()),
            |(mut acc, mut dirs), task| -> Result<_, EngineError> {
                add_file(op, task, inputs, &mut dirs, ctl, &mut acc)?;
                Ok((acc, dirs))
            },
        )
        .map(|folded| folded.map(|(acc, _)| acc))
        .try_reduce(|| Partial::new(O::NAME, op.empty()), |a, b| a.merge(b))?;
    ctl.check()?;
    Ok(partial)
}

/// One partial per file, in the files' order: what an incremental run keeps, so
/// that a later run can reuse the partials of any subset of the files.
pub fn run_per_file<O: Operation>(op: &O, files: &[FileTask], inputs: &Inputs, ctl: &Control) -> Result<Vec<Partial<O::Body>>, EngineError> {
    op.prepare()?;
    let partials = files
        .par_iter()
        .map_init(OpenDir::default, |dirs, task| {
            let mut acc = Partial::new(O::NAME, op.empty());
            add_file(op, task, inputs, dirs, ctl, &mut acc)?;
            Ok(acc)
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    ctl.check()?;
    Ok(partials)
}

/// Reads one file into `acc`: its content into the body, or its error record.
fn add_file<O: Operation>(op: &O, task: &FileTask, inputs: &Inputs, dirs: &mut OpenDir, ctl: &Control, acc: &mut Partial<O::Body>) -> Result<(), EngineError> {
    ctl.check()?;
    let outcome = match inputs.open(&task.path, dirs).and_then(|blob| Input::new(task, blob)) {
        Ok(input) => op.process_file(task, &input, ctl, &mut acc.body)?,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        ctl.file_error();
        acc.errors.push(e);
    }
    acc.files += 1;
    acc.bytes += task.size;
    ctl.file_done();
    Ok(())
}

pub fn run_op<O: Operation>(op: &O, files: &[FileTask], inputs: &Inputs, ctl: &Control, per_file: bool) -> Result<Box<dyn Finished>, EngineError>
where
    O::Body: Sync + 'static,
{
    Ok(if per_file { Box::new(PerFile(run_per_file(op, files, inputs, ctl)?)) } else { Box::new(run_partial(op, files, inputs, ctl)?) })
}

/// What a run gives back, kept as the engine's own values: its partial becomes JSON text
/// only when asked for, and its result document is written from it directly (a partial
/// listing many files' lines would otherwise be written, copied and parsed again first).
pub trait Finished: Send + Sync {
    /// The partial as JSON text (with `per_file`, an array of one partial per file).
    fn partial_json(&self) -> Result<String, EngineError>;
    /// Writes the result document, as `finalize` of the partial gives it.
    fn write_document(&self, out: &mut dyn Write) -> Result<(), EngineError>;
    /// The result document as JSON text.
    fn document(&self) -> Result<String, EngineError>;
}

impl<B: Body + Sync> Finished for Partial<B> {
    fn partial_json(&self) -> Result<String, EngineError> {
        self.to_json()
    }

    fn write_document(&self, out: &mut dyn Write) -> Result<(), EngineError> {
        Partial::write_document(self, out).map_err(|e| EngineError::Internal(format!("writing result: {e}")))
    }

    fn document(&self) -> Result<String, EngineError> {
        self.finalize_text()
    }
}

const NO_PER_FILE_DOCUMENT: &str =
    "a per-file run has one partial per file and no result document of its own: finalize each partial";

/// The partials of a `per_file` run, one per file.
struct PerFile<B>(Vec<Partial<B>>);

impl<B: Body + Sync> Finished for PerFile<B> {
    fn partial_json(&self) -> Result<String, EngineError> {
        serde_json::to_string(&self.0).map_err(|e| EngineError::Internal(format!("serialising partials: {e}")))
    }

    fn write_document(&self, _out: &mut dyn Write) -> Result<(), EngineError> {
        invalid(NO_PER_FILE_DOCUMENT)
    }

    fn document(&self) -> Result<String, EngineError> {
        invalid(NO_PER_FILE_DOCUMENT)
    }
}

/// Calls `$f::<B>(args)` with the op's body type `B`.
macro_rules! with_body {
    ($op:expr, $f:ident($($arg:expr),*)) => {
        match $op {
            "stats" => $f::<StatsBody>($($arg),*),
            "count" => $f::<CountBody>($($arg),*),
            "checksum" => $f::<ChecksumBody>($($arg),*),
            "grep" => $f::<GrepBody>($($arg),*),
            "convert" => $f::<ConvertBody>($($arg),*),
            other => unknown_op(other),
        }
    };
}

/// `finalize(op, partial)`: the result document as JSON.
pub fn finalize(op: &str, p: &str) -> Result<String, EngineError> {
    with_body!(op, finalize_json(op, p))
}

/// An empty [`Fold`] for `op`'s partials.
pub fn aggregate(op: &str) -> Result<Box<dyn Fold>, EngineError> {
    with_body!(op, new_fold(op))
}

fn new_fold<B: Body + Sync + 'static>(op: &str) -> Result<Box<dyn Fold>, EngineError> {
    Ok(Box::new(Folded::<B>::new(op)))
}

/// A finished run's outcome; its partial's JSON text is made once, on first request.
pub struct Outcome {
    finished: Box<dyn Finished>,
    json: OnceLock<Result<Arc<String>, EngineError>>,
}

impl Outcome {
    pub fn partial_json(&self) -> Result<Arc<String>, EngineError> {
        self.json.get_or_init(|| self.finished.partial_json().map(Arc::new)).clone()
    }

    pub fn write_document(&self, out: &mut dyn Write) -> Result<(), EngineError> {
        self.finished.write_document(out)
    }

    pub fn document(&self) -> Result<String, EngineError> {
        self.finished.document()
    }
}

#[derive(Default)]
struct Shared {
    outcome: Mutex<Option<Result<Arc<Outcome>, EngineError>>>,
    cond: Condvar,
}

/// How long `wait` lets workers wind down after a cancel before raising anyway.
const CANCEL_GRACE: Duration = Duration::from_millis(40);

/// A run executing in the background on a dedicated pool of `threads` threads.
pub struct Job {
    ctl: Arc<Control>,
    shared: Arc<Shared>,
}

impl Job {
    /// Validates the request and starts it; returns at once.
    pub fn start(op: &str, options: &str, files: Vec<FileTask>, inputs: Inputs, threads: usize, per_file: bool) -> Result<Job, EngineError> {
        if threads < 1 {
            return invalid("threads must be >= 1");
        }
        let request = Request::parse(op, options)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pravah-worker-{i}"))
            .build()
            .map_err(|e| EngineError::Internal(format!("cannot start {threads} worker threads: {e}")))?;
        let bytes_total = files.iter().map(|f| f.size).sum();
        let ctl = Arc::new(Control::new(files.len() as u64, bytes_total));
        let shared = Arc::new(Shared::default());
        let (ctl2, shared2) = (ctl.clone(), shared.clone());
        std::thread::Builder::new()
            .name("pravah-run".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.install(|| request.run(&files, &inputs, &ctl2, per_file))
                        .map(|finished| Arc::new(Outcome { finished, json: OnceLock::new() }))
                }))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "worker panicked".to_string());
                    Err(EngineError::Internal(msg))
                });
                drop(pool);
                let mut g = shared2.outcome.lock().unwrap_or_else(|e| e.into_inner());
                *g = Some(result);
                shared2.cond.notify_all();
            })
            .map_err(|e| EngineError::Internal(format!("cannot start run thread: {e}")))?;
        Ok(Job { ctl, shared })
    }

    pub fn progress(&self) -> ProgressSnapshot {
        self.ctl.snapshot()
    }

    /// Asks the workers to stop; they check between chunks and buffers.
    pub fn cancel(&self) {
        self.ctl.cancel();
        let _g = self.shared.outcome.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.cond.notify_all();
    }

    pub fn is_done(&self) -> bool {
        self.shared.outcome.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Waits for the outcome. `None` when `timeout` elapsed first. After a
    /// cancel, returns `Err(Cancelled)` within a short grace period even if
    /// a worker is still finishing its current buffer.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<Result<Arc<Outcome>, EngineError>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut cancel_seen: Option<Instant> = None;
        let mut g = self.shared.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = g.as_ref() {
                return Some(match r {
                    Ok(outcome) if !self.ctl.is_cancelled() || cancel_seen.is_none() => Ok(outcome.clone()),
                    Ok(_) => Err(EngineError::Cancelled),
                    Err(e) => Err(e.clone()),
                });
            }
            let now = Instant::now();
            if self.ctl.is_cancelled() {
                let since = *cancel_seen.get_or_insert(now);
                if now >= since + CANCEL_GRACE {
                    return Some(Err(EngineError::Cancelled));
                }
            }
            let mut step = Duration::from_millis(10);
            if let Some(d) = deadline {
                if now >= d {
                    return None;
                }
                step = step.min(d - now);
            }
            g = self.shared.cond.wait_timeout(g, step).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // A dropped handle stops its run instead of burning CPU unobserved.
        if !self.is_done() {
            self.ctl.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-file partials merged in any grouping give the batch's result: what lets a later
    /// run reuse some files' partials and read only the others.
    #[test]
    fn per_file_partials_merge_to_the_batch_partial() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (i, body) in ["a,b\n1,x\n2,y\n", "a,b\n3,z\n", "a,b\n\"broken\n", "a,b\n4,x\n5,x\n6,w\n"].iter().enumerate() {
            let path = dir.path().join(format!("f{i}.csv"));
            std::fs::write(&path, body).unwrap();
            files.push(FileTask::new(path.to_string_lossy(), body.len() as u64));
        }
        let options = [("stats", "{}"), ("count", "{}"), ("checksum", "{}"), ("grep", r#"{"pattern": "x"}"#)];
        for (op, options) in options {
            let request = Request::parse(op, options).unwrap();
            let ctl = Control::default();
            let batch = request.run(&files, &Inputs::default(), &ctl, false).unwrap().partial_json().unwrap();
            let per_file: Vec<serde_json::Value> =
                serde_json::from_str(&request.run(&files, &Inputs::default(), &ctl, true).unwrap().partial_json().unwrap()).unwrap();
            assert_eq!(per_file.len(), files.len());
            for (partial, file) in per_file.iter().zip(&files) {
                assert_eq!(partial["files"], 1, "{op}: one file per partial");
                assert_eq!(partial["bytes"], file.size, "{op}: the file's own bytes");
            }
            let texts: Vec<String> = per_file.iter().map(|p| p.to_string()).collect();
            let folded = |parts: &[&str]| {
                let mut aggregate = aggregate(op).unwrap();
                parts.iter().for_each(|part| aggregate.add(part).unwrap());
                aggregate.partial().unwrap().unwrap()
            };
            let reused = folded(&[&texts[0], &texts[2]]);
            let new = folded(&[&texts[3], &texts[1]]);
            let merged = folded(&[&reused, &new]);
            assert_eq!(finalize(op, &merged).unwrap(), finalize(op, &batch).unwrap(), "{op}");

            // Folded split, the lists go with each partial's document and the aggregate
            // keeps the rest: its counters and body are the batch's.
            let mut split = aggregate(op).unwrap();
            let documents: Vec<serde_json::Value> =
                texts.iter().map(|text| serde_json::from_str(&split.add_split(text).unwrap()).unwrap()).collect();
            let errors: usize = documents.iter().map(|d| d["errors"].as_array().unwrap().len()).sum();
            let whole: serde_json::Value = serde_json::from_str(&finalize(op, &batch).unwrap()).unwrap();
            assert_eq!(errors, whole["errors"].as_array().unwrap().len(), "{op}: each error in its file's document");
            let kept: serde_json::Value = serde_json::from_str(&split.finalize().unwrap().unwrap()).unwrap();
            assert_eq!(kept["errors"], serde_json::json!([]), "{op}");
            assert_eq!((&kept["files"], &kept["bytes"]), (&whole["files"], &whole["bytes"]), "{op}");
        }
    }
}
