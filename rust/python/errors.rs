//! Raising the exception classes defined in `dbgym.errors` from Rust, so Python
//! callers catch one hierarchy (`dbgym.errors.DbgymError`) whatever raised it.

use pyo3::prelude::*;

/// Build a `PyErr` of class `dbgym.errors.<class_name>` with `message`.
/// Falls back to `RuntimeError` if the class cannot be imported.
#[allow(dead_code)]
pub fn dbgym_error(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    let made = py
        .import("dbgym.errors")
        .and_then(|m| m.getattr(class_name))
        .and_then(|cls| cls.call1((message.clone(),)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}
