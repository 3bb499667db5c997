//! Replays a [`Trace`] against a PostgreSQL server (tokio + tokio-postgres) and records,
//! for every statement, when it was scheduled, started and ended, and its SQLSTATE.
//!
//! - One connection per logged session (or at most `concurrency` connections, sessions
//!   multiplexed onto them between transactions); each session's statements run in order.
//! - `speed = Some(f)`: each statement waits for its absolute deadline
//!   `base + (ts - t0) / f` on a sub-millisecond timer ([`timer`]); `None`: as fast as possible.
//! - Statements without parameters use the simple protocol, statements with parameters the
//!   extended protocol (prepared once per connection, parameters sent as text).
//! - Failed statements are recorded with their SQLSTATE and the replay goes on; each task
//!   writes its statements' results straight into shared columns (record.rs).
//!
//! Modules: engine.rs schedules (session tasks, or the worker pool of pool.rs) by the
//! replay clock (clock.rs); conn.rs runs statements on one connection; txn.rs tracks
//! transaction blocks; shards.rs holds the connection threads; timer.rs the sub-millisecond
//! timer; cancel.rs cancels in-flight statements; sqlstate.rs has the recorded codes.
//!
//! The replay runs on its own thread and runtime ([`start`] returns a [`ReplayHandle`] that
//! can be polled for progress, waited on with a timeout, and cancelled).

mod cancel;
mod clock;
mod conn;
mod engine;
mod options;
mod pool;
mod record;
mod shards;
mod sqlstate;
mod timer;
mod txn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use options::{Identity, ReplayOptions};
pub use sqlstate::{Code, OK};
pub use txn::{txn_effect, TxnEffect};

use crate::dsn::ConnectFailure;
use crate::trace::Trace;
use cancel::Cancel;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid replay option: {0}")]
    InvalidOption(String),
    /// The DSN does not parse; the message names it with its password masked.
    #[error("{0}")]
    InvalidDsn(String),
    #[error("cannot connect to the replay target {0}")]
    Connect(Box<ConnectFailure>),
    #[error("invalid trace: {0}")]
    InvalidTrace(String),
    #[error("replay failed: {0}")]
    Internal(String),
}

/// Per-statement results, indexed like `trace.statements` (columnar).
#[derive(Debug, Clone, Default)]
pub struct ReplayResult {
    pub template_id: Vec<u32>,
    pub session: Vec<u32>,
    /// Connection slot that ran the statement: the session index (one connection per
    /// session) or the worker index (`concurrency = Some(k)`); -1 if it did not run.
    pub connection: Vec<i32>,
    /// Nanoseconds since the replay clock started (after the initial connections): the
    /// deadline for a timed replay; the statement's unscaled offset in the trace for an
    /// as-fast-as-possible replay.
    pub scheduled_ns: Vec<i64>,
    /// Start and end (ns since the replay clock started); -1 if the statement did not run.
    pub start_ns: Vec<i64>,
    pub end_ns: Vec<i64>,
    /// SQLSTATE of a failed statement, all zero bytes on success or when it did not run.
    pub sqlstate: Vec<Code>,
    /// Statements that ran (successfully or not).
    pub executed: u64,
    /// Time from the replay clock's start to the last statement's end (ns).
    pub elapsed_ns: i64,
    pub cancelled: bool,
}

/// A running replay.
pub struct ReplayHandle {
    done: Arc<AtomicU64>,
    total: u64,
    cancel: Arc<Cancel>,
    rx: mpsc::Receiver<Result<ReplayResult, ReplayError>>,
    outcome: Option<Result<ReplayResult, ReplayError>>,
    thread: Option<JoinHandle<()>>,
}

