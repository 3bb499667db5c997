"""The checked boundary of dbgym._core: the stub names what the module has, classes are
final, results are typed objects (no dicts), and the limits Python uses come from Rust."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from dbgym import _core
from dbgym.errors import InvalidArgumentError

STUB = Path(_core.__file__).with_name("_core.pyi")


def test_stub_declares_exactly_the_runtime_names() -> None:
    tree = ast.parse(STUB.read_text())
    declared: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            declared = list(ast.literal_eval(node.value))
    assert sorted(declared) == sorted(_core.__all__)


@pytest.mark.parametrize(
    "cls",
    [getattr(_core, n) for n in _core.__all__ if isinstance(getattr(_core, n), type)],
)
def test_classes_cannot_be_subclassed(cls: type) -> None:
    with pytest.raises(TypeError):
        type("Sub", (cls,), {})


def _plan(total: float) -> str:
    node = {"Node Type": "Seq Scan", "Relation Name": "t", "Startup Cost": 0.0}
    return json.dumps([{"Plan": {**node, "Total Cost": total, "Plan Rows": 1, "Plan Width": 4}}])


def test_featurize_results_are_typed_arrays() -> None:
    catalog = _core.PlanCatalog(["t"])
    qpp = _core.featurize_plans([_plan(1.0), _plan(2.0)], catalog, "qppnet")
    assert qpp.encoding == "qppnet"
    assert qpp.features.dtype == np.float32 and qpp.features.shape[0] == 2
    assert qpp.offsets.tolist() == [0, 1, 2]
    assert qpp.parent.tolist() == [-1, -1]
    assert qpp.left is None and qpp.right is None and qpp.targets is None
    assert qpp.planning_time.shape == (2,)
    tcnn = _core.featurize_plans(_plan(1.0), catalog, "tcnn")
    assert tcnn.left is not None and tcnn.left.dtype == np.int32
    cols = _core.feature_layout(catalog, "qppnet")
    assert cols.type_mask.dtype == np.bool_
    assert cols.type_mask.shape == (len(cols.node_type_names), len(cols.feature_names))
    assert qpp.features.shape[1] == len(cols.feature_names)
    assert cols.target_names and cols.relationship_names


def test_limits_come_from_rust() -> None:
    assert _core.MAX_PLAN_DEPTH == 400
    assert _core.TPCH_MIN_SCALE == 0.001
    assert _core.TPCH_MAX_SCALE == 300.0
    _core.tpch_query(1, _core.TPCH_MAX_SCALE)
    for bad in (_core.TPCH_MAX_SCALE * 1.01, _core.TPCH_MIN_SCALE / 2, float("nan")):
        with pytest.raises(InvalidArgumentError, match=r"scale factor must be a number in"):
            _core.TpchGenerator(bad, 1)
        with pytest.raises(InvalidArgumentError, match=r"\[0\.001, 300\]"):
            _core.tpch_query(1, bad)
