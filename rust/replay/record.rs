//! Per-statement results, written by the connection tasks straight into shared columns.
//!
//! Each statement index is run by exactly one task, so no two tasks write the same slot. The
//! columns are atomics written with relaxed stores (plain moves on x86-64): no lock, channel
//! or collector thread sits between a statement's end and the session's next statement, so
//! recording wakes no other thread. The progress counter is bumped in steps.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sqlstate::Code;
use super::ReplayResult;

/// A task adds to the shared progress counter after this many statements...
const PROGRESS_STEP: u64 = 256;
/// ... or once its oldest uncounted statement is this old.
pub const PROGRESS_AGE: Duration = Duration::from_millis(20);

/// The columns of a replay's result, one slot per trace statement.
pub struct Columns {
    base: Instant,
    connection: Vec<AtomicI32>,
    start_ns: Vec<AtomicI64>,
    end_ns: Vec<AtomicI64>,
    /// SQLSTATE bytes, little-endian in the low 5 bytes; 0 = success or did not run.
    sqlstate: Vec<AtomicU64>,
}

impl Columns {
    /// Columns for `n` statements; times count from `start_clock`.
    pub fn new(n: usize) -> Columns {
        Columns {
            base: Instant::now(),
            connection: (0..n).map(|_| AtomicI32::new(-1)).collect(),
            start_ns: (0..n).map(|_| AtomicI64::new(-1)).collect(),
            end_ns: (0..n).map(|_| AtomicI64::new(-1)).collect(),
            sqlstate: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Starts the replay clock: recorded times are relative to the instant returned.
    pub fn start_clock(&mut self) -> Instant {
        self.base = Instant::now();
        self.base
    }

    /// Records statement `idx`, run on connection slot `connection`.
    pub fn record(&self, idx: u32, connection: i32, start: Instant, end: Instant, code: Code) {
        let i = idx as usize;
        let rel = |t: Instant| t.saturating_duration_since(self.base).as_nanos() as i64;
        let mut packed = [0u8; 8];
        packed[..5].copy_from_slice(&code);
        self.connection[i].store(connection, Ordering::Relaxed);
        self.start_ns[i].store(rel(start), Ordering::Relaxed);
        self.end_ns[i].store(rel(end), Ordering::Relaxed);
        self.sqlstate[i].store(u64::from_le_bytes(packed), Ordering::Relaxed);
    }

    /// Moves the columns into `res` (connection, times, SQLSTATEs, executed, elapsed) once
    /// every task has ended (joining them orders their stores before this).
    pub fn finish_into(self, res: &mut ReplayResult) {
        res.connection = self
            .connection
            .into_iter()
            .map(AtomicI32::into_inner)
            .collect();
        res.start_ns = self
            .start_ns
            .into_iter()
            .map(AtomicI64::into_inner)
            .collect();
        res.end_ns = self.end_ns.into_iter().map(AtomicI64::into_inner).collect();
        res.sqlstate = self
            .sqlstate
            .into_iter()
            .map(|c| {
                let b = c.into_inner().to_le_bytes();
                [b[0], b[1], b[2], b[3], b[4]]
            })
            .collect();
        res.executed = res.end_ns.iter().filter(|&&e| e >= 0).count() as u64;
        res.elapsed_ns = res.end_ns.iter().copied().max().unwrap_or(0).max(0);
    }
}

/// One task's count of recorded statements, added to the shared counter in steps (and when
/// dropped), so progress costs no shared write per statement.
pub struct Progress {
    shared: Arc<AtomicU64>,
    pending: u64,
    oldest: Instant,
}

impl Progress {
    pub fn new(shared: Arc<AtomicU64>) -> Progress {
        Progress {
            shared,
            pending: 0,
            oldest: Instant::now(),
        }
    }

    /// Counts a statement that ended at `end`.
    pub fn tick(&mut self, end: Instant) {
        if self.pending == 0 {
            self.oldest = end;
        }
        self.pending += 1;
        if self.pending >= PROGRESS_STEP || end.duration_since(self.oldest) >= PROGRESS_AGE {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.pending > 0 {
            self.shared.fetch_add(self.pending, Ordering::Relaxed);
            self.pending = 0;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let mut cols = Columns::new(3);
        let base = cols.start_clock();
        let t = |ms: u64| base + Duration::from_millis(ms);
        cols.record(2, 7, t(5), t(9), *b"57014");
        cols.record(0, 1, t(1), t(2), [0; 5]);
        let mut r = ReplayResult::default();
        cols.finish_into(&mut r);
        assert_eq!(r.connection, [1, -1, 7]);
        assert_eq!(r.start_ns, [1_000_000, -1, 5_000_000]);
        assert_eq!(r.end_ns, [2_000_000, -1, 9_000_000]);
        assert_eq!(r.sqlstate, [[0; 5], [0; 5], *b"57014"]);
        assert_eq!((r.executed, r.elapsed_ns), (2, 9_000_000));
    }

    #[test]
    fn progress_is_counted_in_steps_and_on_drop() {
        let shared = Arc::new(AtomicU64::new(0));
        let mut p = Progress::new(shared.clone());
        let now = Instant::now();
        for _ in 0..PROGRESS_STEP - 1 {
            p.tick(now);
        }
        assert_eq!(shared.load(Ordering::Relaxed), 0);
        p.tick(now);
        assert_eq!(shared.load(Ordering::Relaxed), PROGRESS_STEP);
        p.tick(now);
        p.tick(now + PROGRESS_AGE);
        assert_eq!(shared.load(Ordering::Relaxed), PROGRESS_STEP + 2);
        p.tick(now);
        drop(p);
        assert_eq!(shared.load(Ordering::Relaxed), PROGRESS_STEP + 3);
    }
}
