//! One mechanism for long-running, cancellable work with progress: a `Job` runs on a thread
//! of its own while Python polls it (`progress()`, `wait(timeout)` with the GIL released),
//! cancels it, and takes its result once. Log parsing and the TPC-H load are jobs; the
//! replay's `ReplayHandle` answers the same calls. dbgym/jobs.py drives all of them (progress
//! bars, Ctrl-C).
//!
//! The work returns an [`Outcome`]: a closure that builds the Python result (or error) once
//! `result()` holds the GIL, so the thread never needs Python. A panic in the work becomes
//! a `WorkloadError` naming the job, never an abort.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::errors::{invalid, workload_error};

/// Builds the job's Python result (or raises its error) with the GIL held.
pub type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// The job's progress, read at any time: (item, done, total) per item.
pub type Report = Box<dyn Fn() -> Vec<(String, u64, u64)> + Send + Sync>;

#[derive(Default)]
struct Finish {
    outcome: Mutex<Option<Outcome>>,
    finished: Mutex<bool>,
    changed: Condvar,
}

impl Finish {
    fn set(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits until finished or `timeout` passed; true when finished.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        while !*finished {
            match deadline {
                None => {
                    finished = self
                        .changed
                        .wait(finished)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    finished = self
                        .changed
                        .wait_timeout(finished, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }
}

/// Long-running work on its own thread (see the module docs).
#[pyclass(name = "Job", module = "dbgym._core", frozen)]
pub struct PyJob {
    kind: &'static str,
    cancel: Arc<AtomicBool>,
    report: Report,
    finish: Arc<Finish>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PyJob {
    /// Runs `work` on a new thread. `cancel` is the flag the work checks (set by
    /// `cancel()`); `report` reads its progress.
    pub fn spawn<W>(
        kind: &'static str,
        cancel: Arc<AtomicBool>,
        report: Report,
        work: W,
    ) -> PyResult<Self>
    where
        W: FnOnce() -> Outcome + Send + 'static,
    {
        let finish = Arc::new(Finish::default());
        let done = finish.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dbgym-{kind}"))
            .spawn(move || {
                let outcome = panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_string());
                    Box::new(move |_py: Python<'_>| {
                        Err(workload_error(format!("the {kind} job failed: {what}")))
                    }) as Outcome
                });
                done.set(outcome);
            })
            .map_err(|e| workload_error(format!("cannot start the {kind} job's thread: {e}")))?;
        Ok(Self {
            kind,
            cancel,
            report,
            finish,
            thread: Mutex::new(Some(thread)),
        })
    }
}

#[pymethods]
impl PyJob {
    /// What the job does ("parse", "load").
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// True once the work has finished (successfully or not).
    #[getter]
    fn done(&self) -> bool {
        *self
            .finish
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// (item, done, total) per item of work: bytes of a log, rows per table.
    fn progress(&self) -> Vec<(String, u64, u64)> {
        (self.report)()
    }

    /// Asks the work to stop; `result()` then raises (the work ends at its next check).
    fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits up to `timeout` seconds (None: until the end) without holding the GIL;
    /// True once the job has finished.
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
        Ok(py.detach(|| self.finish.wait(timeout)))
    }

    /// The job's result (waiting for the end, without the GIL), or its error; once.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        py.detach(|| {
            self.finish.wait(None);
            let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(t) = thread {
                let _ = t.join();
            }
        });
        let outcome = self
            .finish
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match outcome {
            Some(build) => build(py),
            None => Err(invalid(format!(
                "the {} job's result was already taken",
                self.kind
            ))),
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.done() { "done" } else { "running" };
        format!("<Job {} {state}>", self.kind)
    }
}

impl Drop for PyJob {
    /// A job dropped unfinished is cancelled and joined, so no work outlives its handle.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJob>()?;
    Ok(())
}
