//! csvlog: one CSV record per message; text fields are quoted (`""` inside) and may hold
//! newlines. Columns used: 0 log_time, 1 user_name, 2 database_name, 3 process_id,
//! 5 session_id, 11 error_severity, 13 message, 14 detail (PostgreSQL 9.0+ layout; later
//! versions only append columns, which are skipped).

use std::borrow::Cow;

use super::builder::LogRecord;
use super::format::{utf8, LogFormat, Step};
use super::message::{may_matter, wants_detail};
use super::timestamp::parse_datetime;

pub struct CsvLog;

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Comma,
    Newline,
    Eof,
}

#[derive(Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    escaped: bool,
    next: usize,
    term: End,
}

enum Fail {
    Incomplete,
    Bad(usize, &'static str),
}

#[inline]
fn field(buf: &[u8], p: usize, eof: bool) -> Result<Field, Fail> {
    let len = buf.len();
    if p < len && buf[p] == b'"' {
        let mut j = p + 1;
        let mut escaped = false;
        let close = loop {
            match memchr::memchr(b'"', &buf[j..]) {
                None => {
                    return Err(if eof {
                        Fail::Bad(p, "unterminated quoted field (truncated record?)")
                    } else {
                        Fail::Incomplete
                    })
                }
                Some(k) => {
                    let q = j + k;
                    if q + 1 == len && !eof {
                        return Err(Fail::Incomplete);
                    }
                    if q + 1 < len && buf[q + 1] == b'"' {
                        escaped = true;
                        j = q + 2;
                    } else {
                        break q;
                    }
                }
            }
        };
        let after = close + 1;
        let (term, next) = match buf.get(after) {
            None if eof => (End::Eof, after),
            None => return Err(Fail::Incomplete),
            Some(b',') => (End::Comma, after + 1),
            Some(b'\n') => (End::Newline, after + 1),
            Some(_) => return Err(Fail::Bad(after, "expected ',' after a quoted field")),
        };
        return Ok(Field {
            start: p + 1,
            end: close,
            escaped,
            next,
            term,
        });
    }
    // Unquoted fields are short (numbers, ids, timestamps): a plain loop beats memchr here.
    let mut j = p;
    while j < len {
        let c = buf[j];
        if c == b',' || c == b'\n' {
            return Ok(Field {
                start: p,
                end: j,
                escaped: false,
                next: j + 1,
                term: if c == b',' { End::Comma } else { End::Newline },
            });
        }
        j += 1;
    }
    if eof {
        Ok(Field {
            start: p,
            end: len,
            escaped: false,
            next: len,
            term: End::Eof,
        })
    } else {
        Err(Fail::Incomplete)
    }
}

/// Skip the remaining fields from `p` to the end of the record.
fn skip_rest(buf: &[u8], mut j: usize, eof: bool) -> Result<usize, Fail> {
    let len = buf.len();
    loop {
        match memchr::memchr2(b'"', b'\n', &buf[j..]) {
            None => return if eof { Ok(len) } else { Err(Fail::Incomplete) },
            Some(k) if buf[j + k] == b'\n' => return Ok(j + k + 1),
            Some(k) => {
                let f = field(buf, j + k, eof)?;
                match f.term {
                    End::Comma => j = f.next,
                    End::Newline | End::Eof => return Ok(f.next),
                }
            }
        }
    }
}

fn text<'a>(buf: &'a [u8], f: &Field) -> Result<Cow<'a, str>, (usize, String)> {
    let s = utf8(buf, f.start, f.end)?;
    Ok(if f.escaped {
        Cow::Owned(s.replace("\"\"", "\""))
    } else {
        Cow::Borrowed(s)
    })
}

fn looks_like_record_start(rest: &[u8]) -> bool {
    match parse_datetime(rest) {
        Some((len, _)) => rest.get(len) == Some(&b','),
        None => false,
    }
}

impl LogFormat for CsvLog {
    fn next<'a>(&self, buf: &'a [u8], pos: usize, base: u64, eof: bool) -> Step<'a> {
        if buf[pos] == b'\n' {
            return Step::Record(None, pos + 1);
        }
        let mut fields = [Field {
            start: 0,
            end: 0,
            escaped: false,
            next: 0,
            term: End::Comma,
        }; 15];
        let mut p = pos;
        for (i, slot) in fields.iter_mut().enumerate() {
            let f = match field(buf, p, eof) {
                Ok(f) => f,
                Err(Fail::Incomplete) => return Step::Incomplete,
                Err(Fail::Bad(at, msg)) => {
                    return Step::Error(at, format!("garbled csvlog record: {msg}"))
                }
            };
            if i < 14 && f.term != End::Comma {
                return Step::Error(
                    pos,
                    format!(
                        "garbled csvlog record: {} fields, expected at least 15",
                        i + 1
                    ),
                );
            }
            *slot = f;
            p = f.next;
        }
        let end = if fields[14].term == End::Comma {
            match skip_rest(buf, p, eof) {
                Ok(e) => e,
                Err(Fail::Incomplete) => return Step::Incomplete,
                Err(Fail::Bad(at, msg)) => {
                    return Step::Error(at, format!("garbled csvlog record: {msg}"))
                }
            }
        } else {
            p
        };
        let sev = &fields[11];
        let msg = &buf[fields[13].start..fields[13].end];
        if &buf[sev.start..sev.end] != b"LOG" || !may_matter(msg) {
            return Step::Record(None, end);
        }
        let ts = &fields[0];
        let Some((_, timestamp_us)) = parse_datetime(&buf[ts.start..ts.end]) else {
            return Step::Error(
                pos,
                "garbled csvlog record: log_time is not a timestamp".into(),
            );
        };
        let rec = (|| {
            let session = text(buf, &fields[5])?;
            let session = if session.is_empty() {
                text(buf, &fields[3])?
            } else {
                session
            };
            let detail = if fields[14].end > fields[14].start && wants_detail(msg) {
                Some(text(buf, &fields[14])?)
            } else {
                None
            };
            Ok::<_, (usize, String)>(LogRecord {
                timestamp_us,
                session,
                user: text(buf, &fields[1])?,
                database: text(buf, &fields[2])?,
                message: text(buf, &fields[13])?,
                detail,
                detail_offset: base + fields[14].start as u64,
            })
        })();
        match rec {
            Ok(r) => Step::Record(Some(r), end),
            Err((at, msg)) => Step::Error(at, msg),
        }
    }

    fn resync(&self, buf: &[u8], pos: usize) -> usize {
        let mut p = pos;
        while p < buf.len() {
            if (p == 0 || buf[p - 1] == b'\n') && looks_like_record_start(&buf[p..]) {
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
