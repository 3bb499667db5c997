//! Python surface of traces: the `dbgym._core.Trace` class, `ParseStats`, and the source
//! readers `parse_log`, `parse_sql`, `templatize`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::{invalid, trace_error};
use super::job::{PyJob, Report};
use crate::trace::reader::{parse_log as parse_log_file, Format, LogOptions, ParseStats};
use crate::trace::{codec, parse_sql as parse_sql_path, templatize as templatize_sql, Trace};

/// An immutable workload trace held by Rust. Python code wraps it in `dbgym.Workload`.
#[pyclass(name = "Trace", module = "dbgym._core", frozen)]
pub struct PyTrace {
    pub inner: Arc<Trace>,
}

impl PyTrace {
    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.inner.statements.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!(
                "statement index {i} out of range for {n} statements"
            )));
        }
        Ok(j as usize)
    }
}

#[pymethods]
impl PyTrace {
    /// The trace in a compact binary form (columns and text arenas; see
    /// rust/trace/codec.rs), read back by `Trace.from_bytes` without parsing anything.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let inner = self.inner.clone();
        let bytes = py.detach(move || codec::encode(&inner)).map_err(invalid)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The trace `data` (from `Trace.to_bytes`) holds; InvalidArgumentError if it holds none.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyTrace> {
        let trace = py
            .detach(|| codec::decode(data))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(PyTrace {
            inner: Arc::new(trace),
        })
    }

    /// Pickles as its `to_bytes` form: a worker process gets the trace without re-parsing
    /// the log it came from.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        Ok((from_bytes, (slf.get().to_bytes(slf.py())?,)))
    }

    fn __len__(&self) -> usize {
        self.inner.statements.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Trace({} statements, {} sessions, {} templates)",
            self.inner.statements.len(),
            self.inner.sessions.len(),
            self.inner.templates.len()
        )
    }

    /// Templates as `(id, text, count)`, by id.
    fn templates(&self) -> Vec<(u32, String, u64)> {
        self.inner
            .templates
            .iter()
            .map(|t| (t.id, t.text.clone(), t.count))
            .collect()
    }

    /// Sessions as `(id, user, database)`, by index.
    fn sessions(&self) -> Vec<(String, String, String)> {
        self.inner
            .sessions
            .iter()
            .map(|s| (s.id.clone(), s.user.clone(), s.database.clone()))
            .collect()
    }

    fn template_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_vec(
            py,
            self.inner
                .statements
                .iter()
                .map(|s| s.template_id)
                .collect(),
        )
    }

    fn session_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_vec(
            py,
            self.inner.statements.iter().map(|s| s.session).collect(),
        )
    }

    fn timestamps_us<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(
            py,
            self.inner
                .statements
                .iter()
                .map(|s| s.timestamp_us)
                .collect(),
        )
    }

    /// Logged durations in microseconds, -1 where the log had none.
    fn durations_us<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(
            py,
            self.inner
                .statements
                .iter()
                .map(|s| s.duration_us.unwrap_or(-1))
                .collect(),
        )
    }

    /// Statement `i` (negative counts from the end).
    fn statement(&self, i: isize) -> PyResult<PyStatement> {
        let s = &self.inner.statements[self.index(i)?];
        Ok(PyStatement {
            session: s.session,
            timestamp_us: s.timestamp_us,
            template_id: s.template_id,
            sql: s.sql.clone(),
            params: s.params.clone(),
            duration_us: s.duration_us,
        })
    }

    /// The constants of statement `i` as written in its text (`$n` for parameters).
    fn constants(&self, i: isize) -> PyResult<Vec<String>> {
        let s = &self.inner.statements[self.index(i)?];
        Ok(templatize_sql(&s.sql).1)
    }

    /// `n` statements drawn without replacement (reproducible with `seed`), in trace order.
    fn sample(&self, py: Python<'_>, n: usize, seed: u64) -> PyTrace {
        let inner = self.inner.clone();
        PyTrace {
            inner: Arc::new(py.detach(move || inner.sample(n, seed))),
        }
    }

    /// The statements at `indices` (an int sequence or numpy array), in that order.
    fn subset(&self, indices: Vec<i64>) -> PyResult<PyTrace> {
        let n = self.inner.statements.len() as i64;
        let mut idx = Vec::with_capacity(indices.len());
        for i in indices {
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(PyIndexError::new_err(format!(
                    "statement index {i} out of range for {n} statements"
                )));
            }
            idx.push(j as usize);
        }
        Ok(PyTrace {
            inner: Arc::new(self.inner.subset(&idx)),
        })
    }
}

/// One statement of a trace: its session (index into `Trace.sessions()`), start time
/// (microseconds), template id, text, extended-protocol parameters (text, None = NULL; empty
/// for the simple protocol) and logged duration (microseconds, None if not logged).
#[pyclass(name = "Statement", module = "dbgym._core", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct PyStatement {
    session: u32,
    timestamp_us: i64,
    template_id: u32,
    sql: String,
    params: Vec<Option<String>>,
    duration_us: Option<i64>,
}

