"""Observation and action spaces: strict gymnasium spaces and their encoders (no I/O).

- plan.py: GraphPlanObservation (gymnasium Graph), PaddedPlanObservation (flattenable Dict)

The sources that read a live server (metrics, knob state, plans) are in dbgym.observe.
"""

from __future__ import annotations

from dbgym.spaces.plan import GraphPlanObservation, PaddedPlanObservation, feature_bounds

__all__ = ["GraphPlanObservation", "PaddedPlanObservation", "feature_bounds"]
