//! Python surface of the built-in benchmarks (rust/benchmarks): `dbgym._core.TpchGenerator`, the TPC-H queries
//! and the TPC-H / pgbench traces.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::{benchmark_error, invalid, tpch_error};
use super::job::{PyJob, Report};
use super::trace::PyTrace;
use crate::benchmarks::pgbench;
use crate::benchmarks::tpch::load::{self, LoadOptions, Progress};
use crate::benchmarks::tpch::{queries, Generator, Table, MAX_SCALE, MIN_SCALE};

fn tables_of(names: Option<Vec<String>>) -> PyResult<Vec<Table>> {
    match names {
        None => Ok(Table::ALL.to_vec()),
        Some(names) => names
            .iter()
            .map(|n| Table::from_name(n).map_err(tpch_error))
            .collect(),
    }
}

/// A deterministic TPC-H data generator at one scale factor and seed.
#[pyclass(name = "TpchGenerator", module = "dbgym._core", frozen)]
pub struct PyTpchGenerator {
    inner: Arc<Generator>,
}

#[pymethods]
impl PyTpchGenerator {
    #[new]
    fn new(py: Python<'_>, scale: f64, seed: u64) -> PyResult<Self> {
        let gen = py
            .detach(|| Generator::new(scale, seed))
            .map_err(tpch_error)?;
        Ok(PyTpchGenerator {
            inner: Arc::new(gen),
        })
    }

    #[getter]
    fn scale(&self) -> f64 {
        self.inner.scale
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Row count of each table (lineitem counted by drawing every order's line count).
    fn rows(&self, py: Python<'_>) -> HashMap<String, u64> {
        let gen = self.inner.clone();
        py.detach(move || {
            Table::ALL
                .iter()
                .map(|t| (t.name().to_string(), gen.rows(*t)))
                .collect()
        })
    }

    /// COPY text of a table, or of its generation units `[start, end)` (rows; orders for
    /// lineitem, parts for partsupp). Generated in parallel without the GIL.
    #[pyo3(signature = (table, start=None, end=None))]
    fn table<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        start: Option<u64>,
        end: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let t = Table::from_name(table).map_err(tpch_error)?;
        let units = self.inner.units(t);
        let (start, end) = (start.unwrap_or(0), end.unwrap_or(units).min(units));
        if start > end {
            return Err(invalid(format!(
                "unit range [{start}, {end}) of {table} is empty or reversed"
            )));
        }
        let gen = self.inner.clone();
        let data = py.detach(move || {
            if start == 0 && end == units {
                gen.table(t)
            } else {
                let mut out = Vec::new();
                gen.write(t, start..end, &mut out);
                out
            }
        });
        Ok(PyBytes::new(py, &data))
    }

    /// Starts streaming `tables` (default all) into the existing, empty tables of `dsn`
    /// with one COPY per table over `workers` connections, as a `Job` whose progress is the
    /// rows per table and whose result is `dict[str, int]` (rows loaded per table).
    /// Cancelling it aborts the running COPYs (and waits until the connections are gone).
    #[pyo3(signature = (dsn, tables=None, workers=2, chunk_bytes=1048576, schema=None))]
    fn load_start(
        &self,
        dsn: String,
        tables: Option<Vec<String>>,
        workers: usize,
        chunk_bytes: u64,
        schema: Option<String>,
    ) -> PyResult<PyJob> {
        let tables = tables_of(tables)?;
        let opts = LoadOptions {
            workers,
            chunk_bytes: chunk_bytes.max(4096),
            schema,
        };
        let state = Arc::new(Progress::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let totals: Vec<(Table, u64)> = tables.iter().map(|t| (*t, self.inner.rows(*t))).collect();
        let report: Report = {
            let state = state.clone();
            Box::new(move || {
                totals
                    .iter()
                    .map(|(t, total)| (t.name().to_string(), state.rows(*t), *total))
                    .collect()
            })
        };
        let (gen, stop) = (self.inner.clone(), cancel.clone());
        PyJob::spawn("load", cancel, report, move || {
            let result = load::load(&dsn, &gen, &tables, &opts, &state, &stop);
            let rows: HashMap<String, u64> = tables
                .iter()
                .map(|t| (t.name().to_string(), state.rows(*t)))
                .collect();
            Box::new(move |py: Python<'_>| {
                result.map_err(tpch_error)?;
                Ok(rows.into_pyobject(py)?.into_any().unbind())
            })
        })
    }
}

/// Query `number` (1..=22) with qgen-style parameters drawn for `(seed, stream)`.
#[pyfunction]
#[pyo3(signature = (number, scale=1.0, seed=0, stream=0))]
fn tpch_query(number: usize, scale: f64, seed: u64, stream: u64) -> PyResult<String> {
    queries::query(number, scale, seed, stream).map_err(tpch_error)
}

/// The template of query `number` (1..=22), parameters written `[NAME]`.
#[pyfunction]
fn tpch_template(number: usize) -> PyResult<&'static str> {
    queries::template(number).map_err(tpch_error)
}

/// A TPC-H workload trace: one session per stream, template id = query number - 1.
#[pyfunction]
#[pyo3(signature = (scale, seed, streams=1, queries=None, shuffle=true))]
fn tpch_trace(
    py: Python<'_>,
    scale: f64,
    seed: u64,
    streams: u32,
    queries: Option<Vec<usize>>,
    shuffle: bool,
) -> PyResult<PyTrace> {
    let queries = queries.unwrap_or_else(|| (1..=22).collect());
    let trace = py
        .detach(|| queries::trace(scale, seed, streams, &queries, shuffle))
        .map_err(tpch_error)?;
    Ok(PyTrace {
        inner: Arc::new(trace),
    })
}

/// A pgbench workload trace (`script`: "tpcb-like" | "select-only"), one session per client.
#[pyfunction]
#[pyo3(signature = (script, scale, clients, transactions, protocol="simple", rate=None, seed=0))]
#[allow(clippy::too_many_arguments)]
fn pgbench_trace(
    py: Python<'_>,
    script: &str,
    scale: u32,
    clients: u32,
    transactions: u32,
    protocol: &str,
    rate: Option<f64>,
    seed: u64,
) -> PyResult<PyTrace> {
    let script = pgbench::Script::from_name(script).map_err(benchmark_error)?;
    let extended = match protocol {
        "simple" => false,
        "extended" => true,
        other => {
            return Err(invalid(format!(
                "pgbench protocol must be \"simple\" or \"extended\", got {other:?}"
            )))
        }
    };
    let opts = pgbench::Options {
        script,
        scale,
        clients,
        transactions,
        extended,
        rate,
        seed,
    };
    let trace = py
        .detach(|| pgbench::trace(&opts))
        .map_err(benchmark_error)?;
    Ok(PyTrace {
        inner: Arc::new(trace),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TPCH_MIN_SCALE", MIN_SCALE)?;
    m.add("TPCH_MAX_SCALE", MAX_SCALE)?;
    m.add_class::<PyTpchGenerator>()?;
    m.add_function(wrap_pyfunction!(tpch_query, m)?)?;
    m.add_function(wrap_pyfunction!(tpch_template, m)?)?;
    m.add_function(wrap_pyfunction!(tpch_trace, m)?)?;
    m.add_function(wrap_pyfunction!(pgbench_trace, m)?)?;
    Ok(())
}
