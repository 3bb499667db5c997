"""RL tooling on the real environment, unchanged: stable-baselines3's check_env on the
documented wrapper, PPO learning a few hundred steps in estimate mode, sb3-contrib's
MaskablePPO on index selection, and gymnasium's AsyncVectorEnv with two environments
(one server each), on TPC-H and pgbench."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from dbgym.envs.spec import GymSpec
from dbgym.envs.wrappers import SB3Wrapper
from tests.env_fixtures import pgbench_gym_spec, tpch_gym_spec

SPECS: dict[str, Callable[[], GymSpec]] = {"tpch": tpch_gym_spec, "pgbench": pgbench_gym_spec}


@pytest.mark.parametrize("bench", sorted(SPECS))
def test_sb3_check_env_and_ppo_in_estimate_mode(bench: str) -> None:
    env = SB3Wrapper(
        gym.make(
            "dbgym/DbGym-v0",
            gym_spec=SPECS[bench](),
            evaluation="estimate",
            max_plan_nodes=32,
            max_episode_steps=20,
            # pgbench's statements use only primary keys: no index candidate
            tune=("knobs", "indexes", "hints") if bench == "tpch" else ("knobs", "hints"),
        )
    )
    try:
        sb3_check_env(env)
        model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=1)
        model.learn(total_timesteps=256)
        assert model.num_timesteps >= 256
        obs, _ = env.reset(seed=3)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(action)
    finally:
        env.close()


def test_maskable_ppo_on_index_selection() -> None:
    from sb3_contrib import MaskablePPO

    env = gym.make(
        "dbgym/IndexSelection-v0",
        gym_spec=tpch_gym_spec(),
        evaluation="estimate",
        max_plan_nodes=32,
        max_episode_steps=10,
    )
    try:
        model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=1)
        model.learn(total_timesteps=64)
        assert model.num_timesteps >= 64
    finally:
        env.close()


def _maker(bench: str, evaluation: str) -> Callable[[], gym.Env[Any, Any]]:
    spec = SPECS[bench]()

    def make() -> gym.Env[Any, Any]:
        tune = ("knobs", "indexes", "hints") if bench == "tpch" else ("knobs", "hints")
        return gym.make(
            "dbgym/DbGym-v0", gym_spec=spec, evaluation=evaluation, max_plan_nodes=32, tune=tune
        )

    return make


@pytest.mark.parametrize(("bench", "evaluation"), [("tpch", "execute"), ("pgbench", "estimate")])
def test_async_vector_env_two_servers(bench: str, evaluation: str) -> None:
    envs = gym.vector.AsyncVectorEnv([_maker(bench, evaluation)] * 2)
    try:
        obs, infos = envs.reset(seed=11)
        assert envs.observation_space.contains(obs)
        for _ in range(2):
            obs, rewards, _, _, infos = envs.step(envs.action_space.sample())
            assert rewards.shape == (2,) and np.isfinite(rewards).all()
            assert all(e is None for e in infos["error"]), infos["error"]
    finally:
        envs.close()