#[pymethods]
impl PyStatement {
    #[new]
    #[pyo3(signature = (session, timestamp_us, template_id, sql, params=Vec::new(), duration_us=None))]
    fn new(
        session: u32,
        timestamp_us: i64,
        template_id: u32,
        sql: String,
        params: Vec<Option<String>>,
        duration_us: Option<i64>,
    ) -> Self {
        PyStatement {
            session,
            timestamp_us,
            template_id,
            sql,
            params,
            duration_us,
        }
    }

    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> (
        Bound<'py, pyo3::types::PyType>,
        (u32, i64, u32, String, Vec<Option<String>>, Option<i64>),
    ) {
        let s = slf.get();
        (
            slf.get_type(),
            (
                s.session,
                s.timestamp_us,
                s.template_id,
                s.sql.clone(),
                s.params.clone(),
                s.duration_us,
            ),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "Statement(session={}, timestamp_us={}, template_id={}, sql={:?}, params={:?}, duration_us={:?})",
            self.session, self.timestamp_us, self.template_id, self.sql, self.params, self.duration_us
        )
    }
}

/// What reading a log saw besides the statements.
#[pyclass(name = "ParseStats", module = "dbgym._core", frozen, get_all)]
pub struct PyParseStats {
    format: String,
    log_line_prefix: Option<String>,
    bytes: u64,
    records: u64,
    skipped_lines: u64,
    first_skipped: Option<String>,
}

#[pymethods]
impl PyParseStats {
    fn __repr__(&self) -> String {
        format!(
            "ParseStats(format={:?}, bytes={}, records={}, skipped_lines={})",
            self.format, self.bytes, self.records, self.skipped_lines
        )
    }
}

impl From<ParseStats> for PyParseStats {
    fn from(s: ParseStats) -> Self {
        PyParseStats {
            format: s.format.name().to_string(),
            log_line_prefix: s.log_line_prefix,
            bytes: s.bytes,
            records: s.records,
            skipped_lines: s.skipped_lines,
            first_skipped: s.first_skipped,
        }
    }
}

/// Starts reading a PostgreSQL server log (stderr, csvlog or jsonlog) into a trace, as a
/// `Job` whose result is `(Trace, ParseStats)` and whose progress is the log's bytes.
#[pyfunction]
#[pyo3(signature = (path, format=None, log_line_prefix=None, lenient=false, threads=0))]
fn parse_log_start(
    path: PathBuf,
    format: Option<&str>,
    log_line_prefix: Option<String>,
    lenient: bool,
    threads: usize,
) -> PyResult<PyJob> {
    let format = match format {
        None => None,
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            invalid(format!(
                "unknown log format {name:?}: use 'stderr', 'csvlog' or 'jsonlog'"
            ))
        })?),
    };
    let opts = LogOptions {
        format,
        log_line_prefix,
        lenient,
        threads,
        ..LogOptions::default()
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let report: Report = {
        let bytes = bytes.clone();
        Box::new(move || {
            vec![(
                name.clone(),
                bytes.0.load(Ordering::Relaxed),
                bytes.1.load(Ordering::Relaxed),
            )]
        })
    };
    let stop = cancel.clone();
    PyJob::spawn("parse", cancel, report, move || {
        let mut on_block = |done: u64, total: u64| -> bool {
            bytes.0.store(done, Ordering::Relaxed);
            bytes.1.store(total, Ordering::Relaxed);
            !stop.load(Ordering::Relaxed)
        };
        let result = parse_log_file(&path, &opts, &mut on_block);
        Box::new(move |py: Python<'_>| match result {
            Ok((trace, stats)) => {
                let trace = PyTrace {
                    inner: Arc::new(trace),
                };
                let stats: PyParseStats = stats.into();
                Ok((trace, stats).into_pyobject(py)?.into_any().unbind())
            }
            Err(e) => Err(trace_error(e)),
        })
    })
}

/// Read a `.sql` file (`;`-separated statements) or a directory of them into a trace.
#[pyfunction]
fn parse_sql(py: Python<'_>, path: PathBuf) -> PyResult<PyTrace> {
    match py.detach(|| parse_sql_path(&path)) {
        Ok(t) => Ok(PyTrace { inner: Arc::new(t) }),
        Err(e) => Err(trace_error(e)),
    }
}

/// Template text and constants of one statement.
#[pyfunction]
fn templatize(sql: &str) -> (String, Vec<String>) {
    templatize_sql(sql)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTrace>()?;
    m.add_class::<PyStatement>()?;
    m.add_class::<PyParseStats>()?;
    m.add_function(wrap_pyfunction!(parse_log_start, m)?)?;
    m.add_function(wrap_pyfunction!(parse_sql, m)?)?;
    m.add_function(wrap_pyfunction!(templatize, m)?)?;
    Ok(())
}
