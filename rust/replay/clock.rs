//! The replay clock: when the replay started, whether statements wait for their deadlines
//! (and how scaled), the timer that wakes them, and the cancellation they wait with. The
//! session tasks (engine.rs) and the worker pool (pool.rs) both schedule by it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::timer::HrTimerHandle;

pub(super) struct Clock {
    /// The replay clock's start; scheduled offsets count from here.
    pub base: Instant,
    /// `Some(f)`: statements wait for their deadlines (trace time / f); `None`: as fast as
    /// possible.
    pub speed: Option<f64>,
    pub timer: HrTimerHandle,
    pub cancel: Arc<Cancel>,
}

impl Clock {
    /// Whether statements wait for their deadlines.
    pub fn timed(&self) -> bool {
        self.speed.is_some()
    }

    /// The instant `ns` nanoseconds after the start (negative offsets: the start).
    pub fn at(&self, ns: i64) -> Instant {
        self.base + Duration::from_nanos(ns.max(0) as u64)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sleeps until `at`; false if the replay was cancelled meanwhile.
    pub async fn sleep_until(&self, at: Instant) -> bool {
        tokio::select! {
            _ = self.timer.sleep_until(at) => !self.cancel.is_cancelled(),
            _ = self.cancel.cancelled() => false,
        }
    }
}
