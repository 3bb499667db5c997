"""EXPLAIN plans as model input: catalogs and the Rust featurizer (collection: dbgym.observe).

- PlanCatalog (catalog.py): relations/indexes/columns that fix the one-hot columns
- featurize / PlanBatch / feature_layout (featurize.py): the Rust featurizer's arrays
- featurize_reference (reference.py): the plain-Python baseline and test oracle
"""

from __future__ import annotations

from dbgym.plans.catalog import PlanCatalog
from dbgym.plans.featurize import (
    FeatureLayout,
    PlanBatch,
    feature_layout,
    featurize,
    parse_plans_only,
)

__all__ = [
    "FeatureLayout",
    "PlanBatch",
    "PlanCatalog",
    "feature_layout",
    "featurize",
    "parse_plans_only",
]
