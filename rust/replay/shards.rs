//! Connection threads. Each runs a current-thread tokio runtime of its own (its own epoll),
//! and the replay's connections are spread over them, as pgbench spreads its clients over its
//! `-j` threads: a server reply wakes the one thread that owns the connection, with no work
//! stealing and no hand-off between threads on the way to the next statement.

use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub struct Shards {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Shards {
    /// Starts `n` (at least 1) connection threads.
    pub fn start(n: usize) -> std::io::Result<Shards> {
        let mut shards = Shards {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            shards.handles.push(rt.handle().clone());
            shards.stops.push(stop);
            // On failure `shards` is dropped, which stops the threads started so far.
            shards.threads.push(
                std::thread::Builder::new()
                    .name(format!("dbgym-replay-{i}"))
                    .spawn(move || {
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    })?,
            );
        }
        Ok(shards)
    }

    /// The runtime of connection `i` (connections are dealt out round-robin).
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    pub fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }
}

impl Drop for Shards {
    /// Stops the threads; tasks still on them are dropped with their runtime.
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
