//! jsonlog (PostgreSQL 15+): one JSON object per line. Keys used: timestamp, user, dbname,
//! pid, session_id, error_severity, message, detail.

use std::borrow::Cow;

use serde::Deserialize;

use super::builder::LogRecord;
use super::format::{detect_format, Format, LogFormat, Step};
use super::timestamp::parse_datetime;

pub struct JsonLog;

#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dbname: Option<Cow<'a, str>>,
    pid: Option<i64>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    detail: Option<Cow<'a, str>>,
}

fn cow_str<'a>(c: Option<Cow<'a, str>>) -> Cow<'a, str> {
    c.unwrap_or(Cow::Borrowed(""))
}

/// Why a line that does not start with `{` is not a jsonlog record, with a guess at what
/// the file is instead.
fn not_a_record(line: &[u8]) -> String {
    let guess = match detect_format(line) {
        Format::Csv => "it looks like csvlog: read it with format='csvlog', or leave the format unset to detect it",
        Format::Stderr => "it looks like a stderr log: read it with format='stderr', or leave the format unset to detect it",
        Format::Json => "it does not start with '{'",
    };
    format!("not a jsonlog record (one JSON object per line); {guess}")
}

impl LogFormat for JsonLog {
    fn next<'a>(&self, buf: &'a [u8], pos: usize, base: u64, eof: bool) -> Step<'a> {
        let (end, next) = match memchr::memchr(b'\n', &buf[pos..]) {
            Some(k) => (pos + k, pos + k + 1),
            None if eof => (buf.len(), buf.len()),
            None => return Step::Incomplete,
        };
        let line = &buf[pos..end];
        let Some(first) = line.iter().position(|c| !c.is_ascii_whitespace()) else {
            return Step::Record(None, next);
        };
        if line[first] != b'{' {
            return Step::Error(pos + first, not_a_record(line));
        }
        let rec: Rec<'a> = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                let at = pos + e.column().saturating_sub(1).min(line.len());
                return Step::Error(at, format!("garbled jsonlog record: {e}"));
            }
        };
        if rec.error_severity.as_deref() != Some("LOG") {
            return Step::Record(None, next);
        }
        let Some(ts) = rec.timestamp.as_deref() else {
            return Step::Error(pos, "jsonlog record without a timestamp".into());
        };
        let Some((_, timestamp_us)) = parse_datetime(ts.as_bytes()) else {
            return Step::Error(pos, format!("jsonlog timestamp {ts:?} is not a timestamp"));
        };
        let session = match (rec.session_id, rec.pid) {
            (Some(s), _) if !s.is_empty() => s,
            (_, Some(pid)) => Cow::Owned(pid.to_string()),
            _ => Cow::Borrowed(""),
        };
        Step::Record(
            Some(LogRecord {
                timestamp_us,
                session,
                user: cow_str(rec.user),
                database: cow_str(rec.dbname),
                message: cow_str(rec.message),
                detail: rec.detail,
                detail_offset: base + pos as u64,
            }),
            next,
        )
    }

    fn resync(&self, buf: &[u8], pos: usize) -> usize {
        if pos == 0 || buf.get(pos - 1) == Some(&b'\n') {
            return pos.min(buf.len());
        }
        match memchr::memchr(b'\n', &buf[pos.min(buf.len())..]) {
            Some(k) => pos + k + 1,
            None => buf.len(),
        }
    }
}
