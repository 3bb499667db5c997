"""Plan observations as gymnasium spaces, built from a featurized PlanBatch.

- GraphPlanObservation: `gymnasium.spaces.Graph`, one node per plan node (its feature row),
  one edge per child -> parent link carrying the "Parent Relationship" id. Any plan size.
  (gymnasium can flatten a Graph instance node-wise, but `flatdim`/`flatten_space` are
  undefined for it: use the padded form for fixed-size vectors.)
- PaddedPlanObservation: `gymnasium.spaces.Dict` of fixed-shape arrays padded to
  `max_nodes` with a mask; flattens to one Box.

Bounds: one-hot columns lie in [0, 1]; log-scaled columns in [0, ln(1 + f64::MAX)].
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.errors import ObservationError
from dbgym.plans.featurize import FeatureLayout, PlanBatch

#: Upper bound of every log1p-scaled column: ln(1 + the largest finite double).
LOG1P_MAX = float(np.float32(math.log1p(np.finfo(np.float64).max) + 1.0))


def feature_bounds(layout: FeatureLayout) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per-column (low, high) of `layout`'s features."""
    high = np.array(
        [
            1.0 if "=" in name or name == "parallel_aware" else LOG1P_MAX
            for name in layout.feature_names
        ],
        dtype=np.float32,
    )
    return np.zeros_like(high), high


def _plan_rows(batch: PlanBatch, i: int) -> tuple[int, int]:
    if not 0 <= i < batch.n_plans:
        raise ObservationError(f"plan {i} out of range for a batch of {batch.n_plans}")
    return int(batch.offsets[i]), int(batch.offsets[i + 1])


class GraphPlanObservation:
    """Plans as `gymnasium.spaces.Graph` instances (nodes: feature rows; edges: child -> parent)."""

    def __init__(self, layout: FeatureLayout, seed: int | None = None) -> None:
        self.layout = layout
        low, high = feature_bounds(layout)
        self.space = spaces.Graph(
            node_space=spaces.Box(low=low, high=high, dtype=np.float32),
            edge_space=spaces.Discrete(len(layout.relationship_names)),
            seed=seed,
        )

    def observation(self, batch: PlanBatch, i: int = 0) -> spaces.GraphInstance:
        """Plan `i` of `batch`: nodes (n, F) float32, edges (E,) relationship ids, edge_links
        (E, 2) int64 rows (child, parent) in the plan's own node numbering. A plan without
        edges (a single node) has edges = edge_links = None, gymnasium's edgeless graph."""
        lo, hi = _plan_rows(batch, i)
        parent = batch.parent[lo:hi].astype(np.int64)
        child = np.flatnonzero(parent >= 0)
        if child.size == 0:
            return spaces.GraphInstance(nodes=batch.features[lo:hi], edges=None, edge_links=None)
        links = np.stack([child, parent[child] - lo], axis=1).astype(np.int64)
        edges = batch.relationship[lo:hi][child].astype(np.int64)
        return spaces.GraphInstance(nodes=batch.features[lo:hi], edges=edges, edge_links=links)


