//! Scheduling: session tasks (one connection per session) or a pool of `k` workers that
//! take sessions in deadline order (pool.rs); each task records its statements into the
//! shared result columns (record.rs).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_postgres::Config;

use super::cancel::{Cancel, Registry};
use super::clock::Clock;
use super::conn::{connect, Conn};
use super::options::{Identity, ReplayOptions, Settings};
use super::pool::{Pool, PoolState};
use super::record::{Columns, Progress, PROGRESS_AGE};
use super::shards::Shards;
use super::sqlstate::Code;
use super::timer::HrTimer;
use super::txn::{txn_effect, TxnEffect};
use super::{ReplayError, ReplayResult};
use crate::dsn::ConnectFailure;
use crate::trace::Trace;

/// Sessions whose first statement is due within this time of the start are connected
/// before the replay clock starts; later ones connect this long before their first statement.
const CONNECT_AHEAD: Duration = Duration::from_millis(250);
/// Connections opened at once while warming up.
const CONNECT_PARALLELISM: usize = 16;

/// Statement indices grouped by session (CSR), each session's in trace order.
struct Plan {
    offsets: Vec<usize>,
    order: Vec<u32>,
}

impl Plan {
    fn new(trace: &Trace) -> Plan {
        let mut offsets = vec![0usize; trace.sessions.len() + 1];
        for st in &trace.statements {
            offsets[st.session as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut fill = offsets.clone();
        let mut order = vec![0u32; trace.statements.len()];
        for (i, st) in trace.statements.iter().enumerate() {
            let s = st.session as usize;
            order[fill[s]] = i as u32;
            fill[s] += 1;
        }
        Plan { offsets, order }
    }

    fn stmts(&self, session: u32) -> &[u32] {
        let s = session as usize;
        &self.order[self.offsets[s]..self.offsets[s + 1]]
    }
}

pub(super) struct Ctx {
    trace: Arc<Trace>,
    cfg: Config,
    identity: Identity,
    statement_timeout_ms: Option<u64>,
    settings: Vec<Option<Arc<Settings>>>,
    /// What each statement does to the transaction block, read before the clock starts.
    effects: Vec<TxnEffect>,
    /// Scheduled offset of each statement (ns since the clock's start).
    scheduled_ns: Vec<i64>,
    clock: Clock,
    registry: Arc<Registry>,
    plan: Plan,
    columns: Columns,
    done: Arc<AtomicU64>,
}

impl Ctx {
    fn deadline(&self, idx: u32) -> Instant {
        self.clock.at(self.scheduled_ns[idx as usize])
    }

    /// Connects for `session` (its logged login with `Identity::Logged`).
    async fn connect(&self, session: u32) -> Result<Conn, (Code, tokio_postgres::Error)> {
        let cfg = session_config(&self.cfg, self.identity, &self.trace, session);
        connect(&cfg, self.statement_timeout_ms, &self.registry).await
    }

    /// Runs statement `idx` on the task's connection (connecting if needed) and records it;
    /// false if the replay was cancelled.
    async fn run_one(&self, link: &mut Link, idx: u32, slot: i32, progress: &mut Progress) -> bool {
        if self.clock.timed() {
            let at = self.deadline(idx);
            if at.saturating_duration_since(Instant::now()) > PROGRESS_AGE {
                progress.flush();
            }
            if !self.clock.sleep_until(at).await {
                return false;
            }
        }
        if self.clock.is_cancelled() {
            return false;
        }
        if link.conn.as_ref().is_none_or(|c| c.broken) {
            link.conn = None;
            let opened = match link.refused {
                // A login the server refused stays refused: no new connection per statement.
                Some(code) => Err(code),
                None => {
                    let session = self.trace.statements[idx as usize].session;
                    self.connect(session).await.map_err(|(code, _)| code)
                }
            };
            match opened {
                Ok(c) => link.conn = Some(c),
                Err(code) => {
                    link.note_refusal(code);
                    let now = Instant::now();
                    self.columns.record(idx, slot, now, now, code);
                    progress.tick(now);
                    return true;
                }
            }
        }
        let Some(c) = link.conn.as_mut() else {
            return false;
        };
        let st = &self.trace.statements[idx as usize];
        let settings = self
            .settings
            .get(st.template_id as usize)
            .and_then(|s| s.as_deref());
        let (start, end, code) = c.run(st, self.effects[idx as usize], settings).await;
        // A statement interrupted by the replay's own cancellation is not a result.
        if self.clock.is_cancelled() {
            return false;
        }
        self.columns.record(idx, slot, start, end, code);
        progress.tick(end);
        true
    }
}

/// A task's connection: open, to be opened, or refused for good.
#[derive(Default)]
struct Link {
    conn: Option<Conn>,
    /// The SQLSTATE of a refused login (class 28, 3D000, 42501): the task's remaining
    /// statements get it without connecting again. Other failures are retried.
    refused: Option<Code>,
}

impl Link {
    fn new(opened: Result<Conn, Code>) -> Link {
        let mut link = Link::default();
        match opened {
            Ok(c) => link.conn = Some(c),
            Err(code) => link.note_refusal(code),
        }
        link
    }

    fn note_refusal(&mut self, code: Code) {
        if code.starts_with(b"28") || code == *b"3D000" || code == *b"42501" {
            self.refused = Some(code);
        }
    }

    async fn close(self) {
        if let Some(c) = self.conn {
            c.close().await;
        }
    }
}

/// One session on its own connection (`link`: from the warm-up, or None to connect now,
/// ahead of the session's first statement).
async fn session_task(ctx: Arc<Ctx>, session: u32, link: Option<Link>) {
    let mut progress = Progress::new(ctx.done.clone());
    let mut link = match link {
        Some(l) => l,
        None => Link::new(ctx.connect(session).await.map_err(|(code, _)| code)),
    };
    for &idx in ctx.plan.stmts(session) {
        if !ctx
            .run_one(&mut link, idx, session as i32, &mut progress)
            .await
        {
            break;
        }
    }
    progress.flush();
    link.close().await;
}

/// One of `k` connections: takes a due session, runs its next statement, and keeps it
/// while the session is inside a transaction block.
async fn worker(ctx: Arc<Ctx>, pool: Arc<Pool>, slot: i32, mut link: Link) {
    let mut progress = Progress::new(ctx.done.clone());
    'sessions: loop {
        if ctx.clock.timed() {
            // A timed worker may now wait in the pool until the next deadline.
            progress.flush();
        }
        let Some((session, mut pos)) = pool.acquire(&ctx.clock).await else {
            break;
        };
        let stmts = ctx.plan.stmts(session);
        loop {
            if !ctx
                .run_one(&mut link, stmts[pos], slot, &mut progress)
                .await
            {
                break 'sessions;
            }
            pos += 1;
            if pos == stmts.len() {
                if let Some(c) = link.conn.as_mut() {
                    c.rollback_if_open().await;
                }
                pool.finish();
                break;
            }
            let held = link.conn.as_ref().is_some_and(|c| c.in_txn && !c.broken);
            if !held {
                pool.release(ctx.scheduled_ns[stmts[pos] as usize], session, pos);
                break;
            }
        }
    }
    progress.flush();
    link.close().await;
}

/// The login of `session`: the DSN's, or with `Identity::Logged` the session's logged user
/// and database where the log has them.
fn session_config(cfg: &Config, identity: Identity, trace: &Trace, session: u32) -> Config {
    let mut cfg = cfg.clone();
    if identity == Identity::Logged {
        if let Some(s) = trace.sessions.get(session as usize) {
            if !s.user.is_empty() {
                cfg.user(&s.user);
            }
            if !s.database.is_empty() {
                cfg.dbname(&s.database);
            }
        }
    }
    cfg
}

/// Opens one connection per config, connection `i` on connection thread `i` (its socket
/// belongs to that thread's runtime, so the task using it must run there too).
async fn connect_many(
    cfgs: Vec<Config>,
    timeout_ms: Option<u64>,
    registry: &Arc<Registry>,
    shards: &Shards,
) -> Vec<Link> {
    stream::iter(cfgs.into_iter().enumerate())
        .map(|(i, cfg)| {
            let registry = registry.clone();
            let opened = shards.handle(i).spawn(async move {
                connect(&cfg, timeout_ms, &registry)
                    .await
                    .map_err(|(code, _)| code)
            });
            async move {
                match opened.await {
                    Ok(r) => Link::new(r),
                    Err(_) => Link::default(),
                }
            }
        })
        .buffered(CONNECT_PARALLELISM)
        .collect()
        .await
}

/// Checks the target and the per-template settings on one probe connection.
async fn probe(
    cfg: &Config,
    opts: &ReplayOptions,
    n_templates: usize,
    registry: &Arc<Registry>,
) -> Result<(), ReplayError> {
    let mut conn = connect(cfg, opts.statement_timeout_ms, registry)
        .await
        .map_err(|(_, e)| ReplayError::Connect(Box::new(ConnectFailure::new(cfg, &e))))?;
    let mut ids: Vec<_> = opts.template_settings.keys().copied().collect();
    ids.sort();
    let table = opts.settings_table(n_templates);
    for id in ids {
        let Some(s) = table.get(id as usize).and_then(|s| s.as_ref()) else {
            continue;
        };
        let r = conn.batch(&format!("BEGIN; {}", s.set_local)).await;
        let _ = conn.batch("ROLLBACK").await;
        if let Err(e) = r {
            let Some(db) = e.as_db_error() else {
                // Not the server refusing the setting: the connection failed.
                return Err(ReplayError::Connect(Box::new(ConnectFailure::new(cfg, &e))));
            };
            let msg = db.message();
            return Err(ReplayError::InvalidOption(format!(
                "template_settings[{id}]: the server refused {:?}: {msg}",
                s.set_local
            )));
        }
    }
    conn.close().await;
    Ok(())
}

fn scheduled_offsets(trace: &Trace, speed: Option<f64>) -> Vec<i64> {
    let t0 = trace
        .statements
        .iter()
        .map(|s| s.timestamp_us)
        .min()
        .unwrap_or(0);
    trace
        .statements
        .iter()
        .map(|s| {
            let ns = (s.timestamp_us.saturating_sub(t0) as f64) * 1000.0;
            match speed {
                Some(f) => (ns / f) as i64,
                None => ns as i64,
            }
        })
        .collect()
}

/// The transaction effect of each statement. Read from each statement's own text: a trace
/// built by hand may give statements of different effect one template id.
fn statement_effects(trace: &Trace) -> Vec<TxnEffect> {
    use rayon::prelude::*;
    crate::pool::install(|| {
        trace
            .statements
            .par_iter()
            .map(|s| txn_effect(&s.sql))
            .collect()
    })
}

pub async fn run(
    trace: Arc<Trace>,
    cfg: Config,
    opts: ReplayOptions,
    threads: usize,
    done: Arc<AtomicU64>,
    cancel: Arc<Cancel>,
) -> Result<ReplayResult, ReplayError> {
    let registry = Arc::new(Registry::default());
    probe(&cfg, &opts, trace.templates.len(), &registry).await?;
    // On cancellation, cancel the statements in flight (again every 100 ms, for those
    // that were just being sent when the first requests went out).
    let canceller = {
        let (cancel, registry) = (cancel.clone(), registry.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            loop {
                registry.cancel_busy().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let timer = HrTimer::start()
        .map_err(|e| ReplayError::Internal(format!("cannot start the timer thread: {e}")))?;
    let shards = Shards::start(threads).map_err(|e| {
        ReplayError::Internal(format!("cannot start {threads} connection threads: {e}"))
    })?;
    let n = trace.statements.len();
    let n_sessions = trace.sessions.len();
    let scheduled_ns = scheduled_offsets(&trace, opts.speed);
    let plan = Plan::new(&trace);
    let first_of = |s: u32| plan.stmts(s).first().map(|&i| scheduled_ns[i as usize]);
    let ahead = CONNECT_AHEAD.as_nanos() as i64;

    // Warm-up: open the connections needed at the start before the clock starts.
    let mut pool_state = None;
    let mut late_sessions: Vec<(i64, u32)> = Vec::new();
    let initial: Vec<Link>;
    let mut early_sessions: Vec<u32> = Vec::new();
    match opts.concurrency {
        Some(k) => {
            let mut heap = BinaryHeap::new();
            let mut remaining = 0;
            for s in 0..n_sessions as u32 {
                if let Some(key) = first_of(s) {
                    heap.push(Reverse((key, s, 0usize)));
                    remaining += 1;
                }
            }
            let k = k.min(remaining.max(1));
            let cfgs = vec![cfg.clone(); k];
            initial = connect_many(cfgs, opts.statement_timeout_ms, &registry, &shards).await;
            pool_state = Some(PoolState { heap, remaining });
        }
        None => {
            for s in 0..n_sessions as u32 {
                match first_of(s) {
                    Some(key) if opts.speed.is_none() || key < ahead => early_sessions.push(s),
                    Some(key) => late_sessions.push((key, s)),
                    None => {}
                }
            }
            late_sessions.sort_unstable();
            let cfgs = early_sessions
                .iter()
                .map(|&s| session_config(&cfg, opts.identity, &trace, s))
                .collect();
            initial = connect_many(cfgs, opts.statement_timeout_ms, &registry, &shards).await;
        }
    }

    // Everything per statement is allocated and read before the replay clock starts.
    let effects = statement_effects(&trace);
    let settings = opts.settings_table(trace.templates.len());
    let mut columns = Columns::new(n);
    let base = columns.start_clock();
    let ctx = Arc::new(Ctx {
        trace: trace.clone(),
        cfg,
        identity: opts.identity,
        statement_timeout_ms: opts.statement_timeout_ms,
        settings,
        effects,
        scheduled_ns,
        clock: Clock {
            base,
            speed: opts.speed,
            timer: timer.handle(),
            cancel,
        },
        registry,
        plan,
        columns,
        done,
    });
    let mut tasks = JoinSet::new();
    match pool_state {
        Some(state) => {
            let pool = Arc::new(Pool {
                state: Mutex::new(state),
                notify: Notify::new(),
            });
            for (slot, link) in initial.into_iter().enumerate() {
                let task = worker(ctx.clone(), pool.clone(), slot as i32, link);
                tasks.spawn_on(task, shards.handle(slot));
            }
        }
        None => {
            let n_early = early_sessions.len();
            for (i, (s, link)) in early_sessions.into_iter().zip(initial).enumerate() {
                let task = session_task(ctx.clone(), s, Some(link));
                tasks.spawn_on(task, shards.handle(i));
            }
            if !late_sessions.is_empty() {
                // The spawner starts each later session shortly before its first statement,
                // so connections are not all opened up front.
                let (ctx2, handles) = (ctx.clone(), shards.handles());
                tasks.spawn(async move {
                    let mut set = JoinSet::new();
                    for (k, (key, s)) in late_sessions.into_iter().enumerate() {
                        let at = ctx2.clock.at(key - ahead);
                        if !ctx2.clock.sleep_until(at).await {
                            break;
                        }
                        let task = session_task(ctx2.clone(), s, None);
                        set.spawn_on(task, &handles[(n_early + k) % handles.len()]);
                        while set.try_join_next().is_some() {}
                    }
                    while set.join_next().await.is_some() {}
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    canceller.abort();
    let cancelled = ctx.clock.is_cancelled();
    drop(shards);
    drop(timer);
    let Ok(ctx) = Arc::try_unwrap(ctx) else {
        return Err(ReplayError::Internal(
            "a replay task outlived the replay".into(),
        ));
    };
    let mut res = ReplayResult {
        template_id: trace.statements.iter().map(|s| s.template_id).collect(),
        session: trace.statements.iter().map(|s| s.session).collect(),
        scheduled_ns: ctx.scheduled_ns,
        cancelled,
        ..Default::default()
    };
    ctx.columns.finish_into(&mut res);
    Ok(res)
}
