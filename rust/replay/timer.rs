//! A sub-millisecond timer for replay deadlines.
//!
//! tokio's timer wheel has a 1 ms resolution: `sleep_until(t)` fires at the first
//! millisecond tick at or after `t`, so a replay built on it lags its schedule by up to
//! 1 ms per statement. This timer instead keeps the deadlines in a heap served by one OS
//! thread that waits on a condition variable with the exact remaining time (a futex
//! timeout, i.e. an hrtimer, with the thread's timer slack set to 1 ns), then wakes the task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Instant;

use futures_util::task::AtomicWaker;

struct Slot {
    fired: AtomicBool,
    waker: AtomicWaker,
}

struct Entry {
    at: Instant,
    seq: u64,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the heap
        // itself is always consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The timer: owns its thread, which stops when the timer is dropped.
pub struct HrTimer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A cheap handle to create sleeps on an [`HrTimer`].
#[derive(Clone)]
pub struct HrTimerHandle {
    shared: Arc<Shared>,
}

impl HrTimer {
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dbgym-replay-timer".into())
            .spawn(move || run(&for_thread))?;
        Ok(HrTimer {
            shared,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> HrTimerHandle {
        HrTimerHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for HrTimer {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks Linux for exact timeouts on this thread (the default timer slack adds up to 50 us).
fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer argument and only affects the
    // calling thread; a failure leaves the default slack, which is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

fn run(shared: &Shared) {
    tighten_timer_slack();
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            // Wake whoever still waits, so no task hangs on a timer that is gone.
            for Reverse(e) in st.heap.drain() {
                e.slot.fired.store(true, Ordering::Release);
                e.slot.waker.wake();
            }
            return;
        }
        let now = Instant::now();
        let next_at = st.heap.peek().map(|Reverse(e)| e.at);
        match next_at {
            None => st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(at) if at <= now => {
                while let Some(Reverse(e)) = st.heap.peek() {
                    if e.at > now {
                        break;
                    }
                    if let Some(Reverse(e)) = st.heap.pop() {
                        e.slot.fired.store(true, Ordering::Release);
                        e.slot.waker.wake();
                    }
                }
            }
            Some(at) => {
                st = shared
                    .cv
                    .wait_timeout(st, at - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
    }
}

impl HrTimerHandle {
    /// A future that completes at `at` (immediately if `at` has passed).
    pub fn sleep_until(&self, at: Instant) -> HrSleep {
        HrSleep {
            at,
            slot: None,
            shared: self.shared.clone(),
        }
    }
}

/// Future returned by [`HrTimerHandle::sleep_until`]. Dropping it early is fine: the
/// heap entry then fires later into a waker nobody listens to.
pub struct HrSleep {
    at: Instant,
    slot: Option<Arc<Slot>>,
    shared: Arc<Shared>,
}

impl Future for HrSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.at {
            return Poll::Ready(());
        }
        match &this.slot {
            Some(slot) => {
                slot.waker.register(cx.waker());
                if slot.fired.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
            }
            None => {
                let slot = Arc::new(Slot {
                    fired: AtomicBool::new(false),
                    waker: AtomicWaker::new(),
                });
                slot.waker.register(cx.waker());
                let mut st = this.shared.lock();
                if st.shutdown {
                    return Poll::Ready(());
                }
                let earliest = st.heap.peek().is_none_or(|Reverse(e)| this.at < e.at);
                st.seq += 1;
                let seq = st.seq;
                st.heap.push(Reverse(Entry {
                    at: this.at,
                    seq,
                    slot: slot.clone(),
                }));
                drop(st);
                if earliest {
                    this.shared.cv.notify_one();
                }
                this.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_fire_in_order_and_close_to_their_deadline() {
        let timer = HrTimer::start().unwrap();
        let h = timer.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lags = rt.block_on(async move {
            let base = Instant::now();
            let mut lags = Vec::new();
            for k in 1..=20u64 {
                let at = base + Duration::from_micros(2_500 * k);
                h.sleep_until(at).await;
                lags.push(Instant::now().duration_since(at));
            }
            lags
        });
        let worst = lags.iter().max().unwrap();
        // Generous bound for a loaded CI machine; the point is: far below tokio's 1 ms tick.
        assert!(
            *worst < Duration::from_millis(20),
            "worst lag {worst:?} over {lags:?}"
        );
        let mut sorted = lags.clone();
        sorted.sort();
        assert!(
            sorted[10] < Duration::from_micros(900),
            "median lag {:?}",
            sorted[10]
        );
    }

    #[test]
    fn past_deadline_is_ready_at_once_and_drop_does_not_hang() {
        let timer = HrTimer::start().unwrap();
        let h = timer.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            h.sleep_until(Instant::now() - Duration::from_millis(5))
                .await;
            // A far sleep that is abandoned: dropping the timer must not block on it.
            let far = h.sleep_until(Instant::now() + Duration::from_secs(3600));
            let _ = tokio::time::timeout(Duration::from_millis(5), far).await;
        });
        drop(timer);
    }
}
