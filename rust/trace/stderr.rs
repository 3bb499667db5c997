//! stderr logs: `<log_line_prefix><SEVERITY>:  <message>`; the lines of a multi-line message
//! continue on lines starting with a tab (PostgreSQL inserts it after each newline). A message's
//! DETAIL/HINT/CONTEXT/STATEMENT/QUERY/LOCATION lines follow it directly (same write) and are read
//! as part of it; only DETAIL is used (extended-protocol parameters).

use std::borrow::Cow;
use std::ops::Range;

use super::builder::LogRecord;
use super::format::{utf8, LogFormat, Step};
use super::message::may_matter;
use super::prefix::{severity, Prefix};

pub struct StderrLog {
    pub prefix: Prefix,
}

fn is_secondary(sev: &[u8]) -> bool {
    matches!(
        sev,
        b"DETAIL" | b"HINT" | b"CONTEXT" | b"STATEMENT" | b"QUERY" | b"LOCATION"
    )
}

/// End of the line at `p` (exclusive) and the start of the next one; None: needs more input.
#[inline]
fn line_at(buf: &[u8], p: usize, eof: bool) -> Option<(usize, usize)> {
    match memchr::memchr(b'\n', &buf[p..]) {
        Some(k) => Some((p + k, p + k + 1)),
        None if eof => Some((buf.len(), buf.len())),
        None => None,
    }
}

/// Text pieces of one message (first line after the severity, then continuation lines).
struct Text {
    pieces: Vec<Range<usize>>,
}

impl Text {
    fn one(start: usize, end: usize) -> Text {
        let mut pieces = Vec::with_capacity(2);
        pieces.push(start..end);
        Text { pieces }
    }

    fn build<'a>(&self, buf: &'a [u8]) -> Result<Cow<'a, str>, (usize, String)> {
        if self.pieces.len() == 1 {
            let r = &self.pieces[0];
            return utf8(buf, r.start, r.end).map(Cow::Borrowed);
        }
        let mut s = String::with_capacity(self.pieces.iter().map(|r| r.len() + 1).sum());
        for (i, r) in self.pieces.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(utf8(buf, r.start, r.end)?);
        }
        Ok(Cow::Owned(s))
    }
}

enum More {
    Incomplete,
}

impl StderrLog {
    /// Continuation lines from `cur`: adds them to `text`, returns the position after them.
    fn continuations(
        &self,
        buf: &[u8],
        mut cur: usize,
        eof: bool,
        text: &mut Text,
    ) -> Result<usize, More> {
        loop {
            if cur >= buf.len() {
                return if eof { Ok(cur) } else { Err(More::Incomplete) };
            }
            if buf[cur] != b'\t' {
                return Ok(cur);
            }
            let (end, next) = line_at(buf, cur, eof).ok_or(More::Incomplete)?;
            text.pieces.push(cur + 1..end);
            cur = next;
        }
    }

    fn primary_line(&self, buf: &[u8], p: usize) -> bool {
        let end = memchr::memchr(b'\n', &buf[p..]).map_or(buf.len(), |k| p + k);
        let line = &buf[p..end];
        if line.is_empty() || line[0] == b'\t' {
            return false;
        }
        match self.prefix.match_line(line) {
            Some(f) => severity(&line[f.end..]).is_some_and(|(s, _)| !is_secondary(s)),
            None => false,
        }
    }
}

impl LogFormat for StderrLog {
    fn next<'a>(&self, buf: &'a [u8], pos: usize, base: u64, eof: bool) -> Step<'a> {
        let Some((line_end, next)) = line_at(buf, pos, eof) else {
            return Step::Incomplete;
        };
        let line = &buf[pos..line_end];
        if line.is_empty() {
            return Step::Record(None, next);
        }
        if line[0] == b'\t' {
            return Step::Error(
                pos,
                "continuation line (starts with a tab) without a message before it".into(),
            );
        }
        let Some(fields) = self.prefix.match_line(line) else {
            return Step::Error(
                pos,
                format!(
                    "line does not match log_line_prefix {:?} followed by a severity",
                    self.prefix.text
                ),
            );
        };
        let Some((sev, sev_len)) = severity(&line[fields.end..]) else {
            return Step::Error(
                pos + fields.end,
                "expected a severity such as `LOG:  `".into(),
            );
        };
        let mut message = Text::one(pos + fields.end + sev_len, line_end);
        let mut cur = match self.continuations(buf, next, eof, &mut message) {
            Ok(c) => c,
            Err(More::Incomplete) => return Step::Incomplete,
        };
        // Secondary lines of the same message.
        let mut detail: Option<Text> = None;
        loop {
            if cur >= buf.len() {
                if eof {
                    break;
                }
                return Step::Incomplete;
            }
            let Some((end2, next2)) = line_at(buf, cur, eof) else {
                return Step::Incomplete;
            };
            let line2 = &buf[cur..end2];
            let Some(f2) = self.prefix.match_line(line2) else {
                break;
            };
            let Some((sev2, len2)) = severity(&line2[f2.end..]) else {
                break;
            };
            if !is_secondary(sev2) {
                break;
            }
            let mut text = Text::one(cur + f2.end + len2, end2);
            cur = match self.continuations(buf, next2, eof, &mut text) {
                Ok(c) => c,
                Err(More::Incomplete) => return Step::Incomplete,
            };
            if sev2 == b"DETAIL" && detail.is_none() {
                detail = Some(text);
            }
        }
        let first = &message.pieces[0];
        if sev != b"LOG" || !may_matter(&buf[first.start..first.end]) {
            return Step::Record(None, cur);
        }
        let field = |r: &Option<Range<usize>>| -> Result<Cow<'a, str>, (usize, String)> {
            match r {
                Some(r) => utf8(buf, pos + r.start, pos + r.end).map(Cow::Borrowed),
                None => Ok(Cow::Borrowed("")),
            }
        };
        let rec = (|| {
            let session = if fields.session.is_some() {
                field(&fields.session)?
            } else {
                field(&fields.pid)?
            };
            let detail_offset = detail.as_ref().map_or(0, |d| d.pieces[0].start as u64);
            Ok::<_, (usize, String)>(LogRecord {
                timestamp_us: fields.timestamp_us.unwrap_or(0),
                session,
                user: field(&fields.user)?,
                database: field(&fields.database)?,
                message: message.build(buf)?,
                detail: match &detail {
                    Some(d) => Some(d.build(buf)?),
                    None => None,
                },
                detail_offset,
            })
        })();
        match rec {
            Ok(mut r) => {
                r.detail_offset += base;
                Step::Record(Some(r), cur)
            }
            Err((at, msg)) => Step::Error(at, msg),
        }
    }

    fn resync(&self, buf: &[u8], pos: usize) -> usize {
        let mut p = pos;
        // Move to a line start.
        if p > 0 && p < buf.len() && buf[p - 1] != b'\n' {
            match memchr::memchr(b'\n', &buf[p..]) {
                Some(k) => p += k + 1,
                None => return buf.len(),
            }
        }
        while p < buf.len() {
            if self.primary_line(buf, p) {
                return p;
            }
            match memchr::memchr(b'\n', &buf[p..]) {
                Some(k) => p += k + 1,
                None => return buf.len(),
            }
        }
        buf.len()
    }
}
