"""Observation sources: the I/O side of observations, reading a live server.

- plans.py: collect_plans(), EXPLAIN (FORMAT JSON) of a workload's templates
- metrics.py: MetricsObserver, deltas of pg_stat_* counters
- knobs.py: KnobStateObserver, the tuned knobs' current values

The pure side (spaces and encoders) is dbgym.spaces.
"""

from __future__ import annotations

from dbgym.observe.knobs import KnobStateObserver
from dbgym.observe.metrics import MetricsObserver
from dbgym.observe.plans import CollectedPlan, collect_plans

__all__ = ["CollectedPlan", "KnobStateObserver", "MetricsObserver", "collect_plans"]