class PaddedPlanObservation:
    """Plans as a `gymnasium.spaces.Dict` of arrays padded to `max_nodes` rows.

    Keys: "features" (max_nodes, F) float32; "node_type", "parent" (-1 = root or padding),
    "relationship" (-1 = root or padding) int32 (max_nodes,); "mask" MultiBinary (1 = a
    real node); for "tcnn" also "left"/"right" (1-based rows within the plan, 0 = none).
    Node order is the featurizer's pre-order, so real nodes come first.
    """

    def __init__(self, layout: FeatureLayout, max_nodes: int, seed: int | None = None) -> None:
        if max_nodes < 1:
            raise ObservationError(f"max_nodes must be at least 1, got {max_nodes}")
        self.layout = layout
        self.max_nodes = max_nodes
        low, high = feature_bounds(layout)
        n_types = len(layout.node_type_names)
        n_rels = len(layout.relationship_names)
        m = max_nodes
        parts: dict[str, spaces.Space[object]] = {
            "features": spaces.Box(
                low=np.broadcast_to(low, (m, low.size)).copy(),
                high=np.broadcast_to(high, (m, high.size)).copy(),
                dtype=np.float32,
            ),
            "node_type": spaces.Box(0, n_types - 1, (m,), dtype=np.int32),
            "parent": spaces.Box(-1, m - 1, (m,), dtype=np.int32),
            "relationship": spaces.Box(-1, n_rels - 1, (m,), dtype=np.int32),
            "mask": spaces.MultiBinary(m),
        }
        if layout.encoding == "tcnn":
            parts["left"] = spaces.Box(0, m, (m,), dtype=np.int32)
            parts["right"] = spaces.Box(0, m, (m,), dtype=np.int32)
        self.space = spaces.Dict(parts, seed=seed)

    def _empty(self, leading: tuple[int, ...]) -> dict[str, NDArray[np.generic]]:
        m, f = self.max_nodes, self.layout.n_features
        out: dict[str, NDArray[np.generic]] = {
            "features": np.zeros((*leading, m, f), dtype=np.float32),
            "node_type": np.zeros((*leading, m), dtype=np.int32),
            "parent": np.full((*leading, m), -1, dtype=np.int32),
            "relationship": np.full((*leading, m), -1, dtype=np.int32),
            "mask": np.zeros((*leading, m), dtype=np.int8),
        }
        if self.layout.encoding == "tcnn":
            out["left"] = np.zeros((*leading, m), dtype=np.int32)
            out["right"] = np.zeros((*leading, m), dtype=np.int32)
        return out

    def _check(self, batch: PlanBatch) -> None:
        if batch.layout.feature_names != self.layout.feature_names:
            raise ObservationError(
                "the batch was featurized with a different layout (encoding or catalog) "
                "than this space's"
            )

    def observation(self, batch: PlanBatch, i: int = 0) -> dict[str, NDArray[np.generic]]:
        """Plan `i` of `batch`, padded."""
        self._check(batch)
        lo, hi = _plan_rows(batch, i)
        n = hi - lo
        if n > self.max_nodes:
            raise ObservationError(
                f"plan {i} has {n} nodes; this padded plan space holds at most {self.max_nodes}"
            )
        out = self._empty(())
        out["features"][:n] = batch.features[lo:hi]
        out["node_type"][:n] = batch.node_type[lo:hi]
        parent = batch.parent[lo:hi]
        out["parent"][:n] = np.where(parent >= 0, parent - lo, -1)
        out["relationship"][:n] = batch.relationship[lo:hi]
        out["mask"][:n] = 1
        if batch.left is not None and batch.right is not None and "left" in out:
            for key, links in (("left", batch.left[lo:hi]), ("right", batch.right[lo:hi])):
                out[key][:n] = np.where(links > 0, links - lo, 0)
        return out

    def observations(self, batch: PlanBatch) -> dict[str, NDArray[np.generic]]:
        """Every plan of `batch`, stacked: arrays with a leading plan axis (vectorized, no
        per-plan Python loop). Each `{k: v[j]}` is an element of `space`."""
        self._check(batch)
        sizes = np.diff(batch.offsets)
        if sizes.size and int(sizes.max()) > self.max_nodes:
            worst = int(sizes.argmax())
            raise ObservationError(
                f"plan {worst} has {int(sizes[worst])} nodes; this padded plan space holds at "
                f"most {self.max_nodes}"
            )
        out = self._empty((batch.n_plans,))
        plan = np.repeat(np.arange(batch.n_plans), sizes)
        base = batch.offsets[:-1][plan]
        slot = np.arange(batch.n_nodes) - base
        out["features"][plan, slot] = batch.features
        out["node_type"][plan, slot] = batch.node_type
        out["parent"][plan, slot] = np.where(batch.parent >= 0, batch.parent - base, -1)
        out["relationship"][plan, slot] = batch.relationship
        out["mask"][plan, slot] = 1
        if batch.left is not None and batch.right is not None and "left" in out:
            out["left"][plan, slot] = np.where(batch.left > 0, batch.left - base, 0)
            out["right"][plan, slot] = np.where(batch.right > 0, batch.right - base, 0)
        return out
