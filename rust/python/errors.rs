//! The exception classes of `dbgym.errors`, raised from Rust, and the mapping of every Rust
//! error type onto them, so Python callers catch one hierarchy whatever raised it.
//!
//! Each class is imported once through PyO3's `import_exception!`: a typed handle, so a
//! misspelt class is a compile error at its use. [`check_classes`] imports every class when
//! the extension module is initialised, so a class missing from `dbgym/errors.py` fails the
//! import of `dbgym._core` (an ImportError naming it) instead of a later raise.
//!
//! Caller mistakes (bad options, a malformed log or plan, an invalid DSN) are
//! `InvalidArgumentError` or one of its subclasses (also `ValueError`); a failed connection is
//! `ConnectError` (an `InstanceError`); what remains is a domain error (`WorkloadError`).
//! No path raises a bare ValueError/TypeError/RuntimeError or a bare DbgymError.

use pyo3::prelude::*;
use pyo3::types::{PyType, PyTypeMethods};

use crate::benchmarks::{BenchmarkError, TpchError};
use crate::dsn::ConnectFailure;
use crate::featurize::PlanFormatError as RustPlanFormatError;
use crate::replay::ReplayError;
use crate::trace::TraceError;

macro_rules! dbgym_exceptions {
    ($($name:ident),+ $(,)?) => {
        $(pyo3::import_exception!(dbgym.errors, $name);)+

        /// The names of the imported classes, checked by [`check_classes`].
        const CLASSES: &[&str] = &[$(stringify!($name)),+];
    };
}

dbgym_exceptions!(
    InvalidArgumentError,
    TraceParseError,
    PlanFormatError,
    PlanCatalogError,
    ConnectError,
    WorkloadError,
);

/// Imports every class the extension raises (see the module docs); an ImportError names
/// the first one `dbgym.errors` lacks.
pub fn check_classes(py: Python<'_>) -> PyResult<()> {
    let module = py.import("dbgym.errors")?;
    let base = py.get_type::<pyo3::exceptions::PyException>();
    for name in CLASSES {
        let ok = module
            .getattr(*name)
            .ok()
            .and_then(|c| c.cast_into::<PyType>().ok())
            .is_some_and(|c| c.is_subclass(&base).unwrap_or(false));
        if !ok {
            return Err(pyo3::exceptions::PyImportError::new_err(format!(
                "dbgym._core raises dbgym.errors.{name}, which is missing or not an exception \
                 class; the extension and dbgym/errors.py are out of step"
            )));
        }
    }
    Ok(())
}

/// A domain failure that is neither a caller mistake nor a server fault: `WorkloadError`.
pub fn workload_error(message: impl Into<String>) -> PyErr {
    WorkloadError::new_err(message.into())
}

/// A caller mistake: `InvalidArgumentError(message)`.
pub fn invalid(message: impl Into<String>) -> PyErr {
    InvalidArgumentError::new_err(message.into())
}

/// `ConnectError(message, host, port, user, database, sqlstate)`; `what` starts the
/// message ("cannot connect to the replay target").
pub fn connect_error(what: &str, f: &ConnectFailure) -> PyErr {
    ConnectError::new_err((
        format!("{what} {f}"),
        f.endpoint.host.clone(),
        f.endpoint.port,
        f.endpoint.user.clone(),
        f.endpoint.database.clone(),
        f.sqlstate.clone(),
    ))
}

/// Trace sources: a malformed log or SQL file (or a `log_line_prefix` that cannot read it)
/// is a `TraceParseError` with `path`, `line` and `offset` (those known).
pub fn trace_error(e: TraceError) -> PyErr {
    let message = e.to_string();
    let (path, line, offset) = match &e {
        TraceError::Parse {
            path, line, offset, ..
        } => (Some(path), Some(*line), Some(*offset)),
        TraceError::NotFound { path }
        | TraceError::Io { path, .. }
        | TraceError::Source { path, .. } => (Some(path), None, None),
        TraceError::BadPrefix { .. } => (None, None, None),
        TraceError::Cancelled => return WorkloadError::new_err(message),
    };
    TraceParseError::new_err((message, path.map(|p| p.display().to_string()), line, offset))
}

/// A malformed plan: `PlanFormatError(message, plan_index, path)`.
pub fn plan_error(e: RustPlanFormatError) -> PyErr {
    let message = e.to_string();
    PlanFormatError::new_err((message, e.plan, e.path))
}

/// A plan that is not text or JSON-like data: `PlanFormatError` naming its index.
pub fn plan_input_error(plan: usize, message: String) -> PyErr {
    PlanFormatError::new_err((format!("plan {plan}: {message}"), plan, "$".to_string()))
}

/// An invalid plan catalog: `PlanCatalogError(message)`.
pub fn catalog_error(message: String) -> PyErr {
    PlanCatalogError::new_err(message)
}

/// Replay: bad options, DSN or trace are caller mistakes; a failed connection is a
/// `ConnectError`; anything else (the replay machinery failed) a `WorkloadError`.
pub fn replay_error(e: ReplayError) -> PyErr {
    match &e {
        ReplayError::InvalidOption(_)
        | ReplayError::InvalidDsn(_)
        | ReplayError::InvalidTrace(_) => invalid(e.to_string()),
        ReplayError::Connect(f) => connect_error("cannot connect to the replay target", f),
        ReplayError::Internal(_) => WorkloadError::new_err(e.to_string()),
    }
}

/// Benchmarks: bad parameters are caller mistakes; TPC-H errors as [`tpch_error`].
pub fn benchmark_error(e: BenchmarkError) -> PyErr {
    match e {
        BenchmarkError::Tpch(e) => tpch_error(e),
        BenchmarkError::Script(_) | BenchmarkError::Pgbench(_) => invalid(e.to_string()),
    }
}

/// TPC-H: bad parameters are caller mistakes; a failed connection is a `ConnectError`; a
/// failed or cancelled load a `WorkloadError`.
pub fn tpch_error(e: TpchError) -> PyErr {
    match &e {
        TpchError::Connect(f) => connect_error("cannot connect for loading", f),
        TpchError::Load { .. } | TpchError::Cancelled => WorkloadError::new_err(e.to_string()),
        TpchError::Scale(_)
        | TpchError::UnknownTable(_)
        | TpchError::QueryNumber(_)
        | TpchError::Streams
        | TpchError::InvalidDsn(_) => invalid(e.to_string()),
    }
}

/// An internal inconsistency (a bug in dbgym, not the caller's input) while building a
/// result; raised as the domain error of the call.
pub fn internal_plan_error(what: impl std::fmt::Display) -> PyErr {
    PlanFormatError::new_err((
        format!("internal error (a bug in dbgym): {what}"),
        None::<usize>,
        None::<String>,
    ))
}
