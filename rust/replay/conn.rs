//! One replay connection: runs trace statements with the protocol they were logged with,
//! applies per-template settings, tracks the transaction block, and reports SQLSTATEs.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::{
    Client, Config, Connection, NoTls, SimpleQueryMessage, Socket, Statement as PgStatement,
};

use super::cancel::{InFlight, Registry};
use super::options::Settings;
use super::sqlstate::{code_of, Code, CANNOT_CONNECT, CLIENT_ERROR, CONNECTION_FAILURE, OK};
use super::txn::TxnEffect;
use crate::trace::Statement;

/// A parameter sent in text format whatever type the server inferred for it: the server
/// parses it exactly as it parsed the logged value.
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            Some(s) => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Start, end and SQLSTATE of one statement.
pub type Timing = (Instant, Instant, Code);

pub struct Conn {
    client: Client,
    /// Prepared statements of this connection, by SQL text.
    cache: HashMap<String, PgStatement>,
    /// Inside a transaction block (healthy or aborted).
    pub in_txn: bool,
    /// The connection is gone; the next statement needs a new one.
    pub broken: bool,
    /// The connection's I/O, polled by the task that runs the statements (no second task
    /// and no cross-task wake-up per message); `None` once it has ended.
    io: Option<Pin<Box<Connection<Socket, NoTlsStream>>>>,
    flight: Arc<InFlight>,
    _registered: Registered,
}

/// Removes the connection from the registry when dropped.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.unregister(self.id);
    }
}

/// Connects; `Err` holds the SQLSTATE to record (the server's, or 08001) and the error.
pub async fn connect(
    cfg: &Config,
    statement_timeout_ms: Option<u64>,
    registry: &Arc<Registry>,
) -> Result<Conn, (Code, tokio_postgres::Error)> {
    // The timeout travels in the startup packet (`options=-c statement_timeout=...`): no
    // extra round trip per connection.
    let with_timeout;
    let cfg = match statement_timeout_ms {
        Some(ms) => {
            let mut c = cfg.clone();
            let given = c.get_options().unwrap_or("").to_string();
            let joined = format!("{given} -c statement_timeout={ms}");
            c.options(joined.trim_start());
            with_timeout = c;
            &with_timeout
        }
        None => cfg,
    };
    let (client, connection) = cfg
        .connect(NoTls)
        .await
        .map_err(|e| (code_of(&e, CANNOT_CONNECT), e))?;
    let (id, flight) = registry.register(client.cancel_token());
    let conn = Conn {
        client,
        cache: HashMap::new(),
        in_txn: false,
        broken: false,
        io: Some(Box::pin(connection)),
        flight,
        _registered: Registered {
            registry: registry.clone(),
            id,
        },
    };
    Ok(conn)
}

/// Runs a client request `f` while polling the connection's I/O in the same task. When the
/// connection ends (closed or broken), `f` is still polled: the client then fails it.
async fn drive<T>(
    io: &mut Option<Pin<Box<Connection<Socket, NoTlsStream>>>>,
    f: impl Future<Output = T>,
) -> T {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        if let Some(c) = io.as_mut() {
            if c.as_mut().poll(cx).is_ready() {
                *io = None;
            }
        }
        f.as_mut().poll(cx)
    })
    .await
}

impl Conn {
    /// `batch_execute` (simple protocol, rows ignored).
    pub async fn batch(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        drive(&mut self.io, self.client.batch_execute(sql)).await
    }

    async fn simple(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
        drive(&mut self.io, self.client.simple_query(sql)).await
    }

    /// Closes the connection: with the client gone, the I/O sends Terminate and ends.
    pub async fn close(self) {
        let Conn { client, io, .. } = self;
        drop(client);
        if let Some(io) = io {
            let _ = tokio::time::timeout(Duration::from_secs(1), io).await;
        }
    }

    fn fail_code(&mut self, e: &tokio_postgres::Error) -> Code {
        if e.code().is_some() {
            return code_of(e, CLIENT_ERROR);
        }
        if self.client.is_closed() || e.is_closed() {
            self.broken = true;
            CONNECTION_FAILURE
        } else {
            CLIENT_ERROR
        }
    }

    async fn exec_plain(&mut self, st: &Statement) -> Result<(), tokio_postgres::Error> {
        if st.params.is_empty() {
            return self.batch(&st.sql).await;
        }
        let stmt = match self.cache.get(&st.sql) {
            Some(s) => s.clone(),
            None => {
                let s = drive(&mut self.io, self.client.prepare(&st.sql)).await?;
                self.cache.insert(st.sql.clone(), s.clone());
                s
            }
        };
        let params = st.params.iter().map(|p| TextParam(p.as_deref()));
        drive(&mut self.io, self.client.execute_raw(&stmt, params))
            .await
            .map(|_| ())
    }

