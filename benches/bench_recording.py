"""What recording costs per environment step (issue 11): RecordEpisodes on vs off in the
same run, on the same environment and server, in interleaved blocks.

A round is a block of steps on the bare environment (pytest-benchmark's setup) and the
same actions through the wrapper (the timed function), its writer thread flushing every
second as in a real run, the block ended by a `flush()` of what is left. The recording's
cost is the process CPU time a recorded block takes beyond its bare twin (the stepping
thread, the writer thread's conversion and Parquet encoding, the collector: everything,
none of it allowed to overlap anything), per step, paired round by round, median; it is
stated against the bare step's wall time. The wall-clock ratio of the steps alone (what
the writer thread's concurrent work costs the stepping thread) is reported beside it.

Asserted: the fast estimate-mode environment (IndexSelection-v0 on TPC-H SF 0.01's 22
templates, the index observation) stepped with random index configurations as an
exploring agent sends them (new to the what-if cache: the cache is cleared before each
block, so both blocks EXPLAIN the same configurations): <= 5% of a step.

Reported, not asserted: the same configurations again with a warm cache (a step is then
~1.3 ms of Python and nothing else: the worst case, where recording's ~0.1 ms per step
of Python shows most), and DbGym-v0's default observation (0.5 MB of plan features a
step at max_plan_nodes=32, and 22 EXPLAIN plans, warm cache).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pytest_benchmark.fixture import BenchmarkFixture

from benches.guard import Guard, record_all
from dbgym.envs.env import DbGymEnv, IndexSelectionEnv
from dbgym.project.recording import RecordEpisodes
from tests.env_fixtures import tpch_gym_spec


def _paired(
    env: DbGymEnv,
    folder: Path,
    *,
    block: int,
    rounds: int,
    cold: bool,
    benchmark: BenchmarkFixture | None = None,
) -> dict[str, float]:
    """Bare vs recorded blocks of the same `block` actions: the bare step's wall time,
    the recording's CPU per step and the steps' wall-clock ratio (medians over rounds)."""
    rec = RecordEpisodes(env, folder)
    estimator = env._estimator
    assert estimator is not None  # estimate mode
    try:
        rec.reset(seed=1)
        env.action_space.seed(3)
        actions: list[Any] = [env.action_space.sample() for _ in range(block)]
        for a in actions:  # warm both paths up (and the cache, for the warm variant)
            rec.step(a)
        rec.flush()
        bare: list[tuple[float, float]] = []  # (wall, cpu) seconds per block
        recorded: list[tuple[float, float]] = []

        def plain() -> None:
            if cold:
                estimator.clear_cache()
            t, c = time.perf_counter(), time.process_time()
            for a in actions:
                env.step(a)
            bare.append((time.perf_counter() - t, time.process_time() - c))

        def recording() -> None:
            if cold:
                estimator.clear_cache()
            t, c = time.perf_counter(), time.process_time()
            for a in actions:
                rec.step(a)
            wall = time.perf_counter() - t
            rec.flush()  # the rest of the block's rows: their cost is the block's
            recorded.append((wall, time.process_time() - c))

        if benchmark is not None:
            benchmark.pedantic(recording, setup=plain, rounds=rounds, iterations=1)  # type: ignore[no-untyped-call]
        else:
            for _ in range(rounds):
                plain()
                recording()
        steps = rec.steps_recorded
    finally:
        rec.close()
    return {
        "step": statistics.median(w for w, _ in bare) / block,
        "cpu": statistics.median(
            (r[1] - b[1]) / block for r, b in zip(recorded, bare, strict=True)
        ),
        "wall_ratio": statistics.median(r[0] / b[0] for r, b in zip(recorded, bare, strict=True)),
        "steps": float(steps),
    }


def test_recording_overhead_per_step(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    fast = IndexSelectionEnv(tpch_gym_spec(), evaluation="estimate", observe=("indexes",))
    cold = _paired(fast, tmp_path / "cold", block=20, rounds=5, cold=True, benchmark=benchmark)
    fast = IndexSelectionEnv(tpch_gym_spec(), evaluation="estimate", observe=("indexes",))
    warm = _paired(fast, tmp_path / "warm", block=400, rounds=5, cold=False)
    full_env = DbGymEnv(tpch_gym_spec(), evaluation="estimate", max_plan_nodes=32)
    obs_space = full_env.observation_space
    assert isinstance(obs_space, spaces.Dict)
    obs_mb = float(np.prod(obs_space["plan_features"].shape)) * 4 / 1e6
    full = _paired(full_env, tmp_path / "full", block=100, rounds=3, cold=False)

    def share(r: dict[str, float]) -> float:
        return r["cpu"] / r["step"]

    def line(name: str, r: dict[str, float]) -> str:
        return (
            f"{name}: {r['step'] * 1000:.2f} ms a step, recording {r['cpu'] * 1e6:.0f} us CPU "
            f"a step = {share(r) * 100:.1f}% (steps' wall-clock ratio {r['wall_ratio']:.3f})"
        )

    print(
        "\nrecording overhead per step, recorded vs bare blocks of the same actions:\n  "
        + "\n  ".join(
            [
                line("fast estimate env, new configurations (asserted <= 5%)", cold),
                line("same configurations, warm what-if cache (reported)", warm),
                line(f"default observation, {obs_mb:.2f} MB plan features (reported)", full),
            ]
        )
        + f"\n  ({int(cold['steps'] + warm['steps'] + full['steps'])} steps recorded)"
    )
    record_all(
        benchmark,
        Guard(
            label="recording CPU per step / step, fast estimate env",
            figure=cold["cpu"] * 1000,
            baseline=cold["step"] * 1000,
            unit="ms",
            ratio=share(cold),
            bar=0.05,
            higher_is_better=False,
            detail="recording's process CPU per step over the bare step's wall time",
        ),
        Guard(
            label="recording CPU per step / step, warm what-if cache",
            figure=warm["cpu"] * 1000,
            baseline=warm["step"] * 1000,
            unit="ms",
            ratio=share(warm),
            bar=None,
            higher_is_better=False,
        ),
        Guard(
            label="recording CPU per step / step, default observation",
            figure=full["cpu"] * 1000,
            baseline=full["step"] * 1000,
            unit="ms",
            ratio=share(full),
            bar=None,
            higher_is_better=False,
        ),
    )
