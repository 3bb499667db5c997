//! Built-in benchmarks: a deterministic, seeded TPC-H data generator (COPY text, loaded by
//! streaming COPY), the 22 TPC-H queries with qgen-style parameters, and pgbench workloads.

pub mod dists;
pub mod fmt;
pub mod load;
pub mod pgbench;
pub mod queries;
mod query_text;
pub mod rng;
pub mod tables;
pub mod text;

#[cfg(test)]
mod tables_tests;

pub use tables::{Counts, Generator, Table};

/// Errors of the benchmark generators and the loader.
#[derive(Debug, thiserror::Error)]
pub enum TpchError {
    #[error("TPC-H scale factor must be a number in [0.001, 100000], got {0}")]
    Scale(f64),
    #[error("unknown TPC-H table {0:?} (tables: region, nation, part, supplier, partsupp, customer, orders, lineitem)")]
    UnknownTable(String),
    #[error("TPC-H query number must be in 1..=22, got {0}")]
    QueryNumber(usize),
    #[error("a TPC-H workload needs at least one stream")]
    Streams,
    #[error("unknown pgbench script {0:?} (scripts: tpcb-like, select-only)")]
    Script(String),
    #[error("pgbench workload: {0}")]
    Pgbench(String),
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
