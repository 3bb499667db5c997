//! A compact binary form of a [`Trace`], for pickling: a trace read from a multi-GB log is
//! parsed once and handed to worker processes as bytes, not re-parsed by each.
//!
//! Layout (little-endian; `str` = u32 byte length + UTF-8 bytes):
//!
//! ```text
//! magic "DBGYMTR1"
//! u64 statements n, u64 sessions, u64 templates
//! sessions:  str id, str user, str database            (each)
//! templates: u32 id, u64 count, str text               (each)
//! columns:   u32 session[n], u32 template_id[n], i64 timestamp_us[n],
//!            i64 duration_us[n] (i64::MIN = none), u32 sql_len[n], u32 n_params[n]
//! sql:       the statements' texts back to back (sum of sql_len bytes)
//! params:    u32 len (u32::MAX = NULL) + bytes, for every parameter in statement order
//! ```
//!
//! Decoding checks every length, index and UTF-8 boundary: bad input is an error, never a
//! panic or an out-of-range index later.

use super::model::{Session, Statement, Template, Trace};

const MAGIC: &[u8; 8] = b"DBGYMTR1";
const NO_DURATION: i64 = i64::MIN;
const NULL_PARAM: u32 = u32::MAX;

/// Why bytes are not an encoded trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an encoded dbgym trace: {0}")]
pub struct DecodeError(String);

