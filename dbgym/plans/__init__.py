"""EXPLAIN plans as model input: catalogs, the Rust featurizer, plan collection.

- PlanCatalog (catalog.py): relations/indexes/columns that fix the one-hot columns
- featurize / PlanBatch / feature_layout (featurize.py): the Rust featurizer's arrays
- collect_plans (collect.py): EXPLAIN a workload's templates on an instance
- featurize_reference (reference.py): the plain-Python baseline and test oracle
"""

from __future__ import annotations

from dbgym.plans.catalog import PlanCatalog
from dbgym.plans.collect import CollectedPlan, collect_plans
from dbgym.plans.featurize import (
    FeatureLayout,
    PlanBatch,
    feature_layout,
    featurize,
    parse_plans_only,
)

__all__ = [
    "CollectedPlan",
    "FeatureLayout",
    "PlanBatch",
    "PlanCatalog",
    "collect_plans",
    "feature_layout",
    "featurize",
    "parse_plans_only",
]
