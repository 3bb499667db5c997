"""A plain-Python featurizer producing the same arrays as the Rust one.

json.loads + walking the dicts, column positions looked up by feature name. It is the
baseline the Rust featurizer is benchmarked against (benches/bench_featurize.py) and an
independent oracle in the tests: it derives every column from its *name*, so a Rust
column that says one thing and holds another disagrees with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dbgym.plans.catalog import PlanCatalog
from dbgym.plans.featurize import Encoding, PlanBatch, PlanText, feature_layout

_OTHER = "<other>"
_NUMERIC_QPPNET = {
    "est_startup_cost": "Startup Cost",
    "est_width": "Plan Width",
    "workers_planned": "Workers Planned",
    "sort_space_used": "Sort Space Used",
    "hash_buckets": "Hash Buckets",
    "hash_batches": "Hash Batches",
    "peak_memory_usage": "Peak Memory Usage",
}
_CATEGORICAL_QPPNET = {
    "relationship": "Parent Relationship",
    "join_type": "Join Type",
    "scan_direction": "Scan Direction",
    "strategy": "Strategy",
    "partial_mode": "Partial Mode",
    "operation": "Operation",
    "sort_method": "Sort Method",
    "relation": "Relation Name",
    "index": "Index Name",
}
_TARGET_KEYS = ("Actual Startup Time", "Actual Total Time", "Actual Rows", "Actual Loops")
_SLOT_RANK = {"Outer": 0, "Inner": 1, "InitPlan": 3, "SubPlan": 3}


def _log1p(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def featurize_reference(
    plans: Sequence[PlanText],
    catalog: PlanCatalog | None = None,
    encoding: Encoding = "qppnet",
) -> PlanBatch:
    layout = feature_layout(catalog, encoding)
    col = {name: i for i, name in enumerate(layout.feature_names)}
    type_id = {name: i for i, name in enumerate(layout.node_type_names)}
    rel_id = {name: i for i, name in enumerate(layout.relationship_names)}
    width = len(col)
    qppnet = encoding == "qppnet"

    rows: list[list[float]] = []
    node_types: list[int] = []
    parents: list[int] = []
    relationships: list[int] = []
    slots: list[list[tuple[int, int]]] = []  # (rank, 1-based row) of children, per node
    targets: list[list[float]] = []
    offsets = [0]
    planning: list[float] = []
    execution: list[float] = []
    analyzed = False

    for text in plans:
        doc: Any = json.loads(text)
        statements = doc if isinstance(doc, list) else [doc]
        plan_time = exec_time = math.nan
        for st in statements:
            if "Planning Time" in st:
                plan_time = (0.0 if math.isnan(plan_time) else plan_time) + st["Planning Time"]
            if "Execution Time" in st:
                exec_time = (0.0 if math.isnan(exec_time) else exec_time) + st["Execution Time"]
            stack: list[tuple[dict[str, Any], int]] = [(st["Plan"], -1)]
            while stack:
                node, parent = stack.pop()
                me = len(rows)
                row = [0.0] * width
                name = node["Node Type"]
                ty = type_id.get(name, type_id[_OTHER])
                row[col["type=" + name] if name in type_id else col["type=" + _OTHER]] = 1.0
                row[col["est_total_cost"]] = _log1p(node["Total Cost"])
                row[col["est_rows"]] = _log1p(node["Plan Rows"])
                if qppnet:
                    for feature, key in _NUMERIC_QPPNET.items():
                        if key in node:
                            row[col[feature]] = _log1p(node[key])
                    if node.get("Parallel Aware"):
                        row[col["parallel_aware"]] = 1.0
                    for prefix, key in _CATEGORICAL_QPPNET.items():
                        if key in node:
                            c = col.get(f"{prefix}={node[key]}")
                            row[col[f"{prefix}={_OTHER}"] if c is None else c] = 1.0
                rows.append(row)
                node_types.append(ty)
                parents.append(parent)
                rel = node.get("Parent Relationship")
                relationships.append(-1 if rel is None else rel_id.get(rel, rel_id[_OTHER]))
                slots.append([])
                if parent >= 0:
                    rank = _SLOT_RANK.get(node.get("Parent Relationship", ""), 2)
                    slots[parent].append((rank, me + 1))
                if "Actual Loops" in node:
                    analyzed = True
                targets.append([float(node.get(k, math.nan)) for k in _TARGET_KEYS])
                for child in reversed(node.get("Plans", [])):
                    stack.append((child, me))
        planning.append(plan_time)
        execution.append(exec_time)
        offsets.append(len(rows))

    left = right = None
    if encoding == "tcnn":
        left_l, right_l = [], []
        for children in slots:
            best = sorted(children, key=lambda c: c[0])[:2]  # stable: JSON order within a rank
            left_l.append(best[0][1] if best else 0)
            right_l.append(best[1][1] if len(best) > 1 else 0)
        left = np.array(left_l, dtype=np.int32)
        right = np.array(right_l, dtype=np.int32)

    return PlanBatch(
        layout=layout,
        features=np.array(rows, dtype=np.float32).reshape(len(rows), width),
        node_type=np.array(node_types, dtype=np.int32),
        parent=np.array(parents, dtype=np.int32),
        relationship=np.array(relationships, dtype=np.int8),
        offsets=np.array(offsets, dtype=np.int64),
        left=left,
        right=right,
        targets=np.array(targets, dtype=np.float64).reshape(len(rows), 4) if analyzed else None,
        planning_time=np.array(planning, dtype=np.float64),
        execution_time=np.array(execution, dtype=np.float64),
    )
