//! Built-in benchmarks as data and workloads: TPC-H ([`tpch`]: a deterministic, seeded data
//! generator streamed into PostgreSQL with COPY, and the 22 queries with qgen-style
//! parameters) and pgbench ([`pgbench`]: its built-in scripts as traces). Both draw from the
//! seedable generator of [`rng`].

pub mod pgbench;
pub mod rng;
pub mod tpch;

pub use tpch::TpchError;

/// Errors of the benchmarks: a TPC-H error, or a bad pgbench workload.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error(transparent)]
    Tpch(#[from] TpchError),
    #[error("unknown pgbench script {0:?} (scripts: tpcb-like, select-only)")]
    Script(String),
    #[error("pgbench workload: {0}")]
    Pgbench(String),
}
