"""Faults are part of the environment: a configuration that does not start and a server
SIGKILLed in the middle of a step both give the penalty, `info["error"]` says what
happened, and the next step works (real servers, both backends)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest

from dbgym.dbms.instance import PostgresInstance
from dbgym.envs.env import DbGymEnv, KnobTuningEnv
from dbgym.envs.spec import KnobRange
from tests.conftest import Faults, _container
from tests.env_fixtures import tpch_gym_spec


def _sigkill_postmaster(inst: PostgresInstance) -> None:
    """SIGKILL of the postmaster (in its container on docker), without waiting."""
    if inst.backend == "docker":
        pid = int((inst.datadir / "postmaster.pid").read_text().split()[0])
        out = _container(inst).exec_run(["sh", "-c", f"kill -KILL {pid}"])
        assert out.exit_code == 0, out.output
    else:
        os.kill(int(inst.backend_impl.registry_fields()["server_pid"]), signal.SIGKILL)


@pytest.fixture
def knob_env(backend: str) -> Iterator[KnobTuningEnv]:
    # max_connections below superuser_reserved_connections + reserved: the server
    # refuses to start with the high end of this range (a start-breaking value)
    knobs = [KnobRange("work_mem", 1024.0, 65536.0), KnobRange("max_connections", 1.0, 100.0)]
    env = KnobTuningEnv(
        tpch_gym_spec(), backend=backend, knobs=tuple(knobs), penalty=-5.0, max_plan_nodes=48
    )
    yield env
    env.close()


def test_start_breaking_knob_gives_penalty_then_a_working_step(knob_env: KnobTuningEnv) -> None:
    knob_env.reset(seed=1)
    names = knob_env.knob_space.names if knob_env.knob_space else ()
    bad = np.array([0.5, 0.0], dtype=np.float32)  # max_connections = 1: refused at start
    assert names == ("work_mem", "max_connections")
    _, reward, _, _, info = knob_env.step(bad)
    assert reward == -5.0
    assert info["error"] is not None and "max_connections" in info["error"], info["error"]
    good = np.array([0.5, 1.0], dtype=np.float32)
    _, reward, _, _, info = knob_env.step(good)
    assert info["error"] is None, info["error"]
    assert reward != -5.0
    assert info["value"] is not None and info["value"] > 0


def test_postmaster_killed_mid_step(backend: str, faults: Faults) -> None:
    env = DbGymEnv(tpch_gym_spec(), backend=backend, tune=("knobs",), max_plan_nodes=48)
    try:
        env.reset(seed=2)
        inst = env.session.instance if env.session else None
        assert inst is not None
        watch = inst.connect(autocommit=True)

        def replaying() -> bool:
            row = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND pid <> pg_backend_pid() AND query ILIKE '%%select%%' "
                "AND query NOT ILIKE 'EXPLAIN%%' AND query NOT ILIKE '%%pg_settings%%' "
                "AND query NOT ILIKE '%%pg_stat%%'"
            ).fetchone()
            return bool(row and row[0])

        # kill without waiting to see it dead: the step notices and restarts the server at
        # once (a watcher polling alive() could miss the short gap on docker)
        killer = faults.when(replaying, lambda: _sigkill_postmaster(inst), "a replay running")
        _, reward, _, _, info = env.step(env.default_action())
        killer.join()
        watch.close()
        assert reward == env.env_spec.penalty, info
        assert info["error"] is not None and "recovered" in info["error"]
        _, reward, _, _, info = env.step(env.default_action())
        assert info["error"] is None, info["error"]
        assert info["value"] is not None and info["value"] > 0
    finally:
        env.close()


def test_index_build_blocked_by_a_lock_times_out_into_a_penalty() -> None:
    env = DbGymEnv(tpch_gym_spec(), tune=("indexes",), index_timeout=1.0, max_plan_nodes=48)
    try:
        env.reset(seed=3)
        assert env.session is not None and env.session.instance is not None
        assert env.index_space is not None
        first = next(i for i, c in enumerate(env.index_space.candidates) if c.table == "lineitem")
        action = {"indexes": np.zeros(len(env.index_space.candidates), dtype=np.int8)}
        action["indexes"][first] = 1
        with env.session.instance.connect() as other:
            other.execute("LOCK TABLE lineitem IN ACCESS EXCLUSIVE MODE")  # held: not committed
            _, reward, _, _, info = env.step(action)
        assert reward == env.env_spec.penalty
        assert info["error"] is not None and "statement timeout" in info["error"], info["error"]
        assert info["config"]["indexes"] == []
        _, reward, _, _, info = env.step(action)  # the lock is gone: it builds
        assert info["error"] is None, info["error"]
        assert info["config"]["indexes"] == [str(env.index_space.candidates[first])]
    finally:
        env.close()
