//! The three log formats (names and detection), the interface each implements, and the
//! loop that parses one chunk with it.

use super::builder::{ChunkBuilder, LogRecord};
use super::error::RawError;
use super::timestamp::parse_datetime;

/// A server log format (`log_destination`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Stderr,
    Csv,
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Stderr => "stderr",
            Format::Csv => "csvlog",
            Format::Json => "jsonlog",
        }
    }

    pub fn from_name(s: &str) -> Option<Format> {
        match s {
            "stderr" => Some(Format::Stderr),
            "csvlog" | "csv" => Some(Format::Csv),
            "jsonlog" | "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Format of a log from its first bytes: `{` starts jsonlog, a timestamp followed by `,`
/// starts csvlog, anything else is stderr.
pub fn detect_format(sample: &[u8]) -> Format {
    let s = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let s = &s[start..];
    if s.first() == Some(&b'{') {
        return Format::Json;
    }
    if let Some((len, _)) = parse_datetime(s) {
        if s.get(len) == Some(&b',') {
            return Format::Csv;
        }
    }
    Format::Stderr
}

/// Result of reading one record at a position of a buffer.
pub enum Step<'a> {
    /// A record ending at the given buffer position; `None` when it says nothing about
    /// statements (not a LOG message, blank line).
    Record(Option<LogRecord<'a>>, usize),
    /// The record does not end inside the buffer and more input follows.
    Incomplete,
    /// Malformed input; the offset is relative to the buffer.
    Error(usize, String),
}

pub trait LogFormat: Sync {
    /// Read the record starting at `pos`; `base` is the file offset of `buf[0]`, `eof` tells
    /// whether `buf` ends where the file ends.
    fn next<'a>(&self, buf: &'a [u8], pos: usize, base: u64, eof: bool) -> Step<'a>;

    /// A plausible record start at or after `pos` (a split point for parallel parsing; it is
    /// verified afterwards, so a wrong guess costs time, not correctness).
    fn resync(&self, buf: &[u8], pos: usize) -> usize;
}

/// Outcome of parsing the records that start in `[from, until)` of a buffer.
pub struct ChunkResult {
    pub from: usize,
    pub until: usize,
    /// End of the last record read (>= until unless `incomplete` or an error stopped it).
    pub end: usize,
    pub incomplete: bool,
    pub builder: ChunkBuilder,
    /// First error (strict mode only); absolute offset.
    pub error: Option<RawError>,
}

/// The physical lines of `buf[a..b]` (at least 1).
fn lines_in(buf: &[u8], a: usize, b: usize) -> u64 {
    let inner = &buf[a..b.min(buf.len())];
    let n = memchr::memchr_iter(b'\n', inner).count() as u64;
    if inner.last() == Some(&b'\n') {
        n.max(1)
    } else {
        n + 1
    }
}

#[allow(clippy::too_many_arguments)]
pub fn parse_chunk(
    fmt: &dyn LogFormat,
    buf: &[u8],
    base: u64,
    from: usize,
    until: usize,
    eof: bool,
    lenient: bool,
) -> ChunkResult {
    let mut builder = ChunkBuilder::new();
    let mut pos = from;
    let mut incomplete = false;
    let mut error = None;
    let skip = |builder: &mut ChunkBuilder, e: RawError, lines: u64| {
        builder.skipped_lines += lines;
        if builder.first_skipped.is_none() {
            builder.first_skipped = Some(e);
        }
    };
    while pos < until {
        match fmt.next(buf, pos, base, eof) {
            Step::Record(rec, end) => {
                builder.records += 1;
                if let Some(rec) = rec {
                    if let Err(e) = builder.push(rec) {
                        if lenient {
                            skip(&mut builder, e, lines_in(buf, pos, end));
                        } else {
                            error = Some(e);
                            break;
                        }
                    }
                }
                debug_assert!(end > pos);
                pos = end.max(pos + 1);
            }
            Step::Incomplete => {
                incomplete = true;
                break;
            }
            Step::Error(at, msg) => {
                let e = RawError::new(base + at as u64, msg);
                if !lenient {
                    error = Some(e);
                    break;
                }
                // Skip one physical line and try again from the next one.
                match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(k) => {
                        skip(&mut builder, e, 1);
                        pos += k + 1;
                    }
                    None if eof => {
                        skip(&mut builder, e, 1);
                        pos = buf.len();
                    }
                    None => {
                        incomplete = true;
                        break;
                    }
                }
            }
        }
    }
    ChunkResult {
        from,
        until,
        end: pos,
        incomplete,
        builder,
        error,
    }
}

/// UTF-8 text of `buf[r]`, or an error at the first invalid byte (buffer-relative offset).
#[inline]
pub fn utf8(buf: &[u8], start: usize, end: usize) -> Result<&str, (usize, String)> {
    std::str::from_utf8(&buf[start..end])
        .map_err(|e| (start + e.valid_up_to(), "invalid UTF-8".to_string()))
}
