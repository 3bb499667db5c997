//! dbgym's performance core.
//!
//! Each concern lives in its own module and knows nothing about Python:
//! - `trace`: workload-log parsing and templatizing (issue: workloads)
//! - `benchmarks`: TPC-H data and query generation and loading, pgbench workloads
//! - `replay`: tokio-postgres replay engine (issue: workloads)
//! - `featurize`: EXPLAIN-plan featurization (issue: plan featurization)
//! - `blocksync`: block-level file sync for snapshot restore (issue: foundation)
//! - `dsn`: connection strings: parsing, password redaction, connection-error facts
//! - `sqllex`: where SQL strings, dollar quotes and comments end (shared by trace and replay)
//!
//! The PyO3 surface is `python/` (compiled with the `python` feature only); it
//! converts between these modules' Rust types and Python/numpy objects, and maps
//! errors onto the exception classes of `dbgym.errors`.

pub mod benchmarks;
pub mod blocksync;
pub mod calendar;
pub mod dsn;
pub mod featurize;
pub mod pool;
pub mod replay;
pub mod sqllex;
pub mod trace;

#[cfg(feature = "python")]
mod python;

/// Version of the core, exposed to Python as `dbgym._core.__version__`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
