//! Reading a log file: format and prefix detection, block-wise streaming (memory bounded by the
//! block size, not the file size), parallel parsing of each block on rayon, and the in-order
//! merge.
//!
//! Parallelism: a block is cut into chunks at plausible record starts (`LogFormat::resync`),
//! chunks are parsed independently, then merged in order. A cut may be wrong (csvlog: a line
//! inside a quoted field that looks like a record start): each chunk must start exactly where
//! the previous one's last record ended, and a chunk that does not is parsed again from the right
//! place, sequentially. So the result never depends on the chunking.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::builder::{ChunkBuilder, Merger};
use super::csvlog::CsvLog;
use super::error::{RawError, TraceError};
pub use super::format::{detect_format, Format};
use super::format::{parse_chunk, ChunkResult, LogFormat};
use super::jsonlog::JsonLog;
use super::model::Trace;
use super::prefix::{detect, Prefix};
use super::stderr::StderrLog;

/// Longest single record accepted; longer means a broken quote swallowing the file.
const MAX_RECORD: usize = 512 << 20;

/// Room before each block for the previous block's unfinished last record (at most).
const GAP: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct LogOptions {
    pub format: Option<Format>,
    pub log_line_prefix: Option<String>,
    /// Skip (and count) malformed lines instead of failing.
    pub lenient: bool,
    /// Worker threads; 0 = all cores, 1 = the calling thread only (no pool, no reader thread).
    pub threads: usize,
    /// Bytes read per block and worker.
    pub block_per_thread: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            format: None,
            log_line_prefix: None,
            lenient: false,
            threads: 0,
            block_per_thread: 4 << 20,
        }
    }
}

/// What parsing saw besides the statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseStats {
    pub format: Format,
    /// The prefix used (given or detected), stderr only.
    pub log_line_prefix: Option<String>,
    pub bytes: u64,
    /// Log records (messages) read, of any kind.
    pub records: u64,
    /// Lines skipped as malformed (lenient mode).
    pub skipped_lines: u64,
    /// The first skipped problem, formatted like an error.
    pub first_skipped: Option<String>,
}

/// 1-based line number of an absolute byte offset (re-reads the file; used for errors only).
pub fn line_of(path: &Path, offset: u64) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    let mut lines = 1u64;
    while seen < offset {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = ((offset - seen) as usize).min(n);
        lines += memchr::memchr_iter(b'\n', &buf[..take]).count() as u64;
        seen += n as u64;
    }
    lines
}

fn to_error(path: &Path, e: RawError) -> TraceError {
    TraceError::Parse {
        path: path.to_path_buf(),
        line: line_of(path, e.offset),
        offset: e.offset,
        message: e.message,
    }
}

fn read_more(
    path: &Path,
    f: &mut File,
    buf: &mut Vec<u8>,
    target: usize,
) -> Result<bool, TraceError> {
    // `read_to_end` fills spare capacity without zeroing it first.
    let want = target.saturating_sub(buf.len());
    buf.reserve(want);
    let mut got = 0usize;
    while got < want {
        match f.by_ref().take((want - got) as u64).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TraceError::io(path, e)),
        }
    }
    Ok(false)
}

