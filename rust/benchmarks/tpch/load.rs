//! Streaming TPC-H tables into PostgreSQL with `COPY ... FROM STDIN` (tokio-postgres).
//!
//! Each table is loaded by exactly one COPY, so a table's physical row order (and with it the
//! planner's correlation statistics) is the same on every build; tables load in parallel over
//! `workers` connections, largest first. Every worker has a generator thread that produces COPY
//! text chunks ahead into a bounded channel and a connection thread that streams them, so
//! generation overlaps the network and the server's parsing, and memory stays bounded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::{Config, NoTls};

use super::tables::{Generator, Table};
use super::TpchError;
use crate::dsn::ConnectFailure;

/// Rows and bytes sent so far, per table; read by the caller while the load runs.
#[derive(Debug, Default)]
pub struct Progress {
    rows: [AtomicU64; 8],
    bytes: [AtomicU64; 8],
    done: [AtomicBool; 8],
}

impl Progress {
    pub fn rows(&self, t: Table) -> u64 {
        self.rows[t as usize].load(Ordering::Relaxed)
    }
    pub fn bytes(&self, t: Table) -> u64 {
        self.bytes[t as usize].load(Ordering::Relaxed)
    }
    /// Whether the table's COPY has committed.
    pub fn done(&self, t: Table) -> bool {
        self.done[t as usize].load(Ordering::Relaxed)
    }
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Parallel connections (each loads whole tables).
    pub workers: usize,
    /// Bytes of COPY text per chunk sent.
    pub chunk_bytes: u64,
    /// Schema the tables live in (`None`: unqualified names, i.e. the search_path).
    pub schema: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            workers: 2,
            chunk_bytes: 1 << 20,
            schema: None,
        }
    }
}

enum Msg {
    Begin(Table),
    Chunk(Bytes, u64),
    End,
}

/// Parses a libpq URI or key=value DSN for tokio-postgres; a missing user is the OS user.
pub fn config(dsn: &str) -> Result<Config, TpchError> {
    let mut cfg = crate::dsn::parse(dsn).map_err(TpchError::InvalidDsn)?;
    if cfg.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .map_err(|_| {
                TpchError::InvalidDsn(format!(
                    "no user in {:?} and $USER unset",
                    crate::dsn::redact_dsn(dsn)
                ))
            })?;
        cfg.user(&user);
    }
    Ok(cfg)
}

