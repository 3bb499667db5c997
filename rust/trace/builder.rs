//! From log records to statements: one `ChunkBuilder` per chunk of a log (local session and
//! template ids), then a `Merger` that appends chunks in file order with global ids, so ids are
//! in order of first appearance in the file whatever the chunking.

use std::borrow::Cow;
use std::collections::HashMap;

use super::error::RawError;
use super::message::{classify, parse_parameters, Message};
use super::model::{Session, Statement, Template, Trace};
use super::templatize::Templatizer;

/// One LOG record of any format, borrowed from the input where possible.
#[derive(Debug)]
pub struct LogRecord<'a> {
    pub timestamp_us: i64,
    /// Session key: `%c`/session_id, else the pid, else empty.
    pub session: Cow<'a, str>,
    pub user: Cow<'a, str>,
    pub database: Cow<'a, str>,
    pub message: Cow<'a, str>,
    pub detail: Option<Cow<'a, str>>,
    /// Absolute offset of the detail text (for errors in parameter lists).
    pub detail_offset: u64,
}

/// Duration state of a session within a chunk.
#[derive(Clone, Copy, Debug)]
enum Pending {
    /// Nothing seen yet in this chunk: the global state (previous chunks) applies.
    Unknown,
    /// Last statement without a duration yet (local index), or none.
    Known(Option<usize>),
}

/// Statements of one chunk with chunk-local session and template ids.
#[derive(Default)]
pub struct ChunkBuilder {
    pub statements: Vec<Statement>,
    pub sessions: Vec<Session>,
    session_index: HashMap<String, u32>,
    pending: Vec<Pending>,
    pub templates: Vec<String>,
    template_index: HashMap<String, u32>,
    /// Standalone durations of sessions whose previous statement is in an earlier chunk.
    pub orphan_durations: Vec<(String, i64)>,
    templatizer: Templatizer,
    pub records: u64,
    pub skipped_lines: u64,
    pub first_skipped: Option<RawError>,
}

impl ChunkBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn session(&mut self, rec: &LogRecord<'_>) -> u32 {
        if let Some(&id) = self.session_index.get(rec.session.as_ref()) {
            return id;
        }
        let id = self.sessions.len() as u32;
        self.sessions.push(Session {
            id: rec.session.to_string(),
            user: rec.user.to_string(),
            database: rec.database.to_string(),
        });
        self.session_index.insert(rec.session.to_string(), id);
        self.pending.push(Pending::Unknown);
        id
    }

    /// Template id of `sql` within this chunk.
    pub fn template(&mut self, sql: &str) -> u32 {
        self.templatizer.run(sql, false);
        if let Some(&id) = self.template_index.get(self.templatizer.text.as_str()) {
            return id;
        }
        let id = self.templates.len() as u32;
        self.templates.push(self.templatizer.text.clone());
        self.template_index
            .insert(self.templatizer.text.clone(), id);
        id
    }

    /// Take one LOG record. Errors: a malformed parameter list.
    pub fn push(&mut self, rec: LogRecord<'_>) -> Result<(), RawError> {
        match classify(&rec.message) {
            Message::Statement {
                sql,
                extended,
                duration_us,
            } => {
                let params = match (extended, rec.detail.as_deref()) {
                    (true, Some(detail)) => match parse_parameters(detail) {
                        Ok(Some(p)) => p,
                        Ok(None) => Vec::new(),
                        Err((at, msg)) => {
                            return Err(RawError::new(rec.detail_offset + at as u64, msg));
                        }
                    },
                    _ => Vec::new(),
                };
                let session = self.session(&rec);
                let template_id = self.template(sql);
                let idx = self.statements.len();
                self.statements.push(Statement {
                    session,
                    // A `duration: .. statement:` line is written when the statement ends.
                    timestamp_us: rec.timestamp_us - duration_us.unwrap_or(0),
                    template_id,
                    sql: sql.to_string(),
                    params,
                    duration_us,
                });
                self.pending[session as usize] = Pending::Known(if duration_us.is_some() {
                    None
                } else {
                    Some(idx)
                });
            }
            Message::Duration(us) => match self.session_index.get(rec.session.as_ref()).copied() {
                None => self.orphan_durations.push((rec.session.to_string(), us)),
                Some(s) => match self.pending[s as usize] {
                    Pending::Unknown => {
                        self.orphan_durations.push((rec.session.to_string(), us));
                        self.pending[s as usize] = Pending::Known(None);
                    }
                    Pending::Known(Some(i)) => {
                        self.statements[i].duration_us = Some(us);
                        self.pending[s as usize] = Pending::Known(None);
                    }
                    Pending::Known(None) => {}
                },
            },
            Message::Other => {}
        }
        Ok(())
    }
}

/// Appends chunks in order, assigning global ids by first appearance.
#[derive(Default)]
pub struct Merger {
    pub trace: Trace,
    session_index: HashMap<String, u32>,
    template_index: HashMap<String, u32>,
    /// Per global session: last statement still waiting for its standalone duration.
    pending: Vec<Option<usize>>,
    pub records: u64,
    pub skipped_lines: u64,
    pub first_skipped: Option<RawError>,
}

impl Merger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn merge(&mut self, chunk: ChunkBuilder) {
        self.records += chunk.records;
        self.skipped_lines += chunk.skipped_lines;
        if self.first_skipped.is_none() {
            self.first_skipped = chunk.first_skipped;
        }
        for (key, us) in chunk.orphan_durations {
            if let Some(&g) = self.session_index.get(&key) {
                if let Some(i) = self.pending[g as usize].take() {
                    let st = &mut self.trace.statements[i];
                    if st.duration_us.is_none() {
                        st.duration_us = Some(us);
                    }
                }
            }
        }
        let session_map: Vec<u32> = chunk
            .sessions
            .into_iter()
            .map(|s| match self.session_index.get(&s.id) {
                Some(&g) => g,
                None => {
                    let g = self.trace.sessions.len() as u32;
                    self.session_index.insert(s.id.clone(), g);
                    self.trace.sessions.push(s);
                    self.pending.push(None);
                    g
                }
            })
            .collect();
        let template_map: Vec<u32> = chunk
            .templates
            .into_iter()
            .map(|text| match self.template_index.get(&text) {
                Some(&g) => g,
                None => {
                    let g = self.trace.templates.len() as u32;
                    self.template_index.insert(text.clone(), g);
                    self.trace.templates.push(Template {
                        id: g,
                        text,
                        count: 0,
                    });
                    g
                }
            })
            .collect();
        let base = self.trace.statements.len();
        self.trace.statements.reserve(chunk.statements.len());
        for mut st in chunk.statements {
            st.session = session_map[st.session as usize];
            st.template_id = template_map[st.template_id as usize];
            self.trace.templates[st.template_id as usize].count += 1;
            self.trace.statements.push(st);
        }
        for (local, state) in chunk.pending.into_iter().enumerate() {
            if let Pending::Known(p) = state {
                self.pending[session_map[local] as usize] = p.map(|i| base + i);
            }
        }
    }

    pub fn finish(self) -> Trace {
        self.trace
    }
}