fn bad(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// The trace as bytes (see the module docs). Fails only for a string longer than 4 GiB.
pub fn encode(trace: &Trace) -> Result<Vec<u8>, String> {
    let n = trace.statements.len();
    let sql_bytes: usize = trace.statements.iter().map(|s| s.sql.len()).sum();
    let param_bytes: usize = trace
        .statements
        .iter()
        .flat_map(|s| &s.params)
        .map(|p| 4 + p.as_ref().map_or(0, String::len))
        .sum();
    let mut out = Vec::with_capacity(64 + n * 32 + sql_bytes + param_bytes);
    out.extend_from_slice(MAGIC);
    for count in [n, trace.sessions.len(), trace.templates.len()] {
        out.extend_from_slice(&(count as u64).to_le_bytes());
    }
    for s in &trace.sessions {
        for text in [&s.id, &s.user, &s.database] {
            put_str(&mut out, text)?;
        }
    }
    for t in &trace.templates {
        out.extend_from_slice(&t.id.to_le_bytes());
        out.extend_from_slice(&t.count.to_le_bytes());
        put_str(&mut out, &t.text)?;
    }
    let st = &trace.statements;
    for s in st {
        out.extend_from_slice(&s.session.to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(&s.template_id.to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(&s.timestamp_us.to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(&s.duration_us.unwrap_or(NO_DURATION).to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(&len32(s.sql.len())?.to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(&len32(s.params.len())?.to_le_bytes());
    }
    for s in st {
        out.extend_from_slice(s.sql.as_bytes());
    }
    for p in st.iter().flat_map(|s| &s.params) {
        match p {
            Some(v) => put_str(&mut out, v)?,
            None => out.extend_from_slice(&NULL_PARAM.to_le_bytes()),
        }
    }
    Ok(out)
}

fn len32(n: usize) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|&v| v != NULL_PARAM)
        .ok_or_else(|| format!("a text of {n} bytes is too long to encode"))
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    out.extend_from_slice(&len32(s.len())?.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("truncated in {what} (at byte {})", self.pos)))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of items of at least `min_bytes` each: larger than the rest of the input
    /// means corrupt (and must not size an allocation).
    fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize, DecodeError> {
        let n = self.u64(what)?;
        let rest = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes as u64) > rest {
            return Err(bad(format!("{what} count {n} exceeds the data")));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| bad(format!("{what} is not UTF-8: {e}")))
    }

    /// `n` fixed-size little-endian values.
    fn column<const W: usize, T>(
        &mut self,
        n: usize,
        what: &str,
        f: impl Fn([u8; W]) -> T,
    ) -> Result<Vec<T>, DecodeError> {
        let bytes = self.take(n.checked_mul(W).ok_or_else(|| bad(what))?, what)?;
        Ok(bytes
            .chunks_exact(W)
            .map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
}

/// The trace `bytes` encode (see [`encode`]).
pub fn decode(bytes: &[u8]) -> Result<Trace, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.take(MAGIC.len(), "the header")? != MAGIC {
        return Err(bad("wrong magic bytes (not made by Trace.to_bytes)"));
    }
    let n = r.count(32, "statement")?;
    let n_sessions = r.count(12, "session")?;
    let n_templates = r.count(16, "template")?;
    let mut sessions = Vec::with_capacity(n_sessions);
    for _ in 0..n_sessions {
        sessions.push(Session {
            id: r.string("a session id")?,
            user: r.string("a session user")?,
            database: r.string("a session database")?,
        });
    }
    let mut templates = Vec::with_capacity(n_templates);
    for _ in 0..n_templates {
        templates.push(Template {
            id: r.u32("a template id")?,
            count: r.u64("a template count")?,
            text: r.string("a template text")?,
        });
    }
    let session = r.column(n, "sessions", u32::from_le_bytes)?;
    let template_id = r.column(n, "template ids", u32::from_le_bytes)?;
    let timestamp = r.column(n, "timestamps", i64::from_le_bytes)?;
    let duration = r.column(n, "durations", i64::from_le_bytes)?;
    let sql_len = r.column(n, "text lengths", u32::from_le_bytes)?;
    let n_params = r.column(n, "parameter counts", u32::from_le_bytes)?;
    let total: usize = sql_len.iter().map(|&l| l as usize).sum();
    let arena = r.take(total, "the statement texts")?;
    // One UTF-8 check for all texts; each cut must then fall on a character boundary.
    let arena = std::str::from_utf8(arena)
        .map_err(|e| bad(format!("the statement texts are not UTF-8: {e}")))?;
    let mut statements = Vec::with_capacity(n);
    let mut at = 0usize;
    for i in 0..n {
        if session[i] as usize >= n_sessions || template_id[i] as usize >= n_templates {
            return Err(bad(format!(
                "statement {i} refers to session {} / template {} of {n_sessions} / {n_templates}",
                session[i], template_id[i]
            )));
        }
        let end = at + sql_len[i] as usize;
        let sql = arena
            .get(at..end)
            .ok_or_else(|| bad(format!("statement {i}'s text splits a character")))?;
        at = end;
        statements.push(Statement {
            session: session[i],
            timestamp_us: timestamp[i],
            template_id: template_id[i],
            sql: sql.to_owned(),
            params: Vec::new(),
            duration_us: (duration[i] != NO_DURATION).then_some(duration[i]),
        });
    }
    for (st, &k) in statements.iter_mut().zip(&n_params) {
        if k == 0 {
            continue;
        }
        // Each parameter takes at least 4 bytes: a larger count is corrupt.
        if (k as usize).saturating_mul(4) > bytes.len() - r.pos {
            return Err(bad("a parameter count exceeds the data"));
        }
        let mut params = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let len = r.u32("a parameter")?;
            if len == NULL_PARAM {
                params.push(None);
            } else {
                let b = r.take(len as usize, "a parameter")?;
                let v = std::str::from_utf8(b)
                    .map_err(|e| bad(format!("a parameter is not UTF-8: {e}")))?;
                params.push(Some(v.to_owned()));
            }
        }
        st.params = params;
    }
    if r.pos != bytes.len() {
        return Err(bad(format!(
            "{} bytes left over after the trace",
            bytes.len() - r.pos
        )));
    }
    Ok(Trace {
        statements,
        sessions,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        Trace {
            statements: vec![
                Statement {
                    session: 0,
                    timestamp_us: 1_700_000_000_000_000,
                    template_id: 0,
                    sql: "SELECT 'héllo'".into(),
                    params: vec![],
                    duration_us: Some(12),
                },
                Statement {
                    session: 1,
                    timestamp_us: -5,
                    template_id: 1,
                    sql: "SELECT $1, $2, $3".into(),
                    params: vec![Some("a b".into()), None, Some(String::new())],
                    duration_us: None,
                },
                Statement {
                    session: 0,
                    timestamp_us: 7,
                    template_id: 0,
                    sql: String::new(),
                    params: vec![],
                    duration_us: Some(0),
                },
            ],
            sessions: vec![
                Session {
                    id: "6b0.1".into(),
                    user: "alice".into(),
                    database: "shop".into(),
                },
                Session {
                    id: "s2".into(),
                    user: String::new(),
                    database: String::new(),
                },
            ],
            templates: vec![
                Template {
                    id: 0,
                    text: "SELECT $1".into(),
                    count: 2,
                },
                Template {
                    id: 1,
                    text: "SELECT $1, $2, $3".into(),
                    count: 1,
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        let bytes = encode(&t).unwrap();
        assert_eq!(decode(&bytes).unwrap(), t);
        let empty = Trace::default();
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn round_trips_a_parsed_log() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/trace/testdata/pg15.csv");
        let (t, _) =
            crate::trace::parse_log(&path, &crate::trace::LogOptions::default(), &mut |_, _| {
                true
            })
            .unwrap();
        assert!(t.statements.len() > 10);
        assert_eq!(decode(&encode(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer)
            .unwrap_err()
            .to_string()
            .contains("left over"));
        // Flip every byte: decoding may succeed (a changed timestamp is still a trace)
        // but must not panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
        assert!(decode(b"DBGYMTR0")
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }
}
