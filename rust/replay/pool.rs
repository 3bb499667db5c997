//! The worker pool of `concurrency = k`: sessions wait in a heap ordered by the deadline (or
//! trace offset) of their next statement, and each of the `k` worker connections takes the
//! next due one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::clock::Clock;

/// Sessions waiting for a worker, by the deadline (or trace offset) of their next statement.
pub(super) struct Pool {
    pub(super) state: Mutex<PoolState>,
    pub(super) notify: Notify,
}

pub(super) struct PoolState {
    /// (scheduled ns of the next statement, session, position in the session)
    pub(super) heap: BinaryHeap<Reverse<(i64, u32, usize)>>,
    /// Sessions not yet finished.
    pub(super) remaining: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next due session, or None when all are done or the replay is cancelled.
    pub(super) async fn acquire(&self, clock: &Clock) -> Option<(u32, usize)> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut st = self.lock();
                if st.remaining == 0 || clock.is_cancelled() {
                    return None;
                }
                match st.heap.peek() {
                    None => None,
                    Some(&Reverse((key, _, _))) => {
                        let at = clock.at(key);
                        if !clock.timed() || at <= Instant::now() {
                            let Reverse((_, s, p)) = st.heap.pop()?;
                            return Some((s, p));
                        }
                        Some(at)
                    }
                }
            };
            match wait {
                None => tokio::select! {
                    _ = &mut notified => {}
                    _ = clock.cancel.cancelled() => return None,
                },
                Some(at) => tokio::select! {
                    _ = &mut notified => {}
                    _ = clock.timer.sleep_until(at) => {}
                    _ = clock.cancel.cancelled() => return None,
                },
            }
        }
    }

    pub(super) fn release(&self, key: i64, session: u32, pos: usize) {
        self.lock().heap.push(Reverse((key, session, pos)));
        self.notify.notify_one();
    }

    pub(super) fn finish(&self) {
        let mut st = self.lock();
        st.remaining -= 1;
        if st.remaining == 0 {
            drop(st);
            self.notify.notify_waiters();
        }
    }
}
