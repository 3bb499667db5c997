"""SB3Wrapper on a small real Gymnasium environment with dbgym's action and observation
shapes (a Dict action of Box + MultiBinary + MultiDiscrete, a flat Dict of float32 Boxes):
both env checkers pass, the flat vector decodes as documented and round-trips, PPO
trains on it, and non-Dict spaces pass through unchanged."""

from __future__ import annotations

import warnings
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from dbgym.envs.wrappers import SB3Wrapper
from dbgym.errors import InvalidArgumentError

Obs = dict[str, Any]


class TinyTuningEnv(gym.Env[Obs, Any]):
    """A configuration to reach: knobs near TARGET, the first two indexes on, hint 2 in
    every slot. The reward is minus the distance; episodes are 8 steps."""

    TARGET = np.array([0.2, 0.7, 0.5], dtype=np.float32)

    def __init__(self, action_space: spaces.Space[Any] | None = None) -> None:
        self.action_space = action_space or spaces.Dict(
            {
                "knobs": spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
                "indexes": spaces.MultiBinary(5),
                "hints": spaces.MultiDiscrete([4, 4, 4]),
            }
        )
        self.observation_space = spaces.Dict(
            {
                "knobs": spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
                "latency": spaces.Box(0.0, np.inf, shape=(4,), dtype=np.float32),
            }
        )
        self._knobs = np.zeros(3, dtype=np.float32)
        self._steps = 0

    def _obs(self) -> Obs:
        noise = self.np_random.uniform(0.0, 0.01, size=4).astype(np.float32)
        latency = (np.abs(self._knobs - self.TARGET).sum() + noise).astype(np.float32)
        return {"knobs": self._knobs.copy(), "latency": latency}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._knobs = np.zeros(3, dtype=np.float32)
        self._steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        assert self.action_space.contains(action), action
        self._steps += 1
        if isinstance(action, dict):
            self._knobs = np.asarray(action["knobs"], dtype=np.float32)
            indexes = np.asarray(action["indexes"])
            hints = np.asarray(action["hints"])
            reward = -float(np.abs(self._knobs - self.TARGET).sum())
            reward -= float(np.abs(indexes - np.array([1, 1, 0, 0, 0])).sum())
            reward -= float((hints != 2).sum())
        else:
            reward = 0.0
        return self._obs(), reward, False, self._steps >= 8, {"steps": self._steps}


def wrapped() -> SB3Wrapper:
    return SB3Wrapper(TinyTuningEnv())


def test_the_flat_action_space_is_one_unit_box() -> None:
    env = wrapped()
    assert env.action_space == spaces.Box(0.0, 1.0, shape=(11,), dtype=np.float32)
    assert env.observation_space == env.env.observation_space
    # gymnasium sorts Dict keys: hints, indexes, knobs
    assert [(s.key, s.start, s.size) for s in env.segments] == [
        ("hints", 0, 3),
        ("indexes", 3, 5),
        ("knobs", 8, 3),
    ]


def test_both_env_checkers_pass() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(wrapped(), warn=True)
        gym_check_env(wrapped(), skip_render_check=True)
    # advice only: SB3 prefers [-1, 1] Boxes, gymnasium notes the wrapper and the inf bound
    allowed = ("symmetric and normalized Box", "different from the unwrapped", "infinity")
    others = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert others == []


def test_decoding_buckets_thresholds_and_passes_the_box() -> None:
    env = wrapped()
    x = np.array([0.0, 0.26, 1.0, 0.49, 0.5, 0.0, 1.0, 0.999, 0.2, 0.7, 0.5], dtype=np.float32)
    action = env.action(x)
    assert env.env.action_space.contains(action)
    assert action["hints"].tolist() == [0, 1, 3]  # min(int(x * 4), 3)
    assert action["indexes"].tolist() == [0, 1, 0, 1, 1]  # x >= 0.5
    assert np.array_equal(action["knobs"], x[8:])
    clipped = env.action(np.full(11, 1.5, dtype=np.float32))
    assert clipped["hints"].tolist() == [3, 3, 3] and (clipped["knobs"] == 1.0).all()
    with pytest.raises(InvalidArgumentError, match=r"shape \(11,\)"):
        env.action(np.zeros(10, dtype=np.float32))
    bad = np.zeros(11, dtype=np.float32)
    bad[4] = np.nan
    with pytest.raises(InvalidArgumentError, match="entry 4 \\(part 'indexes' entry 1\\)"):
        env.action(bad)


