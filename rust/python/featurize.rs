//! Python surface of plan featurization: `dbgym._core.PlanCatalog`, `featurize_plans`,
//! `parse_plans_only` and `feature_layout`. Plans cross as borrowed `str`/`bytes`
//! buffers; results cross as numpy arrays that take ownership of the Rust vectors.

use std::sync::Arc;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyUntypedArrayMethods};
use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::featurize::{self, Encoding, Layout, PlanCatalog, TARGET_NAMES};

use super::errors::{catalog_error, internal_plan_error, invalid, plan_error, plan_input_error};

/// Relations, indexes and columns that fix the one-hot columns of the featurizer.
#[pyclass(name = "PlanCatalog", module = "dbgym._core", frozen)]
pub struct PyPlanCatalog {
    pub inner: Arc<PlanCatalog>,
}

#[pymethods]
impl PyPlanCatalog {
    #[new]
    #[pyo3(signature = (relations = Vec::new(), indexes = Vec::new(), columns = Vec::new()))]
    fn new(relations: Vec<String>, indexes: Vec<String>, columns: Vec<String>) -> PyResult<Self> {
        PlanCatalog::new(relations, indexes, columns)
            .map(|c| PyPlanCatalog { inner: Arc::new(c) })
            .map_err(catalog_error)
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
    fn from_json(text: &str) -> PyResult<Self> {
        PlanCatalog::from_json(text)
            .map(|c| PyPlanCatalog { inner: Arc::new(c) })
            .map_err(catalog_error)
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

fn parse_encoding(name: &str) -> PyResult<Encoding> {
    Encoding::parse(name).ok_or_else(|| {
        invalid(format!(
            "encoding must be \"qppnet\" or \"tcnn\", got {name:?}"
        ))
    })
}

/// Is `o` one plan given as decoded JSON (a dict, or a list of them as EXPLAIN prints)?
fn is_json_data(o: &Bound<'_, PyAny>) -> bool {
    o.is_instance_of::<PyDict>() || o.is_instance_of::<PyList>() || o.is_instance_of::<PyTuple>()
}

/// The Python objects holding the plans: one `str`/`bytes`/`dict`, or a sequence of
/// `str`/`bytes`/decoded JSON.
fn plan_objects<'py>(plans: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if plans.is_instance_of::<PyString>()
        || plans.is_instance_of::<PyBytes>()
        || plans.is_instance_of::<PyDict>()
    {
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
        Err(_) => Err(invalid(format!(
            "plans must be a str, bytes, or decoded JSON plan, or a sequence of them, got {}",
            plans.get_type().name()?
        ))),
    }
}

/// Each plan's UTF-8 JSON text: borrowed from a `str`/`bytes` (the objects in `objs` keep
/// them alive), or serialized from decoded JSON.
fn plan_texts<'a>(objs: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<Cow<'a, [u8]>>> {
    let mut out = Vec::with_capacity(objs.len());
    for (i, o) in objs.iter().enumerate() {
        if let Ok(s) = o.cast::<PyString>() {
            let text = s
                .to_str()
                .map_err(|e| plan_input_error(i, format!("not valid UTF-8 text: {e}")))?;
            out.push(Cow::Borrowed(text.as_bytes()));
        } else if let Ok(b) = o.cast::<PyBytes>() {
            out.push(Cow::Borrowed(b.as_bytes()));
        } else if is_json_data(o) {
            let text = json_text(o).map_err(|m| plan_input_error(i, m))?;
            out.push(Cow::Owned(text.into_bytes()));
        } else {
            return Err(plan_input_error(
                i,
                format!(
                    "expected str or bytes (EXPLAIN (FORMAT JSON) text) or decoded JSON, got {}",
                    o.get_type().name()?
                ),
            ));
        }
    }
    Ok(out)
}

/// A container being written by [`json_text`]: its items and the next one's index.
enum Frame<'py> {
    Seq(Vec<Bound<'py, PyAny>>, usize),
    Map(Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>, usize),
}

/// JSON text of decoded JSON data (dict, list, tuple, str, int, float, bool, None), written
/// without recursion: a plan nested thousands of levels deep is the featurizer's to refuse
/// (with its JSON path), not a RecursionError here.
fn json_text(root: &Bound<'_, PyAny>) -> Result<String, String> {
    let mut out = String::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(root.clone());
    loop {
        if let Some(o) = next.take() {
            if let Ok(d) = o.cast::<PyDict>() {
                out.push('{');
                stack.push(Frame::Map(d.iter().collect(), 0));
            } else if let Ok(l) = o.cast::<PyList>() {
                out.push('[');
                stack.push(Frame::Seq(l.iter().collect(), 0));
            } else if let Ok(t) = o.cast::<PyTuple>() {
                out.push('[');
                stack.push(Frame::Seq(t.iter().collect(), 0));
            } else {
                json_scalar(&o, &mut out)?;
            }
        }
        let Some(top) = stack.last_mut() else {
            return Ok(out);
        };
        match top {
            Frame::Seq(items, k) => {
                if *k == items.len() {
                    out.push(']');
                    stack.pop();
                } else {
                    if *k > 0 {
                        out.push(',');
                    }
                    next = Some(items[*k].clone());
                    *k += 1;
                }
            }
            Frame::Map(items, k) => {
                if *k == items.len() {
                    out.push('}');
                    stack.pop();
                } else {
                    if *k > 0 {
                        out.push(',');
                    }
                    let (key, value) = &items[*k];
                    let key = key.cast::<PyString>().map_err(|_| {
                        format!(
                            "a dict key is a {}, not a str (JSON object keys are strings)",
                            key.get_type()
                                .name()
                                .map_or_else(|_| "?".into(), |n| n.to_string())
                        )
                    })?;
                    json_string(key.to_str().map_err(|e| e.to_string())?, &mut out);
                    out.push(':');
                    next = Some(value.clone());
                    *k += 1;
                }
            }
        }
    }
}

fn json_scalar(o: &Bound<'_, PyAny>, out: &mut String) -> Result<(), String> {
    if o.is_none() {
        out.push_str("null");
    } else if let Ok(b) = o.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if o.is_instance_of::<PyInt>() {
        out.push_str(&o.str().map_err(|e| e.to_string())?.to_string_lossy());
    } else if let Ok(f) = o.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(format!("{v} is not a JSON number"));
        }
        out.push_str(&format!("{v:?}"));
    } else if let Ok(s) = o.cast::<PyString>() {
        json_string(s.to_str().map_err(|e| e.to_string())?, out);
    } else {
        let name = o
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        return Err(format!("a {name} is not JSON data"));
    }
    Ok(())
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Featurized plans as numpy arrays (see `dbgym.plans.featurize.PlanBatch` for what each
/// holds). `left`/`right` only for the "tcnn" encoding; `targets` only when a plan carries
/// ANALYZE output.
#[pyclass(name = "PlanFeatures", module = "dbgym._core", frozen, get_all)]
pub struct PyPlanFeatures {
    encoding: &'static str,
    features: Py<PyArray2<f32>>,
    node_type: Py<PyArray1<i32>>,
    parent: Py<PyArray1<i32>>,
    relationship: Py<PyArray1<i8>>,
    offsets: Py<PyArray1<i64>>,
    left: Option<Py<PyArray1<i32>>>,
    right: Option<Py<PyArray1<i32>>>,
    targets: Option<Py<PyArray2<f64>>>,
    planning_time: Py<PyArray1<f64>>,
    execution_time: Py<PyArray1<f64>>,
}

#[pymethods]
impl PyPlanFeatures {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "PlanFeatures(encoding={:?}, {} nodes, {} plans)",
            self.encoding,
            self.node_type.bind(py).len(),
            self.offsets.bind(py).len().saturating_sub(1)
        )
    }
}