/// Parse a PostgreSQL server log into a trace. `progress(bytes_done, bytes_total)` is called
/// after each block; returning false cancels (`TraceError::Cancelled`).
pub fn parse_log(
    path: &Path,
    opts: &LogOptions,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<(Trace, ParseStats), TraceError> {
    let mut file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    let meta = file.metadata().map_err(|e| TraceError::io(path, e))?;
    if meta.is_dir() {
        return Err(TraceError::Source {
            path: path.to_path_buf(),
            message: "is a directory, not a log file".into(),
        });
    }
    let total = meta.len();
    let threads = match opts.threads {
        0 => crate::pool::threads().max(1),
        n => n,
    };
    let block = opts.block_per_thread.max(4096) * threads;

    // Blocks start small and double up to `block`, so the first (unoverlapped) read is short.
    let mut next_block = (threads << 20).min(block);
    let mut buf: Vec<u8> = Vec::new();
    let mut eof = read_more(path, &mut file, &mut buf, next_block)?;
    let format = opts.format.unwrap_or_else(|| {
        if buf.iter().all(u8::is_ascii_whitespace) {
            match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => Format::Csv,
                Some("json") => Format::Json,
                _ => Format::Stderr,
            }
        } else {
            detect_format(&buf[..buf.len().min(1 << 16)])
        }
    });
    let mut used_prefix = None;
    let fmt: Box<dyn LogFormat> = match format {
        Format::Csv => Box::new(CsvLog),
        Format::Json => Box::new(JsonLog),
        Format::Stderr => {
            let prefix = match &opts.log_line_prefix {
                Some(p) => Prefix::parse(p)?,
                None if buf.iter().all(u8::is_ascii_whitespace) => Prefix::parse("%m [%p] ")?,
                None => detect(&buf[..buf.len().min(1 << 18)]).ok_or_else(|| TraceError::Source {
                    path: path.to_path_buf(),
                    message: "cannot detect the log_line_prefix of this stderr log (no common prefix \
                              matches its first lines); pass log_line_prefix"
                        .into(),
                })?,
            };
            used_prefix = Some(prefix.text.clone());
            Box::new(StderrLog { prefix })
        }
    };

    let pool = if threads > 1 {
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| TraceError::Source {
                    path: path.to_path_buf(),
                    message: format!("cannot start {threads} parser threads: {e}"),
                })?,
        )
    } else {
        None
    };

    let mut merger = Merger::new();
    let mut pending: Vec<ChunkBuilder> = Vec::new();
    let mut base: u64 = 0;
    // Double buffering: while block `cur[start..]` is parsed, the next one is read into the
    // other buffer after a gap where the current block's unfinished last record is put, so a
    // block is never copied. Memory: two buffers of one block (+ gap) each. With a pool, the
    // read and the previous block's merge are one more task beside the chunk tasks on the
    // same threads (no extra thread competing for the cores); with one thread, everything
    // runs in turn on the caller's thread.
    let gap = GAP.min(block);
    let mut cur = buf;
    let mut start = 0usize;
    let mut next: Vec<u8> = Vec::new();
    loop {
        let read_next = !eof;
        if read_next {
            next.clear();
            next.resize(gap, 0);
            next_block = (next_block * 2).min(block);
        }
        let want = gap + next_block;
        let data = &cur[start..];
        let fmt_ref = fmt.as_ref();
        let merge_and_read = |merger: &mut Merger,
                              pending: &mut Vec<ChunkBuilder>,
                              file: &mut File,
                              next: &mut Vec<u8>| {
            for b in pending.drain(..) {
                merger.merge(b);
            }
            if read_next {
                read_more(path, file, next, want)
            } else {
                Ok(true)
            }
        };
        let (read, parsed) = match &pool {
            Some(pool) => pool.install(|| {
                rayon::join(
                    || merge_and_read(&mut merger, &mut pending, &mut file, &mut next),
                    || parse_and_verify(fmt_ref, data, base, eof, opts.lenient, Some(threads)),
                )
            }),
            None => {
                let parsed = parse_and_verify(fmt_ref, data, base, eof, opts.lenient, None);
                let read = merge_and_read(&mut merger, &mut pending, &mut file, &mut next);
                (read, parsed)
            }
        };
        let (builders, consumed) = parsed.map_err(|e| to_error(path, e))?;
        pending = builders;
        base += consumed as u64;
        if !read_next {
            break;
        }
        eof = read?;
        if !progress(base, total) {
            return Err(TraceError::Cancelled);
        }
        let mut carry = &data[consumed..];
        if carry.len() > MAX_RECORD {
            let e = RawError::new(
                base,
                format!(
                    "record longer than {} MiB (unterminated quoted field?)",
                    MAX_RECORD >> 20
                ),
            );
            if !opts.lenient {
                return Err(to_error(path, e));
            }
            let skip = memchr::memchr(b'\n', carry).map_or(carry.len(), |k| k + 1);
            merger.skipped_lines += 1;
            merger.first_skipped.get_or_insert(e);
            carry = &carry[skip..];
            base += skip as u64;
        }
        if carry.len() <= gap {
            next[gap - carry.len()..gap].copy_from_slice(carry);
            start = gap - carry.len();
        } else {
            let mut joined = Vec::with_capacity(carry.len() + next.len() - gap);
            joined.extend_from_slice(carry);
            joined.extend_from_slice(&next[gap..]);
            next = joined;
            start = 0;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    for b in pending.drain(..) {
        merger.merge(b);
    }
    progress(base, total);
    let first_skipped = merger
        .first_skipped
        .clone()
        .map(|e| to_error(path, e).to_string());
    let stats = ParseStats {
        format,
        log_line_prefix: used_prefix,
        bytes: base,
        records: merger.records,
        skipped_lines: merger.skipped_lines,
        first_skipped,
    };
    Ok((merger.finish(), stats))
}

/// Parse the complete records of `buf` (in parallel when `parallel`, on the current rayon
/// pool) and verify the chunk cuts. Returns the chunks' statements in file order and the bytes
/// consumed (the rest is an incomplete record to carry into the next block).
fn parse_and_verify(
    fmt: &dyn LogFormat,
    buf: &[u8],
    base: u64,
    eof: bool,
    lenient: bool,
    parallel: Option<usize>,
) -> Result<(Vec<ChunkBuilder>, usize), RawError> {
    if buf.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let results: Vec<ChunkResult> = match parallel {
        None => vec![parse_chunk(fmt, buf, base, 0, buf.len(), eof, lenient)],
        Some(threads) => {
            // Small chunks (about 512 KiB) so work stealing evens out the end of each block.
            let n = (buf.len() >> 19).max(threads * 2);
            let step = buf.len() / n;
            let mut bounds = vec![0usize];
            for k in 1..n {
                let last = *bounds.last().unwrap_or(&0);
                let cut = fmt.resync(buf, (k * step).max(last));
                if cut < buf.len() && cut > last {
                    bounds.push(cut);
                }
            }
            bounds.push(buf.len());
            let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            ranges
                .par_iter()
                .map(|&(a, b)| parse_chunk(fmt, buf, base, a, b, eof, lenient))
                .collect()
        }
    };
    let mut expected = 0usize;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        if r.until <= expected {
            continue;
        }
        let r = if r.from == expected {
            r
        } else {
            parse_chunk(fmt, buf, base, expected, r.until, eof, lenient)
        };
        if let Some(e) = r.error {
            return Err(e);
        }
        expected = r.end;
        let incomplete = r.incomplete;
        out.push(r.builder);
        if incomplete {
            break;
        }
    }
    Ok((out, expected))
}

/// Convenience for callers that only have a path.
pub fn parse_log_file(
    path: impl Into<PathBuf>,
    opts: &LogOptions,
) -> Result<(Trace, ParseStats), TraceError> {
    parse_log(&path.into(), opts, &mut |_, _| true)
}
