//! Python surface of plan featurization: `dbgym._core.PlanCatalog`, `featurize_plans`,
//! `parse_plans_only` and `feature_layout`. Plans cross as borrowed `str`/`bytes`
//! buffers; results cross as numpy arrays that take ownership of the Rust vectors.

use std::sync::Arc;

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::featurize::{self, Encoding, Layout, PlanCatalog, PlanFormatError, TARGET_NAMES};

use super::errors::dbgym_error;

/// Relations, indexes and columns that fix the one-hot columns of the featurizer.
#[pyclass(name = "PlanCatalog", module = "dbgym._core", frozen)]
pub struct PyPlanCatalog {
    pub inner: Arc<PlanCatalog>,
}

#[pymethods]
impl PyPlanCatalog {
    #[new]
    #[pyo3(signature = (relations = Vec::new(), indexes = Vec::new(), columns = Vec::new()))]
    fn new(
        py: Python<'_>,
        relations: Vec<String>,
        indexes: Vec<String>,
        columns: Vec<String>,
    ) -> PyResult<Self> {
        PlanCatalog::new(relations, indexes, columns)
            .map(|c| PyPlanCatalog { inner: Arc::new(c) })
            .map_err(|e| dbgym_error(py, "PlanCatalogError", e))
    }

    #[getter]
    fn relations(&self) -> Vec<String> {
        self.inner.relations().to_vec()
    }

    #[getter]
    fn indexes(&self) -> Vec<String> {
        self.inner.indexes().to_vec()
    }

    #[getter]
    fn columns(&self) -> Vec<String> {
        self.inner.columns().to_vec()
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Self> {
        PlanCatalog::from_json(text)
            .map(|c| PyPlanCatalog { inner: Arc::new(c) })
            .map_err(|e| dbgym_error(py, "PlanCatalogError", e))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyPlanCatalog>()
            .is_ok_and(|o| *o.get().inner == *self.inner)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.relations().hash(&mut h);
        self.inner.indexes().hash(&mut h);
        self.inner.columns().hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "PlanCatalog({} relations, {} indexes, {} columns)",
            self.inner.relations().len(),
            self.inner.indexes().len(),
            self.inner.columns().len()
        )
    }
}

fn plan_error(py: Python<'_>, e: PlanFormatError) -> PyErr {
    let message = e.to_string();
    let made = py
        .import("dbgym.errors")
        .and_then(|m| m.getattr("PlanFormatError"))
        .and_then(|cls| cls.call1((message.clone(), e.plan, e.path)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => dbgym_error(py, "PlanFormatError", message),
    }
}

fn parse_encoding(name: &str) -> PyResult<Encoding> {
    Encoding::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "encoding must be \"qppnet\" or \"tcnn\", got {name:?}"
        ))
    })
}

/// The Python objects holding the plan texts: one `str`/`bytes`, or a sequence of them.
fn plan_objects<'py>(plans: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if plans.is_instance_of::<PyString>() || plans.is_instance_of::<PyBytes>() {
        return Ok(vec![plans.clone()]);
    }
    if let Ok(list) = plans.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = plans.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    match plans.try_iter() {
        Ok(it) => it.collect(),
        Err(_) => Err(PyTypeError::new_err(format!(
            "plans must be a str, bytes or a sequence of them, got {}",
            plans.get_type().name()?
        ))),
    }
}

/// Borrow each object's UTF-8 buffer; the objects in `objs` keep them alive.
fn plan_bytes<'a>(objs: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<&'a [u8]>> {
    let mut out = Vec::with_capacity(objs.len());
    for (i, o) in objs.iter().enumerate() {
        if let Ok(s) = o.cast::<PyString>() {
            let text = s.to_str().map_err(|e| {
                PyValueError::new_err(format!("plan {i}: not valid UTF-8 text: {e}"))
            })?;
            out.push(text.as_bytes());
        } else if let Ok(b) = o.cast::<PyBytes>() {
            out.push(b.as_bytes());
        } else {
            return Err(PyTypeError::new_err(format!(
                "plan {i}: expected str or bytes (EXPLAIN (FORMAT JSON) text), got {}",
                o.get_type().name()?
            )));
        }
    }
    Ok(out)
}

/// Featurize EXPLAIN (FORMAT JSON) texts into a dict of numpy arrays (see
/// `dbgym.plans.featurize` for the fields). Runs without the GIL.
#[pyfunction]
fn featurize_plans<'py>(
    py: Python<'py>,
    plans: &Bound<'py, PyAny>,
    catalog: &PyPlanCatalog,
    encoding: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let encoding = parse_encoding(encoding)?;
    let objs = plan_objects(plans)?;
    let texts = plan_bytes(&objs)?;
    let cat = Arc::clone(&catalog.inner);
    let batch = py
        .detach(|| featurize::featurize(&texts, &cat, encoding))
        .map_err(|e| plan_error(py, e))?;

    let n = batch.n_nodes();
    let out = PyDict::new(py);
    out.set_item("encoding", encoding.name())?;
    let features = Array2::from_shape_vec((n, batch.width), batch.features)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    out.set_item("features", features.into_pyarray(py))?;
    out.set_item("node_type", batch.node_type.into_pyarray(py))?;
    out.set_item("parent", batch.parent.into_pyarray(py))?;
    out.set_item("relationship", batch.relationship.into_pyarray(py))?;
    out.set_item("offsets", batch.offsets.into_pyarray(py))?;
    if encoding == Encoding::Tcnn {
        out.set_item("left", batch.left.into_pyarray(py))?;
        out.set_item("right", batch.right.into_pyarray(py))?;
    } else {
        out.set_item("left", py.None())?;
        out.set_item("right", py.None())?;
    }
    if batch.targets.is_empty() {
        out.set_item("targets", py.None())?;
    } else {
        let targets = Array2::from_shape_vec((n, TARGET_NAMES.len()), batch.targets)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        out.set_item("targets", targets.into_pyarray(py))?;
    }
    out.set_item("planning_time", batch.planning_time.into_pyarray(py))?;
    out.set_item("execution_time", batch.execution_time.into_pyarray(py))?;
    Ok(out)
}

/// Parse the plans into the featurizer's node representation and drop them: the
/// benchmark floor. Returns the number of nodes. Runs without the GIL.
#[pyfunction]
fn parse_plans_only(py: Python<'_>, plans: &Bound<'_, PyAny>) -> PyResult<usize> {
    let objs = plan_objects(plans)?;
    let texts = plan_bytes(&objs)?;
    py.detach(|| featurize::parse_only(&texts))
        .map_err(|e| plan_error(py, e))
}

/// Column names, per-node-type column mask, node-type names and target names of an
/// encoding under a catalog.
#[pyfunction]
fn feature_layout<'py>(
    py: Python<'py>,
    catalog: &PyPlanCatalog,
    encoding: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let layout = Layout::new(parse_encoding(encoding)?, &catalog.inner);
    let out = PyDict::new(py);
    let mask = Array2::from_shape_vec((Layout::n_node_types(), layout.width()), layout.type_mask())
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    out.set_item("type_mask", mask.into_pyarray(py))?;
    out.set_item("feature_names", layout.names)?;
    out.set_item("node_type_names", Layout::node_type_names())?;
    out.set_item("relationship_names", Layout::relationship_names())?;
    out.set_item("target_names", TARGET_NAMES.to_vec())?;
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPlanCatalog>()?;
    m.add_function(wrap_pyfunction!(featurize_plans, m)?)?;
    m.add_function(wrap_pyfunction!(parse_plans_only, m)?)?;
    m.add_function(wrap_pyfunction!(feature_layout, m)?)?;
    Ok(())
}