/// Featurize EXPLAIN (FORMAT JSON) texts (or decoded JSON) into numpy arrays. Runs
/// without the GIL.
#[pyfunction]
fn featurize_plans(
    py: Python<'_>,
    plans: &Bound<'_, PyAny>,
    catalog: &PyPlanCatalog,
    encoding: &str,
) -> PyResult<PyPlanFeatures> {
    let encoding = parse_encoding(encoding)?;
    let objs = plan_objects(plans)?;
    let texts = plan_texts(&objs)?;
    let cat = Arc::clone(&catalog.inner);
    let batch = py
        .detach(|| featurize::featurize(&texts, &cat, encoding))
        .map_err(plan_error)?;

    let n = batch.n_nodes();
    let features =
        Array2::from_shape_vec((n, batch.width), batch.features).map_err(internal_plan_error)?;
    let tcnn = encoding == Encoding::Tcnn;
    let targets = if batch.targets.is_empty() {
        None
    } else {
        let t = Array2::from_shape_vec((n, TARGET_NAMES.len()), batch.targets)
            .map_err(internal_plan_error)?;
        Some(t.into_pyarray(py).unbind())
    };
    Ok(PyPlanFeatures {
        encoding: encoding.name(),
        features: features.into_pyarray(py).unbind(),
        node_type: batch.node_type.into_pyarray(py).unbind(),
        parent: batch.parent.into_pyarray(py).unbind(),
        relationship: batch.relationship.into_pyarray(py).unbind(),
        offsets: batch.offsets.into_pyarray(py).unbind(),
        left: tcnn.then(|| batch.left.into_pyarray(py).unbind()),
        right: tcnn.then(|| batch.right.into_pyarray(py).unbind()),
        targets,
        planning_time: batch.planning_time.into_pyarray(py).unbind(),
        execution_time: batch.execution_time.into_pyarray(py).unbind(),
    })
}

