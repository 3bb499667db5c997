//! Cancellation shared by the replay's tasks; set from any thread (e.g. on Ctrl-C).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{CancelToken, NoTls};

#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Completes once [`Cancel::cancel`] has been called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's cancel token and whether a statement is in flight on it.
pub struct InFlight {
    token: CancelToken,
    pub busy: AtomicBool,
}

/// The open connections, so that a cancelled replay can cancel their running statements
/// (without every statement having to listen for cancellation itself).
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<InFlight>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<InFlight>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, token: CancelToken) -> (u64, Arc<InFlight>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let f = Arc::new(InFlight {
            token,
            busy: AtomicBool::new(false),
        });
        self.lock().insert(id, f.clone());
        (id, f)
    }

    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Sends a cancel request for every statement in flight.
    pub async fn cancel_busy(&self) {
        let busy: Vec<CancelToken> = self
            .lock()
            .values()
            .filter(|f| f.busy.load(Ordering::Relaxed))
            .map(|f| f.token.clone())
            .collect();
        let requests = busy.into_iter().map(|t| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), t.cancel_query(NoTls)).await;
        });
        futures_util::future::join_all(requests).await;
    }
}
