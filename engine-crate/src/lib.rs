//! Python bindings: a thin layer over `pravah_core`.
//!
//! Every call that touches files or waits releases the interpreter lock.
//! Engine errors map to Python exceptions: an invalid request (op, option or
//! argument) raises `pravah_engine.UsageError`, a `ValueError`; other invalid
//! data (a corrupt partial) raises `ValueError`; a cancelled run raises
//! `pravah_engine.Cancelled`; internal failures raise `RuntimeError`.

use std::collections::HashMap;
use std::time::Duration;

use pravah_core::{locate, EngineError, FileTask, Inputs, Job, Outcome, S3Config, ScanOptions, MAX_BAD_ROWS, MAX_HEADER_ROWS, MAX_MATCHES_PER_FILE, MAX_TRIMMED_LINES};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

create_exception!(pravah_engine, Cancelled, PyException, "The run was cancelled.");
create_exception!(
    pravah_engine,
    UsageError,
    PyValueError,
    "The request is invalid (op, option or argument); retrying cannot help."
);

fn to_py(e: EngineError) -> PyErr {
    match e {
        EngineError::Invalid(m) => PyValueError::new_err(m),
        EngineError::Cancelled => Cancelled::new_err("run cancelled"),
        EngineError::Internal(m) => PyRuntimeError::new_err(format!("engine failure: {m}")),
    }
}

/// For calls whose `Invalid` errors can only come from the request itself.
fn usage_to_py(e: EngineError) -> PyErr {
    match e {
        EngineError::Invalid(m) => UsageError::new_err(m),
        other => to_py(other),
    }
}

type ScanOutput = (Vec<(String, u64)>, Vec<(String, String)>);

/// Where objects are read: the `s3` argument of `scan` and `start`, a dict
/// with any of endpoint, region, access_key_id, secret_access_key and
/// session_token (unset ones come from the `AWS_*` environment variables).
fn s3_config(s3: HashMap<String, String>) -> Result<S3Config, EngineError> {
    let mut config = S3Config::default();
    for (key, value) in s3 {
        let field = match key.as_str() {
            "endpoint" => &mut config.endpoint,
            "region" => &mut config.region,
            "access_key_id" => &mut config.access_key_id,
            "secret_access_key" => &mut config.secret_access_key,
            "session_token" => &mut config.session_token,
            other => return Err(EngineError::Invalid(format!("s3: unknown setting '{other}'"))),
        };
        *field = Some(value);
    }
    Ok(config)
}

/// Lists the regular files under `root` (sorted by path) and the problems met.
/// With `s3`, `root` is `s3://bucket/prefix` and the objects under it are listed.
#[pyfunction]
#[pyo3(signature = (root, include = Vec::new(), exclude = Vec::new(), follow_symlinks = false, s3 = None))]
fn scan(
    py: Python<'_>,
    root: String,
    include: Vec<String>,
    exclude: Vec<String>,
    follow_symlinks: bool,
    s3: Option<HashMap<String, String>>,
) -> PyResult<ScanOutput> {
    let opts = ScanOptions { include, exclude, follow_symlinks };
    let r = py
        .detach(|| match s3 {
            None => pravah_core::scan(&root, &opts),
            Some(s3) => {
                let (bucket, prefix) = locate(&root, &s3_config(s3)?)?;
                bucket.list(&prefix, &opts)
            }
        })
        .map_err(usage_to_py)?;
    Ok((r.files, r.errors))
}

/// The inputs of a run: files under `root`, or with `s3` the objects of the
/// bucket `root` (`s3://bucket/...`) names.
fn inputs(root: Option<&str>, follow_symlinks: bool, s3: Option<HashMap<String, String>>) -> Result<Inputs, EngineError> {
    match (s3, root) {
        (None, _) => Inputs::new(root, follow_symlinks),
        (Some(s3), Some(url)) => Ok(Inputs::objects(locate(url, &s3_config(s3)?)?.0)),
        (Some(_), None) => Err(EngineError::Invalid("s3: needs root, the s3://bucket/prefix read".into())),
    }
}

