"""featurize(): EXPLAIN (FORMAT JSON) texts to a PlanBatch of contiguous numpy arrays.

The work happens in Rust (rust/featurize, without the GIL); this module only wraps the
arrays it returns. Row order: plans in input order, each plan's nodes in pre-order
(parent before children, children in JSON order).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

import dbgym._core as _core
from dbgym._slowdown import pause
from dbgym.plans.catalog import PlanCatalog

Encoding = Literal["qppnet", "tcnn"]
PlanText = str | bytes
#: What featurize() accepts: one EXPLAIN output or a sequence of them; each as JSON text
#: (str/bytes) or as the already-decoded JSON (list/dict, re-serialized first).
PlanInput = PlanText | Sequence[PlanText | list[Any] | dict[str, Any]]

_EMPTY_CATALOG = PlanCatalog()


@dataclass(frozen=True)
class FeatureLayout:
    """What each feature column means, for one encoding under one catalog."""

    encoding: str
    feature_names: tuple[str, ...]
    node_type_names: tuple[str, ...]
    relationship_names: tuple[str, ...]
    target_names: tuple[str, ...]
    #: bool (n_node_types, n_features): the columns an operator type can set (QPPNet's
    #: per-operator input vectors); all-true for `<other>`.
    type_mask: NDArray[np.bool_]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def column(self, name: str) -> int:
        """Index of the column named `name` (KeyError if there is none)."""
        try:
            return self.feature_names.index(name)
        except ValueError:
            raise KeyError(f"no feature column named {name!r}") from None


@functools.lru_cache(maxsize=64)
def _layout(catalog: _core.PlanCatalog, encoding: Encoding) -> FeatureLayout:
    raw = _core.feature_layout(catalog, encoding)
    mask = raw.type_mask
    mask.flags.writeable = False
    return FeatureLayout(
        encoding=encoding,
        feature_names=tuple(raw.feature_names),
        node_type_names=tuple(raw.node_type_names),
        relationship_names=tuple(raw.relationship_names),
        target_names=tuple(raw.target_names),
        type_mask=mask,
    )


def feature_layout(
    catalog: PlanCatalog | None = None, encoding: Encoding = "qppnet"
) -> FeatureLayout:
    """The column layout featurize() produces for `catalog` and `encoding`."""
    return _layout((catalog or _EMPTY_CATALOG)._core, encoding)


@dataclass(frozen=True)
class PlanBatch:
    """Featurized plans: N nodes of P plans.

    - features: float32 (N, F); columns named by `feature_names`
    - node_type: int32 (N,), ids into `layout.node_type_names` (`<other>` last)
    - parent: int32 (N,), batch row of the parent, -1 for roots
    - relationship: int8 (N,), "Parent Relationship" id into `layout.relationship_names`
      (Outer, Inner, Subquery, SubPlan, InitPlan, Member, `<other>`), -1 for roots
    - offsets: int64 (P+1,), plan i owns rows offsets[i]:offsets[i+1]
    - left/right (tcnn only): int32 (N,), 1-based batch row of the binarized left/right
      child, 0 = none; index `padded_features()` with them (row 0 is the zero vector)
    - targets: float64 (N, 4) `layout.target_names` when any plan carries ANALYZE output
      (NaN for nodes of plans without it), else None
    - planning_time/execution_time: float64 (P,), NaN when absent
    """

    layout: FeatureLayout
    features: NDArray[np.float32]
    node_type: NDArray[np.int32]
    parent: NDArray[np.int32]
    relationship: NDArray[np.int8]
    offsets: NDArray[np.int64]
    left: NDArray[np.int32] | None
    right: NDArray[np.int32] | None
    targets: NDArray[np.float64] | None
    planning_time: NDArray[np.float64]
    execution_time: NDArray[np.float64]

    @property
    def encoding(self) -> str:
        return self.layout.encoding

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.layout.feature_names

    @property
    def n_plans(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def n_nodes(self) -> int:
        return int(self.node_type.shape[0])

    def __len__(self) -> int:
        return self.n_plans

    def column(self, name: str) -> NDArray[np.float32]:
        """The feature column named `name`, shape (N,)."""
        return self.features[:, self.layout.column(name)]

    def padded_features(self) -> NDArray[np.float32]:
        """Features with a zero row prepended: row k is node k-1, row 0 pads missing children."""
        out = np.zeros((self.n_nodes + 1, self.features.shape[1]), dtype=np.float32)
        out[1:] = self.features
        return out

    def plan(self, i: int) -> PlanBatch:
        """Plan `i` alone, as a batch of one (row indices re-based to 0)."""
        if not -self.n_plans <= i < self.n_plans:
            raise IndexError(f"plan {i} out of range for a batch of {self.n_plans}")
        i %= self.n_plans
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        parent = self.parent[lo:hi].copy()
        parent[parent >= 0] -= lo

        def links(a: NDArray[np.int32] | None) -> NDArray[np.int32] | None:
            if a is None:
                return None
            out: NDArray[np.int32] = a[lo:hi].copy()
            out[out > 0] -= lo
            return out

        targets = None if self.targets is None else self.targets[lo:hi]
        if targets is not None and np.isnan(targets).all():
            targets = None  # this plan has no ANALYZE output, as if featurized alone
        return PlanBatch(
            layout=self.layout,
            features=self.features[lo:hi],
            node_type=self.node_type[lo:hi],
            parent=parent,
            relationship=self.relationship[lo:hi],
            offsets=np.array([0, hi - lo], dtype=np.int64),
            left=links(self.left),
            right=links(self.right),
            targets=targets,
            planning_time=self.planning_time[i : i + 1],
            execution_time=self.execution_time[i : i + 1],
        )


#: Deepest plan-node nesting featurize accepts (the Rust parser's limit); a deeper plan is a
#: PlanFormatError naming the plan first, then where (the path shortened).
MAX_PLAN_DEPTH: int = _core.MAX_PLAN_DEPTH


def featurize(
    plans: PlanInput,
    *,
    catalog: PlanCatalog | None = None,
    encoding: Encoding = "qppnet",
) -> PlanBatch:
    """Featurize EXPLAIN (FORMAT JSON) output of PostgreSQL 13-17.

    `plans` is one EXPLAIN output or a sequence of them (str or bytes; decoded JSON is
    accepted too and re-serialized). With or without ANALYZE/BUFFERS/VERBOSE/SETTINGS;
    COSTS must be on. Malformed input raises dbgym.errors.PlanFormatError naming the plan
    index and the JSON path. `catalog` fixes the relation/index one-hots ("qppnet");
    without one, every relation and index lands in the `<other>` column.
    """
    pause("featurize")  # test-only switch (dbgym/_slowdown.py): a no-op unless set
    cat = (catalog or _EMPTY_CATALOG)._core
    raw = _core.featurize_plans(plans, cat, encoding)  # decoded JSON is serialized in Rust
    return PlanBatch(
        layout=_layout(cat, encoding),
        features=raw.features,
        node_type=raw.node_type,
        parent=raw.parent,
        relationship=raw.relationship,
        offsets=raw.offsets,
        left=raw.left,
        right=raw.right,
        targets=raw.targets,
        planning_time=raw.planning_time,
        execution_time=raw.execution_time,
    )


def parse_plans_only(plans: PlanInput) -> int:
    """Parse the plans as featurize() does, without encoding; returns the node count.

    The floor featurize() is benchmarked against.
    """
    return _core.parse_plans_only(plans)