/// Copies `tables` of `gen` into the database of `dsn`, whose tables must exist (they are
/// truncated: each table is loaded by `BEGIN; TRUNCATE; COPY ... (FREEZE); COMMIT`).
/// Sets `cancel` to stop early (the running COPYs are aborted and roll back; tables already
/// committed keep their rows). Returns the first error of any worker.
pub fn load(
    dsn: &str,
    gen: &Generator,
    tables: &[Table],
    opts: &LoadOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<(), TpchError> {
    let cfg = config(dsn)?;
    // Largest first, so the longest COPY (lineitem) starts at once.
    let mut order: Vec<Table> = tables.to_vec();
    order.sort_by_key(|t| std::cmp::Reverse(gen.units(*t) * t.unit_bytes()));
    order.dedup();
    let queue = Mutex::new(order.into_iter().collect::<VecDeque<Table>>());
    let workers = opts.workers.clamp(1, tables.len().max(1));
    let errors: Mutex<Vec<TpchError>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel::<Msg>(4);
            let queue = &queue;
            let errors = &errors;
            s.spawn(move || produce(gen, queue, opts.chunk_bytes, tx, cancel));
            let cfg = cfg.clone();
            s.spawn(move || {
                if let Err(e) = consume(&cfg, rx, opts.schema.as_deref(), progress, cancel) {
                    // Stop the others too: one failure fails the load.
                    cancel.store(true, Ordering::Relaxed);
                    errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    // A real error beats the `Cancelled` the other workers report because of it.
    errors.sort_by_key(|e| matches!(e, TpchError::Cancelled));
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None if cancel.load(Ordering::Relaxed) => Err(TpchError::Cancelled),
        None => Ok(()),
    }
}

/// Generator thread: takes tables off the queue and sends their chunks.
fn produce(
    gen: &Generator,
    queue: &Mutex<VecDeque<Table>>,
    chunk_bytes: u64,
    tx: mpsc::Sender<Msg>,
    cancel: &AtomicBool,
) {
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let Some(table) = next else { return };
        if tx.blocking_send(Msg::Begin(table)).is_err() {
            return;
        }
        for range in gen.chunks(table, chunk_bytes) {
            if cancel.load(Ordering::Relaxed) {
                return; // dropping `tx` aborts the COPY in progress
            }
            let mut buf = Vec::with_capacity(chunk_bytes as usize + (64 << 10));
            let rows = gen.write(table, range, &mut buf);
            if tx
                .blocking_send(Msg::Chunk(Bytes::from(buf), rows))
                .is_err()
            {
                return;
            }
        }
        if tx.blocking_send(Msg::End).is_err() {
            return;
        }
    }
}

/// Connection thread: one connection, one COPY per table received.
fn consume(
    cfg: &Config,
    mut rx: mpsc::Receiver<Msg>,
    schema: Option<&str>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<(), TpchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TpchError::Load {
            table: "-".to_string(),
            message: format!("cannot start the loader's runtime: {e}"),
        })?;
    rt.block_on(async {
        let (client, conn) = cfg
            .connect(NoTls)
            .await
            .map_err(|e| TpchError::Connect(Box::new(ConnectFailure::new(cfg, &e))))?;
        let conn_task = tokio::spawn(conn);
        let result = async {
            let mut current: Option<(Table, std::pin::Pin<Box<_>>)> = None;
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Begin(table) => {
                        let name = match schema {
                            Some(s) => format!("\"{}\".{}", s.replace('"', "\"\""), table.name()),
                            None => table.name().to_string(),
                        };
                        // TRUNCATE in the same transaction lets COPY FREEZE write frozen,
                        // all-visible pages: no later VACUUM rewrite, no hint-bit writes.
                        client
                            .batch_execute(&format!("BEGIN; TRUNCATE {name}"))
                            .await
                            .map_err(|e| load_error(table, &e))?;
                        let sink = client
                            .copy_in::<_, Bytes>(&format!("COPY {name} FROM STDIN (FREEZE)"))
                            .await
                            .map_err(|e| load_error(table, &e))?;
                        current = Some((table, Box::pin(sink)));
                    }
                    Msg::Chunk(data, rows) => {
                        let (table, sink) = current.as_mut().ok_or(TpchError::Cancelled)?;
                        let len = data.len() as u64;
                        sink.send(data).await.map_err(|e| load_error(*table, &e))?;
                        progress.rows[*table as usize].fetch_add(rows, Ordering::Relaxed);
                        progress.bytes[*table as usize].fetch_add(len, Ordering::Relaxed);
                    }
                    Msg::End => {
                        let (table, mut sink) = current.take().ok_or(TpchError::Cancelled)?;
                        sink.as_mut()
                            .finish()
                            .await
                            .map_err(|e| load_error(table, &e))?;
                        client
                            .batch_execute("COMMIT")
                            .await
                            .map_err(|e| load_error(table, &e))?;
                        progress.done[table as usize].store(true, Ordering::Relaxed);
                    }
                }
            }
            // The generator stopped: a COPY still open here was cancelled and is aborted on drop.
            if current.is_some() || cancel.load(Ordering::Relaxed) {
                return Err(TpchError::Cancelled);
            }
            Ok(())
        }
        .await;
        drop(client);
        let _ = conn_task.await;
        result
    })
}

fn load_error(table: Table, e: &tokio_postgres::Error) -> TpchError {
    let message = match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    TpchError::Load {
        table: table.name().to_string(),
        message,
    }
}