/// A run executing in the background.
#[pyclass(name = "Run", frozen, module = "pravah_engine")]
struct Run {
    job: Job,
}

#[pymethods]
impl Run {
    /// Counters: files_total, files_done, bytes_total, bytes_done, errors.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.job.progress();
        let d = PyDict::new(py);
        d.set_item("files_total", p.files_total)?;
        d.set_item("files_done", p.files_done)?;
        d.set_item("bytes_total", p.bytes_total)?;
        d.set_item("bytes_done", p.bytes_done)?;
        d.set_item("errors", p.errors)?;
        Ok(d)
    }

    /// Asks the run to stop; `wait()` then raises `Cancelled`.
    fn cancel(&self) {
        self.job.cancel();
    }

    /// Waits for the partial (JSON). Returns None if `timeout` seconds elapse first.
    #[pyo3(signature = (timeout = None))]
    fn wait<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Bound<'py, PyString>>> {
        let timeout = match timeout {
            Some(t) if t.is_nan() => return Err(PyValueError::new_err("timeout must be a number")),
            Some(t) => Some(Duration::from_secs_f64(t.clamp(0.0, 1e9))),
            None => None,
        };
        let job = &self.job;
        match py.detach(|| job.wait(timeout).map(|r| r.and_then(|outcome| outcome.partial_json()))) {
            None => Ok(None),
            Some(Ok(text)) => Ok(Some(PyString::new(py, &text))),
            Some(Err(e)) => Err(to_py(e)),
        }
    }

    /// Waits for the run and gives its result document (JSON), as `finalize` of its
    /// partial would, but written from the engine's own values: no partial text is made,
    /// copied and parsed again first. With `path`, the document goes to that file (and
    /// None is returned) without being held in memory whole.
    #[pyo3(signature = (path = None))]
    fn result<'py>(&self, py: Python<'py>, path: Option<std::path::PathBuf>) -> PyResult<Option<Bound<'py, PyString>>> {
        let job = &self.job;
        let outcome = py.detach(|| job.wait(None)).expect("a wait without a timeout ends with the run").map_err(to_py)?;
        match path {
            None => {
                let text = py.detach(|| outcome.document()).map_err(usage_to_py)?;
                Ok(Some(PyString::new(py, &text)))
            }
            Some(path) => {
                py.detach(|| write_document_file(&outcome, &path))?;
                Ok(None)
            }
        }
    }

    /// True once the run has finished (successfully or not).
    #[getter]
    fn done(&self) -> bool {
        self.job.is_done()
    }
}

/// Writes a run's result document to `path`. A document that cannot be written whole
/// leaves no file behind: a misused run raises `UsageError`, the file's own errors `OSError`.
fn write_document_file(outcome: &Outcome, path: &std::path::Path) -> PyResult<()> {
    let named = |e: std::io::Error| PyErr::from(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())));
    let file = std::fs::File::create(path).map_err(named)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let written = outcome
        .write_document(&mut out)
        .map_err(|e| match e {
            EngineError::Internal(m) => PyOSError::new_err(format!("{}: {m}", path.display())),
            other => usage_to_py(other),
        })
        .and_then(|()| out.into_inner().map(drop).map_err(|e| named(e.into_error())));
    if written.is_err() {
        let _ = std::fs::remove_file(path); // only ever the file made above
    }
    written
}

