"""Shared pieces of the environment tests: small TPC-H and pgbench GymSpecs."""

from __future__ import annotations

from typing import Any

import dbgym
from dbgym.envs.spec import GymSpec

#: TPC-H at SF 0.01: 22 templates, the state built once into the state cache.
TPCH_SCALE = 0.01


def tpch_gym_spec(scale: float = TPCH_SCALE, seed: int = 15721, **kw: Any) -> GymSpec:
    state, workload = dbgym.benchmarks.get("tpch").specs(scale=scale, seed=seed)
    return GymSpec(historical_workloads=[workload], historical_state=state, **kw)


def pgbench_gym_spec(transactions: int = 200, **kw: Any) -> GymSpec:
    entry = dbgym.benchmarks.get("pgbench")
    state = entry.state(scale=1)
    workload = entry.workload(scale=1, transactions=transactions, clients=2)
    return GymSpec(historical_workloads=[workload], historical_state=state, **kw)
