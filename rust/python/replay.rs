//! Python surface of the replay engine: `replay_start(...) -> ReplayHandle` (a job: it
//! answers `progress`, `wait`, `cancel` and `result` as job.rs's `Job` does, and dbgym/jobs.py
//! drives it) and `trace_from_statements`, a trace
//! built from explicit statements (programmatic workloads, tests, benches).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use numpy::{PyArray1, PyFixedString};
use pyo3::prelude::*;

use super::errors::{invalid, replay_error};
use super::trace::PyTrace;
use crate::replay::{self, Identity, ReplayError, ReplayHandle, ReplayOptions};
use crate::trace::{Session, Statement, Template, Trace};

/// A replay running on its own thread (the GIL is not held while it runs).
#[pyclass(name = "ReplayHandle", module = "dbgym._core", frozen)]
pub struct PyReplayHandle {
    inner: Mutex<ReplayHandle>,
    done: Arc<AtomicU64>,
    total: u64,
    cancel: Box<dyn Fn() + Send + Sync>,
}

#[pymethods]
impl PyReplayHandle {
    /// Statements finished so far.
    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    #[getter]
    fn total(&self) -> u64 {
        self.total
    }

    /// `[("statements", done, total)]`: the progress report every job gives (see job.rs).
    fn progress(&self) -> Vec<(String, u64, u64)> {
        vec![("statements".to_string(), self.done(), self.total)]
    }

    /// Asks the replay to stop (in-flight statements are cancelled on the server).
    fn cancel(&self) {
        (self.cancel)();
    }

    /// Waits up to `timeout` seconds (None: until the end) without holding the GIL;
    /// True once the replay has finished.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(invalid(format!(
                    "wait timeout must be a non-negative number of seconds, got {t}"
                )))
            }
            None => None,
        };
        Ok(py.detach(|| {
            let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            h.wait(timeout)
        }))
    }

    /// The result: numpy columns indexed like the trace's statements, and totals. Waits
    /// for the end; can be taken once.
    fn result(&self, py: Python<'_>) -> PyResult<PyReplayColumns> {
        let r = py.detach(|| {
            let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            h.take_result()
        });
        let r = r.map_err(replay_error)?;
        let codes: Vec<PyFixedString<5>> = r.sqlstate.into_iter().map(Into::into).collect();
        Ok(PyReplayColumns {
            template_id: PyArray1::from_vec(py, r.template_id).unbind(),
            session: PyArray1::from_vec(py, r.session).unbind(),
            connection: PyArray1::from_vec(py, r.connection).unbind(),
            scheduled_ns: PyArray1::from_vec(py, r.scheduled_ns).unbind(),
            start_ns: PyArray1::from_vec(py, r.start_ns).unbind(),
            end_ns: PyArray1::from_vec(py, r.end_ns).unbind(),
            sqlstate: PyArray1::from_vec(py, codes).unbind(),
            executed: r.executed,
            elapsed_ns: r.elapsed_ns,
            cancelled: r.cancelled,
        })
    }
}

/// What a replay recorded: per statement (indexed like the trace) its template, session,
/// connection slot (-1: did not run), scheduled/start/end times (ns since the replay clock
/// started; -1: did not run) and SQLSTATE (b"" on success or when it did not run); the
/// statements run, the elapsed time and whether the replay was cancelled.
#[pyclass(name = "ReplayColumns", module = "dbgym._core", frozen, get_all)]
pub struct PyReplayColumns {
    template_id: Py<PyArray1<u32>>,
    session: Py<PyArray1<u32>>,
    connection: Py<PyArray1<i32>>,
    scheduled_ns: Py<PyArray1<i64>>,
    start_ns: Py<PyArray1<i64>>,
    end_ns: Py<PyArray1<i64>>,
    sqlstate: Py<PyArray1<PyFixedString<5>>>,
    executed: u64,
    elapsed_ns: i64,
    cancelled: bool,
}

#[pymethods]
impl PyReplayColumns {
    fn __repr__(&self) -> String {
        format!(
            "ReplayColumns(executed={}, elapsed_ns={}, cancelled={})",
            self.executed, self.elapsed_ns, self.cancelled
        )
    }
}

/// Starts a replay; see dbgym/replayer/run.py for the meaning of the options.
#[pyfunction]
#[pyo3(signature = (trace, dsn, *, speed=None, concurrency=None, statement_timeout_ms=None,
                    template_settings=None, threads=None, identity="dsn"))]
