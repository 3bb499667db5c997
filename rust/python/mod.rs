//! The PyO3 boundary: the only code that sees Python objects.
//! One file per concern; each exposes `register(m)`.

use pyo3::prelude::*;

mod benchmarks;
mod blocksync;
mod errors;
mod featurize;
mod job;
mod replay;
mod trace;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::check_classes(m.py())?;
    m.add("__version__", crate::VERSION)?;
    job::register(m)?;
    trace::register(m)?;
    replay::register(m)?;
    benchmarks::register(m)?;
    featurize::register(m)?;
    blocksync::register(m)?;
    Ok(())
}
