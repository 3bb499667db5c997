"""Observation and action spaces: strict gymnasium spaces and their encoders.

- plan.py: GraphPlanObservation (gymnasium Graph), PaddedPlanObservation (flattenable Dict)
- metrics.py: MetricsObserver (deltas of pg_stat_* counters as a named Box)
- knobs.py: KnobStateObserver (tuned knobs' current values normalized to [0, 1])
"""

from __future__ import annotations

from dbgym.spaces.knobs import KnobScale, KnobStateObserver, knob_scale
from dbgym.spaces.metrics import MetricsObserver
from dbgym.spaces.plan import GraphPlanObservation, PaddedPlanObservation, feature_bounds

__all__ = [
    "GraphPlanObservation",
    "KnobScale",
    "KnobStateObserver",
    "MetricsObserver",
    "PaddedPlanObservation",
    "feature_bounds",
    "knob_scale",
]
