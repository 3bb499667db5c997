//! The trace data model shared by parsing (trace), generation (tpch, pgbench) and replay.

/// One statement as logged or generated.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Index into [`Trace::sessions`].
    pub session: u32,
    /// Microseconds since the UNIX epoch for logged statements; offsets from 0 for generated ones.
    pub timestamp_us: i64,
    /// Index into [`Trace::templates`].
    pub template_id: u32,
    /// Text as the server executed it: the simple-protocol text, or for the extended protocol the
    /// prepared text with `$n` placeholders (values in `params`).
    pub sql: String,
    /// Extended-protocol parameter values as text (`None` = NULL); empty for the simple protocol.
    pub params: Vec<Option<String>>,
    /// Logged duration (`duration:` lines), when the log had one for this statement.
    pub duration_us: Option<i64>,
}

/// A client session (one backend connection in the log).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    /// Session identifier as logged (`%c`, csvlog session_id) or generated.
    pub id: String,
    pub user: String,
    pub database: String,
}

/// A statement template: the statement with its constants replaced by placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: u32,
    pub text: String,
    pub count: u64,
}

/// A workload trace: statements in log order, with their sessions and templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub statements: Vec<Statement>,
    pub sessions: Vec<Session>,
    pub templates: Vec<Template>,
}
