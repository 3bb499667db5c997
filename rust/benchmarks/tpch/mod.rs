//! TPC-H: a deterministic, seeded data generator (COPY text, loaded by streaming COPY) and
//! the 22 queries with qgen-style parameters.

pub mod dists;
pub mod fmt;
pub mod load;
pub mod queries;
mod query_text;
pub mod tables;
pub mod text;

pub use tables::{Counts, Generator, Table};

/// The smallest scale factor the generator and the queries take.
pub const MIN_SCALE: f64 = 0.001;

/// The largest scale factor: the schema's keys are `integer`, and the sparse order keys
/// (8 of every 32) reach 6,000,000 * SF, which must stay below 2^31 (SF < 357); 300 is the
/// largest standard TPC-H scale factor below that. Exported to Python as
/// `dbgym._core.TPCH_MAX_SCALE` (the one source of the limit).
pub const MAX_SCALE: f64 = 300.0;

/// `scale` if it is a scale factor in [`MIN_SCALE`, `MAX_SCALE`].
pub fn check_scale(scale: f64) -> Result<f64, TpchError> {
    if scale.is_finite() && (MIN_SCALE..=MAX_SCALE).contains(&scale) {
        Ok(scale)
    } else {
        Err(TpchError::Scale(scale))
    }
}

/// Errors of the TPC-H generator, queries and loader.
#[derive(Debug, thiserror::Error)]
pub enum TpchError {
    #[error("TPC-H scale factor must be a number in [{MIN_SCALE}, {MAX_SCALE}], got {0}")]
    Scale(f64),
    #[error("unknown TPC-H table {0:?} (tables: region, nation, part, supplier, partsupp, customer, orders, lineitem)")]
    UnknownTable(String),
    #[error("TPC-H query number must be in 1..=22, got {0}")]
    QueryNumber(usize),
    #[error("a TPC-H workload needs at least one stream")]
    Streams,
    #[error("loading TPC-H table {table}: {message}")]
    Load { table: String, message: String },
    /// The DSN does not parse (the message masks its password).
    #[error("{0}")]
    InvalidDsn(String),
    #[error("cannot connect for loading {0}")]
    Connect(Box<crate::dsn::ConnectFailure>),
    #[error("loading was cancelled")]
    Cancelled,
}
