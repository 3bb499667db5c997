"""How a step is measured: `execute` (replay) or `estimate` (what-if planner costs).

execute: the episode's workload is replayed by the Rust engine on the session's server
(`DbSession.measure`). Each template gets a statement timeout of
`max(EnvSpec.min_statement_timeout, EnvSpec.baseline_factor x its mean baseline latency)` seconds
(SET LOCAL statement_timeout, per template, like the hints), so a bad configuration cannot
stall a step: a timed-out statement counts at its timeout and is flagged; a statement that
failed otherwise counts at its timeout too. The step's value is the sum of the statements'
latencies (seconds); throughput is successful statements per second of replay.

estimate: see dbgym.envs.estimate: each slotted template's planner cost with the step's
hypothetical indexes and session-visible settings, times its statement count in the
episode's workload; the value is their sum (planner cost units). Templates without a
slot are not estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dbgym.replayer.run import ReplayResult

#: SQLSTATE of a statement cancelled by statement_timeout.
QUERY_CANCELED = b"57014"


@dataclass(frozen=True)
class StepMeasure:
    """What one evaluation measured."""

    #: seconds (execute) or planner cost units (estimate); lower is better
    value: float
    #: successful statements per second (execute only)
    throughput: float | None = None
    #: mean latency (execute, seconds) or cost per statement (estimate), by slot
    per_slot: dict[int, float] = field(default_factory=dict)
    #: statements cancelled by their timeout, by slot (-1: templates without a slot)
    timeouts: dict[int, int] = field(default_factory=dict)
    #: statements that failed otherwise (SQLSTATE -> count)
    errors: dict[str, int] = field(default_factory=dict)
    statements: int = 0


def template_latencies(result: ReplayResult) -> dict[int, float]:
    """Mean latency in seconds of each template's successful statements."""
    ok = result.ok
    out: dict[int, float] = {}
    if not ok.any():
        return out
    tids = result.template_id[ok]
    lat = result.latency_ns[ok].astype(np.float64) / 1e9
    uniq, inv = np.unique(tids, return_inverse=True)
    sums = np.bincount(inv, weights=lat)
    counts = np.bincount(inv)
    for t, s, c in zip(uniq.tolist(), sums.tolist(), counts.tolist(), strict=True):
        out[int(t)] = s / c
    return out


def statement_timeouts(
    baseline: Mapping[int, float], factor: float, floor: float
) -> dict[int, float]:
    """Per template: max(floor, factor x baseline mean latency), seconds."""
    return {t: max(floor, factor * lat) for t, lat in baseline.items()}


def measure_replay(
    result: ReplayResult,
    timeouts: Mapping[int, float],
    default_timeout: float,
    slot_of: Mapping[int, int],
) -> StepMeasure:
    """A replay's result as a StepMeasure (timed-out and failed statements count at their
    template's timeout)."""
    tids = result.template_id
    lat = np.where(result.ran, result.latency_ns, 0).astype(np.float64) / 1e9
    uniq, inverse = np.unique(tids, return_inverse=True)
    caps = np.array([timeouts.get(int(t), default_timeout) for t in uniq.tolist()], np.float64)
    cap = caps[inverse]
    failed = result.ran & (result.sqlstate != b"")
    not_run = ~result.ran
    charged = np.where(failed | not_run, cap, lat)
    timed_out = result.sqlstate == QUERY_CANCELED
    by_slot_lat: dict[int, list[float]] = {}
    timeouts_by_slot: dict[int, int] = {}
    errors: dict[str, int] = {}
    for i in np.flatnonzero(timed_out | failed).tolist():
        slot = slot_of.get(int(tids[i]), -1)
        if timed_out[i]:
            timeouts_by_slot[slot] = timeouts_by_slot.get(slot, 0) + 1
        else:
            state = result.sqlstate[i].decode(errors="replace") or "error"
            errors[state] = errors.get(state, 0) + 1
    means = template_latencies(result)
    for tid, mean in means.items():
        found = slot_of.get(tid)
        if found is not None:
            by_slot_lat.setdefault(found, []).append(mean)
    per_slot = {s: float(np.mean(v)) for s, v in by_slot_lat.items()}
    ok = int(result.ok.sum())
    elapsed = result.elapsed_ns / 1e9
    return StepMeasure(
        value=float(charged.sum()),
        throughput=ok / elapsed if elapsed > 0 else 0.0,
        per_slot=per_slot,
        timeouts=timeouts_by_slot,
        errors=errors,
        statements=len(result),
    )


def slot_counts(
    template_ids: NDArray[np.uint32], slot_of: Mapping[int, int], n_slots: int
) -> NDArray[np.float64]:
    """How many statements of the workload each slot has."""
    counts = np.zeros(n_slots, dtype=np.float64)
    uniq, c = np.unique(template_ids, return_counts=True)
    for t, k in zip(uniq.tolist(), c.tolist(), strict=True):
        slot = slot_of.get(int(t))
        if slot is not None:
            counts[slot] += k
    return counts
