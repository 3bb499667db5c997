//! Errors of trace sources. Every variant names the file; parse errors also name the
//! 1-based line and the 0-based byte offset where the input went wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Malformed input at a known place.
    #[error("{path}:{line}: byte offset {offset}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        offset: u64,
        message: String,
    },

    /// The source as a whole cannot be read (format or prefix undetectable, bad arguments).
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },

    /// The progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,

    /// An invalid `log_line_prefix` given by the caller.
    #[error("invalid log_line_prefix {prefix:?}: {message}")]
    BadPrefix { prefix: String, message: String },
}

impl TraceError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            TraceError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            TraceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// A parse problem found inside a buffer, before the line number is known.
/// `offset` is absolute (from the start of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    pub offset: u64,
    pub message: String,
}

impl RawError {
    pub fn new(offset: u64, message: impl Into<String>) -> Self {
        RawError {
            offset,
            message: message.into(),
        }
    }
}
