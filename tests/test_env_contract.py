"""The environment contract on real servers: registration, gymnasium's checker on every
id, spaces, determinism, what an action does in the plans, masks, reset, close."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dbgym
from dbgym.envs.env import DbGymEnv
from dbgym.envs.registration import ENV_IDS
from dbgym.envs.reward import RewardContext
from dbgym.envs.spec import EnvSpec, GymSpec
from dbgym.errors import InvalidArgumentError
from tests.env_fixtures import pgbench_gym_spec, tpch_gym_spec
from tests.instance_checks import instance_fields, leftovers


def test_import_registers_ids_without_importing_the_env() -> None:
    code = (
        "import sys, gymnasium, dbgym\n"
        "ids = [k for k in gymnasium.registry if k.startswith('dbgym/')]\n"
        "specs = [gymnasium.spec(i) for i in ids]\n"
        "print(sorted(ids), all(s.nondeterministic for s in specs),\n"
        "      all(isinstance(s.entry_point, str) for s in specs),\n"
        "      'dbgym.envs.env' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"{sorted(ENV_IDS)} True True False"


def test_specs_round_trip_and_pickle() -> None:
    g = tpch_gym_spec(episode_sample=10)
    assert GymSpec.from_json(g.to_json()) == g
    assert pickle.loads(pickle.dumps(g)) == g
    e = EnvSpec(tune=("indexes",), evaluation="estimate", knobs=(dbgym.KnobRange("work_mem"),))
    assert EnvSpec.from_json(e.to_json()) == e
    with pytest.raises(dbgym.errors.SpecError) as err:
        EnvSpec(evaluation="guess")  # type: ignore[arg-type]
    assert err.value.key == "evaluation"
    # a loaded workload travels as its binary trace, not re-read
    w = dbgym.Workload.benchmark("tpch", scale=0.01, seed=3)
    g2 = GymSpec(historical_workloads=[w], historical_state=g.historical_state)
    back = pickle.loads(pickle.dumps(g2))
    assert back.workloads()[0].trace.to_bytes() == w.trace.to_bytes()
    assert json.loads(g2.to_json())["historical_workloads"][0]["kind"] == "benchmark"


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_gymnasium_check_env_every_id(env_id: str) -> None:
    kwargs: dict[str, Any] = {"gym_spec": tpch_gym_spec(), "max_plan_nodes": 48}
    if env_id == "dbgym/DbGym-v0":
        kwargs["tune"] = ("knobs", "indexes", "hints")
    env = gym.make(env_id, **kwargs)
    try:
        check_env(env.unwrapped)
        assert env.observation_space.contains(env.reset(seed=1)[0])
    finally:
        env.close()


@pytest.mark.parametrize(
    ("env_id", "evaluation"),
    [
        ("dbgym/DbGym-v0", "estimate"),
        ("dbgym/KnobTuning-v0", "execute"),
        ("dbgym/QueryHints-v0", "execute"),
    ],
)
def test_check_env_on_pgbench(env_id: str, evaluation: str) -> None:
    # pgbench's statements use only primary keys: no index candidate, so the holistic env
    # tunes knobs and hints, and dbgym/IndexSelection-v0 refuses it (below)
    kwargs: dict[str, Any] = {"evaluation": evaluation}
    if env_id == "dbgym/DbGym-v0":
        kwargs["tune"] = ("knobs", "hints")
    env = gym.make(env_id, gym_spec=pgbench_gym_spec(), **kwargs)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_index_selection_on_pgbench_says_why_not() -> None:
    with pytest.raises(InvalidArgumentError, match="no index candidate"):
        gym.make("dbgym/IndexSelection-v0", gym_spec=pgbench_gym_spec())


@pytest.fixture(scope="module")
def env() -> Iterator[DbGymEnv]:
    e = DbGymEnv(tpch_gym_spec(), max_plan_nodes=48)
    yield e
    e.close()


def _index_action(env: DbGymEnv, table: str, column: str) -> dict[str, Any]:
    action = env.default_action()
    assert env.index_space is not None
    names = [(c.table, c.columns) for c in env.index_space.candidates]
    action["indexes"] = np.zeros_like(action["indexes"])
    action["indexes"][names.index((table, (column,)))] = 1
    return dict(action)


def test_index_chosen_shows_in_plans_and_is_gone_after_reset(env: DbGymEnv) -> None:
    env.reset(seed=5)
    assert env.index_space is not None
    candidates = env.index_space.candidates
    pick = next(c for c in candidates if c.table == "lineitem" and c.columns == ("l_shipdate",))
    _, _, _, _, info = env.step(_index_action(env, "lineitem", "l_shipdate"))
    assert info["error"] is None, info["error"]
    assert str(pick) in info["config"]["indexes"]
    assert any(p is not None and pick.name in p for p in info["plans"])
    conn = env.session.connection()  # type: ignore[union-attr]
    assert conn.execute("SELECT to_regclass(%s)", (pick.name,)).fetchone() != (None,)
    obs, info = env.reset(seed=5)
    conn = env.session.connection()  # type: ignore[union-attr]
    assert conn.execute("SELECT to_regclass(%s)", (pick.name,)).fetchone() == (None,)
    assert not any(p is not None and pick.name in p for p in info["plans"])
    assert float(obs["indexes"].sum()) == 0.0


def test_same_action_twice_changes_nothing(env: DbGymEnv) -> None:
    env.reset(seed=6)
    env.action_space.seed(11)
    action = env.action_space.sample()
    _, _, _, _, first = env.step(action)
    _, _, _, _, second = env.step(action)
    assert second["config"] == first["config"]
    assert second["restarted"] is False
    assert second["error"] is None


def test_hint_set_changes_a_join_method(env: DbGymEnv) -> None:
    env.reset(seed=7)
    assert env.hint_space is not None
    _, _, _, _, info0 = env.step(env.default_action())
    plans0 = info0["plans"]
    joined = [i for i, p in enumerate(plans0) if p is not None and '"Hash Join"' in p]
    assert joined, "no TPC-H template uses a hash join?"
    slot = joined[0]
    action = env.default_action()
    arm = next(i for i, s in enumerate(env.hint_space.hint_sets) if s == {"enable_hashjoin": "off"})
    action["hints"] = np.zeros_like(action["hints"])
    action["hints"][slot] = arm
    _, _, _, _, info = env.step(action)
    assert info["error"] is None, info["error"]
    assert '"Hash Join"' not in info["plans"][slot]
    assert info["config"]["hints"], info["config"]


def test_masks_hide_over_budget_indexes() -> None:
    env = DbGymEnv(tpch_gym_spec(), tune=("indexes",), index_budget=1, max_plan_nodes=48)
    try:
        _, info = env.reset(seed=1)
        mask = info["action_mask"]["indexes"]
        assert env.index_space is not None
        fits = env.index_space.sizes <= 1
        assert (mask[~fits] == 0).all()
        env.action_space.seed(3)
        for _ in range(20):
            sample = env.action_space.sample(mask={"indexes": mask})
            assert int(sample["indexes"].sum()) == 0 or fits[sample["indexes"] == 1].all()
        sb3 = env.action_masks()
        assert sb3.dtype == bool and sb3.size == 2 * len(env.index_space.candidates)
    finally:
        env.close()


def test_seeded_determinism_estimate_mode() -> None:
    def trajectory() -> tuple[list[float], list[Any], list[Any]]:
        env = DbGymEnv(tpch_gym_spec(episode_sample=12), evaluation="estimate", max_plan_nodes=48)
        try:
            obs, info = env.reset(seed=123)
            env.action_space.seed(9)
            rewards, configs, firsts = [], [], [obs["plan_features"].copy()]
            for _ in range(6):
                _, r, _, _, info = env.step(env.action_space.sample())
                rewards.append(float(r))
                configs.append(info["config"])
            return rewards, configs, firsts
        finally:
            env.close()

    r1, c1, o1 = trajectory()
    r2, c2, o2 = trajectory()
    assert r1 == r2  # bit for bit
    assert c1 == c2
    assert np.array_equal(o1[0], o2[0])


def test_no_server_left_after_close_and_after_exception_in_step(backend: str) -> None:
    env = DbGymEnv(tpch_gym_spec(), backend=backend, tune=("knobs",), max_plan_nodes=48)
    assert env.session is not None and env.session.instance is not None
    fields = instance_fields(env.session.instance)
    env.reset(seed=1)
    with pytest.raises(InvalidArgumentError):
        env.step({"knobs": np.full(99, 0.5, dtype=np.float32)})
    env.close()
    env.close()  # twice is fine
    assert leftovers(fields) == []
    with pytest.raises(InvalidArgumentError):
        env.reset()


def halved(ctx: RewardContext) -> float:
    """A user reward (module level, so it is recorded as 'module:name')."""
    return 0.5 * (ctx.baseline - ctx.value) / ctx.baseline


def test_throughput_reward_on_pgbench_and_a_user_callable() -> None:
    env = DbGymEnv(pgbench_gym_spec(), tune=("knobs",), reward="throughput", max_plan_nodes=32)
    try:
        _, info = env.reset(seed=1)
        assert info["baseline_throughput"] > 0
        _, reward, _, _, info = env.step(env.default_action())
        assert info["error"] is None and info["throughput"] > 0
        expected = (info["throughput"] - env._baseline.measure.throughput) / (
            env._baseline.measure.throughput
        )
        assert reward == pytest.approx(expected)
    finally:
        env.close()
    env = DbGymEnv(tpch_gym_spec(), tune=("indexes",), evaluation="estimate", reward=halved)
    try:
        env.reset(seed=1)
        assert env.env_spec.reward == "tests.test_env_contract:halved"
        _, reward, _, _, info = env.step(env.default_action())
        assert reward == pytest.approx(0.5 * (info["baseline"] - info["value"]) / info["baseline"])
    finally:
        env.close()
    with pytest.raises(InvalidArgumentError, match="module-level"):
        DbGymEnv(tpch_gym_spec(), reward=lambda ctx: 0.0)