def test_action_and_reverse_action_round_trip() -> None:
    env = wrapped()
    inner = env.env.action_space
    inner.seed(0)
    env.action_space.seed(0)
    for _ in range(200):
        a = inner.sample()
        flat = env.reverse_action(a)
        assert env.action_space.contains(flat)
        back = env.action(flat)
        assert all(np.array_equal(back[k], a[k]) for k in a)
        x = env.action_space.sample()
        again = env.action(env.reverse_action(env.action(x)))
        assert all(np.array_equal(again[k], env.action(x)[k]) for k in again)
    with pytest.raises(InvalidArgumentError, match="outside"):
        env.reverse_action({**inner.sample(), "hints": np.array([0, 4, 0])})
    with pytest.raises(InvalidArgumentError, match="missing parts \\['knobs'\\]"):
        env.reverse_action({k: v for k, v in inner.sample().items() if k != "knobs"})


def test_scaled_box_discrete_and_start_offsets() -> None:
    space = spaces.Dict(
        {
            "a": spaces.Box(-2.0, 6.0, shape=(2,), dtype=np.float32),
            "b": spaces.Discrete(3, start=1),
            "c": spaces.MultiDiscrete([2, 5], start=[10, -2]),
        }
    )
    env = SB3Wrapper(TinyTuningEnv(space))
    action = env.action(np.array([0.0, 0.5, 0.99, 0.5, 0.5], dtype=np.float32))
    assert np.allclose(action["a"], [-2.0, 2.0]) and int(action["b"]) == 3
    assert action["c"].tolist() == [11, 0]
    assert space.contains(action)
    space.seed(1)
    for _ in range(50):
        a = space.sample()
        back = env.action(env.reverse_action(a))
        assert np.allclose(back["a"], a["a"], atol=1e-5)
        assert int(back["b"]) == int(a["b"]) and np.array_equal(back["c"], a["c"])


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32),
        spaces.MultiBinary(6),
        spaces.MultiDiscrete([3, 3]),
    ],
    ids=["box", "multibinary", "multidiscrete"],
)
def test_non_dict_spaces_pass_through(space: spaces.Space[Any]) -> None:
    env = SB3Wrapper(TinyTuningEnv(space))
    assert env.action_space is space and env.segments == ()
    a = space.sample()
    assert env.action(a) is a and env.reverse_action(a) is a
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(env, warn=True)


def test_unsupported_parts_and_nested_observations_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="part 'x' is a Tuple"):
        SB3Wrapper(TinyTuningEnv(spaces.Dict({"x": spaces.Tuple([spaces.Discrete(2)])})))
    with pytest.raises(InvalidArgumentError, match="part 'k' is an unbounded Box"):
        SB3Wrapper(TinyTuningEnv(spaces.Dict({"k": spaces.Box(0.0, np.inf, shape=(1,))})))
    env = TinyTuningEnv()
    env.observation_space = spaces.Dict({"inner": spaces.Dict({"x": spaces.Discrete(2)})})
    with pytest.raises(InvalidArgumentError, match="observation part 'inner' is a Dict"):
        SB3Wrapper(env)


def test_ppo_learns_on_the_wrapped_env() -> None:
    env = wrapped()
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=1)
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    obs, _ = env.reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    _, reward, _, _, info = env.step(action)
    assert np.isfinite(float(reward)) and info["steps"] == 1