/// Parse the plans into the featurizer's node representation and drop them: the
/// benchmark floor. Returns the number of nodes. Runs without the GIL.
#[pyfunction]
fn parse_plans_only(py: Python<'_>, plans: &Bound<'_, PyAny>) -> PyResult<usize> {
    let objs = plan_objects(plans)?;
    let texts = plan_texts(&objs)?;
    py.detach(|| featurize::parse_only(&texts))
        .map_err(plan_error)
}

/// The columns of an encoding under a catalog: feature names, the per-node-type column
/// mask (bool, node types x features), node-type, relationship and target names.
#[pyclass(name = "FeatureColumns", module = "dbgym._core", frozen, get_all)]
pub struct PyFeatureColumns {
    type_mask: Py<PyArray2<bool>>,
    feature_names: Vec<String>,
    node_type_names: Vec<String>,
    relationship_names: Vec<String>,
    target_names: Vec<String>,
}

#[pymethods]
impl PyFeatureColumns {
    fn __repr__(&self) -> String {
        format!(
            "FeatureColumns({} features, {} node types)",
            self.feature_names.len(),
            self.node_type_names.len()
        )
    }
}

/// The columns `featurize_plans` produces for `encoding` under `catalog`.
#[pyfunction]
fn feature_layout(
    py: Python<'_>,
    catalog: &PyPlanCatalog,
    encoding: &str,
) -> PyResult<PyFeatureColumns> {
    let layout = Layout::new(parse_encoding(encoding)?, &catalog.inner);
    let mask = Array2::from_shape_vec((Layout::n_node_types(), layout.width()), layout.type_mask())
        .map_err(internal_plan_error)?;
    Ok(PyFeatureColumns {
        type_mask: mask.into_pyarray(py).unbind(),
        feature_names: layout.names,
        node_type_names: Layout::node_type_names(),
        relationship_names: Layout::relationship_names(),
        target_names: TARGET_NAMES.iter().map(|s| s.to_string()).collect(),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_PLAN_DEPTH", featurize::MAX_PLAN_DEPTH)?;
    m.add_class::<PyPlanCatalog>()?;
    m.add_class::<PyPlanFeatures>()?;
    m.add_class::<PyFeatureColumns>()?;
    m.add_function(wrap_pyfunction!(featurize_plans, m)?)?;
    m.add_function(wrap_pyfunction!(parse_plans_only, m)?)?;
    m.add_function(wrap_pyfunction!(feature_layout, m)?)?;
    Ok(())
}
