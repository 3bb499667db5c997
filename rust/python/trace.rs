//! Python surface of traces: the `dbgym._core.Trace` class.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::trace::Trace;

/// An immutable workload trace held by Rust. Python code wraps it in `dbgym.Workload`.
#[pyclass(name = "Trace", module = "dbgym._core", frozen)]
pub struct PyTrace {
    pub inner: Arc<Trace>,
}

#[pymethods]
impl PyTrace {
    fn __len__(&self) -> usize {
        self.inner.statements.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTrace>()
}