#[allow(clippy::too_many_arguments)]
fn replay_start(
    trace: &PyTrace,
    dsn: &str,
    speed: Option<f64>,
    concurrency: Option<usize>,
    statement_timeout_ms: Option<u64>,
    template_settings: Option<HashMap<u32, HashMap<String, String>>>,
    threads: Option<usize>,
    identity: &str,
) -> PyResult<PyReplayHandle> {
    let identity = match identity {
        "dsn" => Identity::Dsn,
        "logged" => Identity::Logged,
        other => {
            return Err(replay_error(ReplayError::InvalidOption(format!(
                "identity must be 'dsn' or 'logged', got {other:?}"
            ))))
        }
    };
    let template_settings = template_settings
        .unwrap_or_default()
        .into_iter()
        .map(|(id, kv)| {
            let mut pairs: Vec<(String, String)> = kv.into_iter().collect();
            pairs.sort();
            (id, pairs)
        })
        .collect();
    let opts = ReplayOptions {
        speed,
        concurrency,
        statement_timeout_ms,
        template_settings,
        threads,
        identity,
    };
    let handle = replay::start(trace.inner.clone(), dsn, opts).map_err(replay_error)?;
    Ok(PyReplayHandle {
        done: handle.done_counter(),
        total: handle.total(),
        cancel: Box::new(handle.canceller()),
        inner: Mutex::new(handle),
    })
}

/// Builds a trace from explicit statements. Sessions are the distinct `session_ids` in
/// order of first appearance; templates are `template_ids` when given, else one per
/// distinct SQL text. `params[i]` (text values, None = NULL) makes statement i an
/// extended-protocol one.
#[pyfunction]
#[pyo3(signature = (session_ids, timestamps_us, sql, params=None, template_ids=None))]
fn trace_from_statements(
    session_ids: Vec<String>,
    timestamps_us: Vec<i64>,
    sql: Vec<String>,
    params: Option<Vec<Vec<Option<String>>>>,
    template_ids: Option<Vec<u32>>,
) -> PyResult<PyTrace> {
    let n = sql.len();
    let bad = |what: &str, len: usize| {
        invalid(format!(
            "trace_from_statements: {what} has {len} entries but sql has {n}"
        ))
    };
    if session_ids.len() != n {
        return Err(bad("session_ids", session_ids.len()));
    }
    if timestamps_us.len() != n {
        return Err(bad("timestamps_us", timestamps_us.len()));
    }
    if let Some(p) = &params {
        if p.len() != n {
            return Err(bad("params", p.len()));
        }
    }
    if let Some(t) = &template_ids {
        if t.len() != n {
            return Err(bad("template_ids", t.len()));
        }
        if let Some(max) = t.iter().max() {
            if *max as usize > n {
                return Err(invalid(format!(
                    "trace_from_statements: template id {max} is larger than the statement count {n}"
                )));
            }
        }
    }
    let mut trace = Trace::default();
    let mut session_index: HashMap<String, u32> = HashMap::new();
    let mut template_index: HashMap<String, u32> = HashMap::new();
    let mut params = params.map(|p| p.into_iter());
    for (i, (sid, (ts, text))) in session_ids
        .into_iter()
        .zip(timestamps_us.into_iter().zip(sql))
        .enumerate()
    {
        let next = trace.sessions.len() as u32;
        let session = *session_index.entry(sid.clone()).or_insert_with(|| {
            trace.sessions.push(Session {
                id: sid,
                user: String::new(),
                database: String::new(),
            });
            next
        });
        let template_id = match &template_ids {
            Some(t) => t[i],
            None => {
                let next = template_index.len() as u32;
                *template_index.entry(text.clone()).or_insert(next)
            }
        };
        let tid = template_id as usize;
        if trace.templates.len() <= tid {
            trace.templates.resize_with(tid + 1, || Template {
                id: 0,
                text: String::new(),
                count: 0,
            });
        }
        let t = &mut trace.templates[tid];
        if t.count == 0 {
            t.id = template_id;
            t.text = text.clone();
        }
        t.count += 1;
        trace.statements.push(Statement {
            session,
            timestamp_us: ts,
            template_id,
            sql: text,
            params: params.as_mut().and_then(|p| p.next()).unwrap_or_default(),
            duration_us: None,
        });
    }
    for (i, t) in trace.templates.iter_mut().enumerate() {
        t.id = i as u32;
    }
    Ok(PyTrace {
        inner: Arc::new(trace),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReplayHandle>()?;
    m.add_class::<PyReplayColumns>()?;
    m.add_function(wrap_pyfunction!(replay_start, m)?)?;
    m.add_function(wrap_pyfunction!(trace_from_statements, m)?)?;
    Ok(())
}
