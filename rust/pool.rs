//! The rayon thread pool every parallel section runs on, rebuilt after a `fork()`.
//!
//! rayon's global pool is created once per process. A process that forks after using it
//! (gymnasium's `AsyncVectorEnv` forks its workers) hands the child a pool whose threads do
//! not exist there: the child's first parallel section waits forever. So parallel work
//! runs through `install`, on a pool owned by the current process id: a forked child
//! builds its own on first use. The parent's pool object is leaked in the child (its
//! threads are gone; dropping it would signal them).

use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// The pool of this process (built on first use, and again after a fork).
pub fn pool() -> Arc<ThreadPool> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return pool.clone();
        }
    }
    let built = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("dbgym-rayon-{i}"))
            .build()
            .unwrap_or_else(|e| panic!("cannot start the rayon thread pool: {e}")),
    );
    if let Some(old) = slot.replace((pid, built.clone())) {
        std::mem::forget(old); // the parent's, after a fork: its threads do not exist here
    }
    built
}

/// Run `work` on this process's pool (its parallel iterators use that pool).
pub fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    pool().install(work)
}

/// The number of threads of this process's pool.
pub fn threads() -> usize {
    pool().current_num_threads()
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    #[test]
    fn install_runs_parallel_work_on_the_process_pool() {
        let sum: u64 = super::install(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(sum, 499_500);
        assert!(super::threads() >= 1);
        assert!(std::sync::Arc::ptr_eq(&super::pool(), &super::pool()));
    }
}
