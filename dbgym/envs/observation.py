"""The environment's observation: a flat gymnasium Dict, float32 throughout.

Flat (no nested Dict), so stable-baselines3's MultiInputPolicy takes it as it is. Keys,
by component (EnvSpec.observe):

- plans: "plan_features" (T, N, F): each template slot's EXPLAIN plan featurized
  (dbgym.plans.featurize, "qppnet" encoding, with the plan catalog frozen at construction
  and holding every candidate index, so an index the action builds has its own one-hot),
  padded to N nodes (pre-order, real nodes first; a plan with more nodes is cut to its
  first N, see info["plans_truncated"]); "plan_node_type", "plan_parent" (T, N) (-1: the
  root or padding); "plan_mask" (T, N) 1 for a real node; "template_mask" (T,) 1 for a
  slot with a plan; "template_weight" (T,) the slot's share of the episode's statements.
- metrics: "metrics" (M,): deltas of the server's cumulative statistics since the
  previous observation (dbgym.observe.metrics), as sign(x) * log1p(|x|): bounded, and
  zero after reset.
- knobs: "knobs" (k,): the knobs in force, on the knob action's own [0, 1] scale.
- indexes: "indexes" (n,): 1 for each candidate index in force.
- hints: "hints" (T, H): one-hot of each slot's hint set.

The Graph form of plans (dbgym.spaces.plan.GraphPlanObservation) stays available for
graph models through `info["plans"]` (the EXPLAIN JSON per slot) and
`DbGymEnv.plan_catalog`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.plans.catalog import PlanCatalog
from dbgym.plans.featurize import FeatureLayout, feature_layout, featurize
from dbgym.spaces.plan import feature_bounds

#: Bound of the signed-log1p metric deltas: log1p of the largest double.
METRIC_BOUND = float(np.float32(math.log1p(np.finfo(np.float64).max) + 1.0))


def signed_log1p(x: NDArray[np.float64]) -> NDArray[np.float32]:
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


class ObservationBuilder:
    """The observation space of the chosen components and how to fill it."""

    def __init__(
        self,
        components: Sequence[str],
        *,
        catalog: PlanCatalog,
        n_slots: int,
        max_nodes: int,
        n_metrics: int,
        n_knobs: int,
        n_indexes: int,
        n_hint_sets: int,
    ) -> None:
        self.components = tuple(components)
        self.catalog = catalog
        self.layout: FeatureLayout = feature_layout(catalog, "qppnet")
        self.n_slots, self.max_nodes = n_slots, max_nodes
        t, n = n_slots, max_nodes
        parts: dict[str, spaces.Space[object]] = {}
        if "plans" in self.components:
            low, high = feature_bounds(self.layout)
            f = self.layout.n_features
            parts["plan_features"] = spaces.Box(
                np.broadcast_to(low, (t, n, f)).copy(),
                np.broadcast_to(high, (t, n, f)).copy(),
                dtype=np.float32,
            )
            n_types = max(len(self.layout.node_type_names) - 1, 0)
            parts["plan_node_type"] = spaces.Box(0.0, float(n_types), (t, n), dtype=np.float32)
            parts["plan_parent"] = spaces.Box(-1.0, float(n - 1), (t, n), dtype=np.float32)
            parts["plan_mask"] = spaces.Box(0.0, 1.0, (t, n), dtype=np.float32)
            parts["template_mask"] = spaces.Box(0.0, 1.0, (t,), dtype=np.float32)
            parts["template_weight"] = spaces.Box(0.0, 1.0, (t,), dtype=np.float32)
        if "metrics" in self.components:
            parts["metrics"] = spaces.Box(
                -METRIC_BOUND, METRIC_BOUND, (max(n_metrics, 1),), dtype=np.float32
            )
        if "knobs" in self.components and n_knobs:
            parts["knobs"] = spaces.Box(0.0, 1.0, (n_knobs,), dtype=np.float32)
        if "indexes" in self.components and n_indexes:
            parts["indexes"] = spaces.Box(0.0, 1.0, (n_indexes,), dtype=np.float32)
        if "hints" in self.components:
            parts["hints"] = spaces.Box(0.0, 1.0, (t, n_hint_sets), dtype=np.float32)
        self.space = spaces.Dict(parts)

    def plans(
        self, plans: Sequence[str | None], weights: NDArray[np.float32]
    ) -> tuple[dict[str, NDArray[np.float32]], int]:
        """The plan arrays for one EXPLAIN JSON (or None) per slot; also how many plans were
        cut to max_nodes."""
        t, n = self.n_slots, self.max_nodes
        f = self.layout.n_features
        out = {
            "plan_features": np.zeros((t, n, f), dtype=np.float32),
            "plan_node_type": np.zeros((t, n), dtype=np.float32),
            "plan_parent": np.full((t, n), -1.0, dtype=np.float32),
            "plan_mask": np.zeros((t, n), dtype=np.float32),
            "template_mask": np.zeros(t, dtype=np.float32),
            "template_weight": weights.astype(np.float32),
        }
        have = [i for i, p in enumerate(plans[:t]) if p is not None]
        if not have:
            return out, 0
        texts: list[str] = [p for p in plans[:t] if p is not None]
        batch = featurize(texts, catalog=self.catalog, encoding="qppnet")
        truncated = 0
        box = self.space["plan_features"]
        assert isinstance(box, spaces.Box)
        hi_feat = box.high[0, 0]
        for j, slot in enumerate(have):
            lo, hi = int(batch.offsets[j]), int(batch.offsets[j + 1])
            k = min(hi - lo, n)
            truncated += int(hi - lo > n)
            out["plan_features"][slot, :k] = np.minimum(batch.features[lo : lo + k], hi_feat)
            out["plan_node_type"][slot, :k] = batch.node_type[lo : lo + k]
            parent = batch.parent[lo : lo + k].astype(np.int64) - lo
            parent = np.where((batch.parent[lo : lo + k] >= 0) & (parent < k), parent, -1)
            out["plan_parent"][slot, :k] = parent
            out["plan_mask"][slot, :k] = 1.0
            out["template_mask"][slot] = 1.0
        return out, truncated

    def build(
        self,
        *,
        plans: Mapping[str, NDArray[np.float32]] | None,
        metrics: NDArray[np.float64] | None,
        knobs: NDArray[np.float32] | None,
        indexes: NDArray[np.int8] | None,
        hints: NDArray[np.float32] | None,
    ) -> dict[str, NDArray[np.float32]]:
        """One observation from its parts (those of components not observed are ignored)."""
        out: dict[str, NDArray[np.float32]] = {}
        keys = self.space.spaces
        if "plan_features" in keys and plans is not None:
            out.update(plans)
        if "metrics" in keys:
            m = signed_log1p(metrics) if metrics is not None and metrics.size else None
            size = keys["metrics"].shape[0]  # type: ignore[index]
            out["metrics"] = m if m is not None and m.size == size else np.zeros(size, np.float32)
        if "knobs" in keys and knobs is not None:
            out["knobs"] = np.clip(knobs, 0.0, 1.0).astype(np.float32)
        if "indexes" in keys and indexes is not None:
            out["indexes"] = indexes.astype(np.float32)
        if "hints" in keys and hints is not None:
            out["hints"] = hints.astype(np.float32)
        return out