    /// Runs the statement alone, timed. While it runs the connection is marked busy, so a
    /// cancelled replay sends it a cancel request.
    async fn timed(&mut self, st: &Statement) -> Timing {
        self.flight.busy.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let r = self.exec_plain(st).await;
        let end = Instant::now();
        self.flight.busy.store(false, Ordering::Relaxed);
        match r {
            Ok(()) => (start, end, OK),
            Err(e) => (start, end, self.fail_code(&e)),
        }
    }

    /// Runs one trace statement, with `settings` applied to it alone when given; `effect`
    /// is what its text does to the transaction block.
    pub async fn run(
        &mut self,
        st: &Statement,
        effect: TxnEffect,
        settings: Option<&Settings>,
    ) -> Timing {
        // Transaction-control statements never get settings: wrapping them would change
        // the session's transaction block.
        let settings = settings.filter(|_| effect == TxnEffect::None);
        let (start, end, code) = match settings {
            None => self.timed(st).await,
            Some(s) if !self.in_txn => self.run_wrapped(st, s).await,
            Some(s) => self.run_in_txn(st, s).await,
        };
        if code == OK {
            match effect {
                TxnEffect::Begin => self.in_txn = true,
                TxnEffect::End => self.in_txn = false,
                TxnEffect::None | TxnEffect::Other => {}
            }
        } else if code == *b"25P02" {
            self.in_txn = true;
        } else if !self.broken {
            self.probe_txn_state().await;
        }
        (start, end, code)
    }

    /// Outside a transaction block: `BEGIN; SET LOCAL ...`, the statement, then COMMIT
    /// (ROLLBACK if it failed). A failing COMMIT is the statement's error.
    async fn run_wrapped(&mut self, st: &Statement, s: &Settings) -> Timing {
        if let Err(e) = self.batch(&format!("BEGIN; {}", s.set_local)).await {
            let now = Instant::now();
            let code = self.fail_code(&e);
            if !self.broken {
                let _ = self.batch("ROLLBACK").await;
            }
            return (now, now, code);
        }
        let (start, end, mut code) = self.timed(st).await;
        if self.broken {
            return (start, end, code);
        }
        let finish = if code == OK { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = self.batch(finish).await {
            if code == OK {
                code = self.fail_code(&e);
            }
        }
        (start, end, code)
    }

    /// Inside a logged transaction block: read the current values, `SET LOCAL` the
    /// template's, run the statement, then `SET LOCAL` the old values back so the rest of
    /// the logged transaction runs as logged. If the block is already aborted, the
    /// statement runs plain (and fails with 25P02 as it would have).
    async fn run_in_txn(&mut self, st: &Statement, s: &Settings) -> Timing {
        let old = match self.simple(&s.read_current).await {
            Ok(msgs) => msgs.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(r) => (0..r.len())
                    .map(|i| r.get(i).map(str::to_owned))
                    .collect::<Option<Vec<String>>>(),
                _ => None,
            }),
            Err(_) => None,
        };
        let Some(old) = old else {
            return self.timed(st).await;
        };
        if let Err(e) = self.batch(&s.set_local).await {
            let now = Instant::now();
            return (now, now, self.fail_code(&e));
        }
        let r = self.timed(st).await;
        if r.2 == OK {
            let _ = self.batch(&s.restore_sql(&old)).await;
        }
        r
    }

    /// After an error, asks the server whether a transaction block is open: in an aborted
    /// block any query fails (25P02); in a healthy block `now()` (transaction start) differs
    /// from `statement_timestamp()`; outside one they are equal.
    async fn probe_txn_state(&mut self) {
        match self.simple("SELECT now() = statement_timestamp()").await {
            Ok(msgs) => {
                let outside = msgs.iter().any(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0) == Some("t"),
                    _ => false,
                });
                self.in_txn = !outside;
            }
            Err(e) => {
                let code = self.fail_code(&e);
                if code == *b"25P02" {
                    self.in_txn = true;
                }
            }
        }
    }

    /// Ends an open transaction block (used when a session ends inside one, before the
    /// connection serves another session).
    pub async fn rollback_if_open(&mut self) {
        if self.in_txn && !self.broken {
            if let Err(e) = self.batch("ROLLBACK").await {
                self.fail_code(&e);
            }
            self.in_txn = false;
        }
    }
}