impl ReplayHandle {
    /// Statements finished so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The counter behind [`ReplayHandle::done`], readable from any thread.
    pub fn done_counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Asks the replay to stop: in-flight statements are cancelled on the server,
    /// connections closed. `wait` then returns the partial result.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that can cancel this replay from another thread.
    pub fn canceller(&self) -> impl Fn() + Send + Sync + 'static {
        let c = self.cancel.clone();
        move || c.cancel()
    }

    /// Waits for the end (at most `timeout`); true once the replay has finished.
    pub fn wait(&mut self, timeout: Option<Duration>) -> bool {
        if self.outcome.is_some() {
            return true;
        }
        let got = match timeout {
            None => self.rx.recv().map_err(|_| false),
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => true,
                mpsc::RecvTimeoutError::Disconnected => false,
            }),
        };
        let outcome = match got {
            Ok(r) => r,
            Err(true) => return false,
            Err(false) => Err(ReplayError::Internal(
                "the replay thread ended without a result".into(),
            )),
        };
        self.outcome = Some(outcome);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        true
    }

    /// Waits for the end and returns the result (once).
    pub fn take_result(&mut self) -> Result<ReplayResult, ReplayError> {
        self.wait(None);
        self.outcome
            .take()
            .unwrap_or_else(|| Err(ReplayError::Internal("the result was already taken".into())))
    }
}

impl Drop for ReplayHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.cancel.cancel();
            self.wait(None);
        }
    }
}

fn check_trace(trace: &Trace) -> Result<(), ReplayError> {
    let (ns, nt) = (trace.sessions.len(), trace.templates.len());
    for (i, st) in trace.statements.iter().enumerate() {
        if st.session as usize >= ns {
            return Err(ReplayError::InvalidTrace(format!(
                "statement {i} has session {} but the trace has {ns} sessions",
                st.session
            )));
        }
        if st.template_id as usize >= nt {
            return Err(ReplayError::InvalidTrace(format!(
                "statement {i} has template {} but the trace has {nt} templates",
                st.template_id
            )));
        }
    }
    if trace.statements.len() > u32::MAX as usize {
        return Err(ReplayError::InvalidTrace(
            "more than 2^32 statements".into(),
        ));
    }
    Ok(())
}

/// Connection threads when not given: one per connection (like `pgbench -j` = clients), at
/// least the machine's parallelism when there are that many connections, at most
/// [`MAX_DEFAULT_THREADS`].
fn default_threads(concurrency: Option<usize>, sessions: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let connections = concurrency.unwrap_or(sessions).max(1);
    connections.min(MAX_DEFAULT_THREADS.max(cores))
}

const MAX_DEFAULT_THREADS: usize = 8;

/// Starts replaying `trace` against `dsn` (a libpq URI or key=value string) on a new
/// thread. Options and the DSN are checked before anything starts; connection problems
/// of the first (probe) connection come back from [`ReplayHandle::take_result`].
pub fn start(
    trace: Arc<Trace>,
    dsn: &str,
    opts: ReplayOptions,
) -> Result<ReplayHandle, ReplayError> {
    opts.validate(trace.templates.len())?;
    check_trace(&trace)?;
    let cfg = crate::dsn::parse(dsn).map_err(ReplayError::InvalidDsn)?;
    let threads = opts
        .threads
        .unwrap_or_else(|| default_threads(opts.concurrency, trace.sessions.len()));
    // The coordination (probe, warm-up, the spawner of later sessions, cancellation) runs
    // on this current-thread runtime; the connections run on `threads` connection threads
    // of their own (shards.rs), the timer on its own thread (timer.rs).
    let mut builder = tokio::runtime::Builder::new_current_thread();
    let rt = builder
        .thread_name("dbgym-replay")
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Internal(format!("cannot start the runtime: {e}")))?;
    let done = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(Cancel::default());
    let (tx, rx) = mpsc::channel();
    let total = trace.statements.len() as u64;
    let (d, c) = (done.clone(), cancel.clone());
    let thread = std::thread::Builder::new()
        .name("dbgym-replay-main".into())
        .spawn(move || {
            let r = rt.block_on(engine::run(trace, cfg, opts, threads, d, c));
            rt.shutdown_timeout(Duration::from_secs(2));
            let _ = tx.send(r);
        })
        .map_err(|e| ReplayError::Internal(format!("cannot start the replay thread: {e}")))?;
    Ok(ReplayHandle {
        done,
        total,
        cancel,
        rx,
        outcome: None,
        thread: Some(thread),
    })
}

/// Replays `trace` and waits for the result.
pub fn replay(
    trace: Arc<Trace>,
    dsn: &str,
    opts: ReplayOptions,
) -> Result<ReplayResult, ReplayError> {
    start(trace, dsn, opts)?.take_result()
}