/// Validates the request and starts it on a pool of `threads` threads. Files
/// are opened under `root` (the scanned directory), following symbolic links
/// only if `follow_symlinks`, and never to a file outside `root`; with `s3`
/// (see `scan`), files are objects named `s3://bucket/key`. With `per_file`,
/// the outcome is a JSON array of one partial per file, in order.
#[pyfunction]
#[pyo3(signature = (op, options_json, files, threads, root = None, follow_symlinks = false, per_file = false, s3 = None))]
#[allow(clippy::too_many_arguments)]
fn start(
    py: Python<'_>,
    op: &str,
    options_json: &str,
    files: Vec<(String, u64)>,
    threads: i64,
    root: Option<String>,
    follow_symlinks: bool,
    per_file: bool,
    s3: Option<HashMap<String, String>>,
) -> PyResult<Run> {
    if threads < 1 {
        return Err(UsageError::new_err("threads must be >= 1"));
    }
    let files: Vec<FileTask> = files.into_iter().map(|(p, s)| FileTask { path: p, size: s }).collect();
    let job = py
        .detach(|| Job::start(op, options_json, files, inputs(root.as_deref(), follow_symlinks, s3)?, threads as usize, per_file))
        .map_err(usage_to_py)?;
    Ok(Run { job })
}

/// Validates `op` and its options exactly as `start` does (the grep pattern is
/// compiled with the same flags), without running anything. Raises `UsageError`.
#[pyfunction]
fn check_options(py: Python<'_>, op: &str, options_json: &str) -> PyResult<()> {
    py.detach(|| pravah_core::check_options(op, options_json)).map_err(usage_to_py)
}

/// Turns a partial into the result document (JSON).
#[pyfunction]
fn finalize(py: Python<'_>, op: &str, partial_json: &str) -> PyResult<String> {
    py.detach(|| pravah_core::finalize(op, partial_json)).map_err(to_py)
}

/// Partials of one op folded one at a time into one the engine holds, each parsed once
/// (a merge of many partials through JSON texts would write and parse the aggregate again
/// at every step). A partial that fails to merge makes every later call fail too.
#[pyclass(name = "Aggregate", module = "pravah_engine")]
struct Aggregate {
    fold: Box<dyn pravah_core::Fold>,
}

#[pymethods]
impl Aggregate {
    #[new]
    fn new(op: &str) -> PyResult<Self> {
        Ok(Aggregate { fold: pravah_core::aggregate(op).map_err(usage_to_py)? })
    }

    /// Folds in a partial (JSON), whole.
    fn add(&mut self, py: Python<'_>, partial: &str) -> PyResult<()> {
        let fold = &mut self.fold;
        py.detach(|| fold.add(partial)).map_err(to_py)
    }

    /// Folds in a partial without its errors and per-file list, and returns its result
    /// document (JSON), which has them: what a merge of many partials spools to disk.
    fn add_split(&mut self, py: Python<'_>, partial: &str) -> PyResult<String> {
        let fold = &mut self.fold;
        py.detach(|| fold.add_split(partial)).map_err(to_py)
    }

    /// The aggregate as partial JSON; None before the first partial.
    fn partial(&self, py: Python<'_>) -> PyResult<Option<String>> {
        py.detach(|| self.fold.partial()).map_err(to_py)
    }

    /// The aggregate's result document (JSON); None before the first partial.
    fn finalize(&self, py: Python<'_>) -> PyResult<Option<String>> {
        py.detach(|| self.fold.finalize()).map_err(to_py)
    }
}

/// CPUs usable by this process (affinity and cgroup quota honoured).
#[pyfunction]
fn threads_available() -> usize {
    pravah_core::sys::threads_available()
}

/// Pravah's file processing engine.
#[pymodule]
mod pravah_engine {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{check_options, finalize, scan, start, threads_available, Aggregate, Run};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("Cancelled", m.py().get_type::<super::Cancelled>())?;
        m.add("UsageError", m.py().get_type::<super::UsageError>())?;
        m.add("MAX_MATCHES_PER_FILE", super::MAX_MATCHES_PER_FILE)?;
        m.add("MAX_BAD_ROWS", super::MAX_BAD_ROWS)?;
        m.add("MAX_TRIMMED_LINES", super::MAX_TRIMMED_LINES)?;
        m.add("MAX_HEADER_ROWS", super::MAX_HEADER_ROWS)?;
        Ok(())
    }
}
