"""SB3Wrapper on a small real Gymnasium environment with dbgym's action and observation
shapes (a Dict action of Box + MultiBinary + MultiDiscrete; a flat Dict of float32 Boxes,
1-D, 2-D and 3-D like dbgym's plan, knob, index and hint parts): both env checkers pass,
the flat vector decodes as documented ([0, 1] and symmetric [-1, 1]) and round-trips, PPO
trains on it, action spaces SB3 takes pass through, the ones it does not are flattened,
and observations SB3 cannot take are refused when the wrapper is made."""

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
T, N, F = 2, 3, 4  # template slots, plan nodes, plan features (dbgym's observation shape)


class TinyTuningEnv(gym.Env[Obs, Any]):
    """A configuration to reach: knobs near TARGET, the first two indexes on, hint 2 in
    every slot. The reward is minus the distance; episodes are 8 steps. The observation
    has the shapes and bounds of dbgym's (plan features (T, N, F), plan parents (T, N)
    with -1, signed-log metrics, knobs, indexes, one-hot hints (T, H))."""

    TARGET = np.array([0.2, 0.7, 0.5], dtype=np.float32)

    def __init__(self, action_space: spaces.Space[Any] | None = None) -> None:
        self.action_space = (
            action_space
            if action_space is not None
            else spaces.Dict(
                {
                    "knobs": spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
                    "indexes": spaces.MultiBinary(5),
                    "hints": spaces.MultiDiscrete([4] * T),
                }
            )
        )
        self.observation_space = spaces.Dict(
            {
                "plan_features": spaces.Box(-1.0, 10.0, (T, N, F), dtype=np.float32),
                "plan_parent": spaces.Box(-1.0, N - 1.0, (T, N), dtype=np.float32),
                "template_mask": spaces.Box(0.0, 1.0, (T,), dtype=np.float32),
                "metrics": spaces.Box(-710.0, 710.0, (4,), dtype=np.float32),
                "knobs": spaces.Box(0.0, 1.0, (3,), dtype=np.float32),
                "indexes": spaces.Box(0.0, 1.0, (5,), dtype=np.float32),
                "hints": spaces.Box(0.0, 1.0, (T, 4), dtype=np.float32),
            }
        )
        self._knobs = np.zeros(3, dtype=np.float32)
        self._indexes = np.zeros(5, dtype=np.float32)
        self._hints = np.zeros(T, dtype=np.int64)
        self._steps = 0

    def _obs(self) -> Obs:
        cost = float(np.abs(self._knobs - self.TARGET).sum())
        features = self.np_random.uniform(0.0, 1.0, size=(T, N, F)).astype(np.float32)
        parent = np.tile(np.arange(-1, N - 1, dtype=np.float32), (T, 1))
        return {
            "plan_features": features * np.float32(1.0 + cost),
            "plan_parent": parent,
            "template_mask": np.ones(T, dtype=np.float32),
            "metrics": np.full(4, np.log1p(cost), dtype=np.float32),
            "knobs": self._knobs.copy(),
            "indexes": self._indexes.copy(),
            "hints": np.eye(4, dtype=np.float32)[self._hints],
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._knobs = np.zeros(3, dtype=np.float32)
        self._indexes = np.zeros(5, dtype=np.float32)
        self._hints = np.zeros(T, dtype=np.int64)
        self._steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        assert self.action_space.contains(action), action
        self._steps += 1
        reward = 0.0
        if isinstance(action, dict):
            self._knobs = np.asarray(action["knobs"], dtype=np.float32)
            self._indexes = np.asarray(action["indexes"], dtype=np.float32)
            self._hints = np.asarray(action["hints"], dtype=np.int64)
            reward -= float(np.abs(self._knobs - self.TARGET).sum())
            reward -= float(np.abs(self._indexes - np.array([1, 1, 0, 0, 0])).sum())
            reward -= float((self._hints != 2).sum())
        return self._obs(), reward, False, self._steps >= 8, {"steps": self._steps}


def wrapped(*, symmetric: bool = False) -> SB3Wrapper:
    return SB3Wrapper(TinyTuningEnv(), symmetric=symmetric)


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


#: advice both checkers give on any such env: SB3 prefers [-1, 1] Boxes and flat 1-D
#: observations (2-D / 3-D float parts are flattened by MultiInputPolicy), gymnasium
#: notes the wrapper.
ADVICE = (
    "symmetric and normalized Box",
    "unconventional shape",
    "is an image",
    "minimal resolution for an image",
    "different from the unwrapped",
)


def check_both(env: gym.Env[Any, Any]) -> list[str]:
    """Runs both checkers; the warnings that are not ADVICE."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
        gym_check_env(env, skip_render_check=True)
    return [str(w.message) for w in caught if not any(a in str(w.message) for a in ADVICE)]


def test_the_flat_action_space_is_one_unit_box() -> None:
    env = wrapped()
    assert env.flattens
    assert env.action_space == spaces.Box(0.0, 1.0, shape=(10,), dtype=np.float32)
    assert env.observation_space == env.env.observation_space
    # gymnasium sorts Dict keys: hints, indexes, knobs
    assert [(s.key, s.start, s.size) for s in env.segments] == [
        ("hints", 0, 2),
        ("indexes", 2, 5),
        ("knobs", 7, 3),
    ]
    sym = wrapped(symmetric=True)
    assert sym.action_space == spaces.Box(-1.0, 1.0, shape=(10,), dtype=np.float32)


@pytest.mark.parametrize("symmetric", [False, True], ids=["unit", "symmetric"])
def test_both_env_checkers_pass(symmetric: bool) -> None:
    assert check_both(wrapped(symmetric=symmetric)) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(wrapped(symmetric=symmetric), warn=True)
    normalized = any("symmetric and normalized" in str(w.message) for w in caught)
    assert normalized is not symmetric  # [-1, 1] is what SB3 recommends


def test_decoding_buckets_thresholds_and_passes_the_box() -> None:
    env = wrapped()
    x = np.array([0.26, 1.0, 0.49, 0.5, 0.0, 1.0, 0.999, 0.2, 0.7, 0.5], dtype=np.float32)
    action = env.action(x)
    assert env.env.action_space.contains(action)
    assert action["hints"].tolist() == [1, 3]  # min(int(x * 4), 3)
    assert action["indexes"].tolist() == [0, 1, 0, 1, 1]  # x >= 0.5
    assert np.array_equal(action["knobs"], x[7:])
    clipped = env.action(np.full(10, 1.5, dtype=np.float32))
    assert clipped["hints"].tolist() == [3, 3] and (clipped["knobs"] == 1.0).all()
    with pytest.raises(InvalidArgumentError, match=r"shape \(10,\)"):
        env.action(np.zeros(9, dtype=np.float32))
    bad = np.zeros(10, dtype=np.float32)
    bad[3] = np.nan
    with pytest.raises(InvalidArgumentError, match="entry 3 \\(part 'indexes' entry 1\\)"):
        env.action(bad)


def test_symmetric_decoding_centres_zero_on_the_middle() -> None:
    env = wrapped(symmetric=True)
    middle = env.action(np.zeros(10, dtype=np.float32))
    assert middle["hints"].tolist() == [2, 2]  # u = 0.5: bucket int(0.5 * 4)
    assert middle["indexes"].tolist() == [1] * 5 and np.allclose(middle["knobs"], 0.5)
    lowest = env.action(np.full(10, -1.0, dtype=np.float32))
    assert lowest["hints"].tolist() == [0, 0] and not lowest["indexes"].any()
    assert (lowest["knobs"] == 0.0).all()
    x = np.array([-0.48, 1.0, -0.02, 0.0, -1.0, 1.0, 0.998, -0.6, 0.4, 0.0], dtype=np.float32)
    same_as_unit = wrapped().action((x + 1) / 2)
    assert same(env.action(x), same_as_unit)


@pytest.mark.parametrize("symmetric", [False, True], ids=["unit", "symmetric"])
def test_action_and_reverse_action_round_trip(symmetric: bool) -> None:
    env = wrapped(symmetric=symmetric)
    inner = env.env.action_space
    inner.seed(0)
    env.action_space.seed(0)
    for _ in range(200):
        a = inner.sample()
        flat = env.reverse_action(a)
        assert env.action_space.contains(flat)
        back = env.action(flat)
        assert back["hints"].tolist() == a["hints"].tolist()
        assert back["indexes"].tolist() == a["indexes"].tolist()
        assert np.allclose(back["knobs"], a["knobs"], atol=1e-6)
        if not symmetric:  # x -> [0, 1] is the identity on a [0, 1] Box
            assert np.array_equal(back["knobs"], a["knobs"])
        x = env.action_space.sample()
        assert same(env.action(env.reverse_action(env.action(x))), env.action(x))
    with pytest.raises(InvalidArgumentError, match="outside"):
        env.reverse_action({**inner.sample(), "hints": np.array([0, 4])})
    with pytest.raises(InvalidArgumentError, match="outside"):
        env.reverse_action({**inner.sample(), "hints": np.array([0.5, 1.0])})
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
        spaces.Discrete(5),
    ],
    ids=["box", "multibinary", "multidiscrete", "discrete"],
)
def test_action_spaces_sb3_takes_pass_through(space: spaces.Space[Any]) -> None:
    env = SB3Wrapper(TinyTuningEnv(space))
    assert env.action_space is space and env.segments == () and not env.flattens
    a = space.sample()
    assert env.action(a) is a and env.reverse_action(a) is a
    assert check_both(env) == []


@pytest.mark.parametrize(
    ("space", "size"),
    [
        (spaces.MultiBinary([2, 3]), 6),
        (spaces.MultiDiscrete(np.array([[3, 3], [2, 4]])), 4),
        (spaces.MultiDiscrete([3, 3], start=[1, 1]), 2),
        (spaces.Discrete(4, start=-1), 1),
    ],
    ids=["multibinary-2d", "multidiscrete-2d", "multidiscrete-start", "discrete-start"],
)
def test_action_spaces_sb3_refuses_are_flattened(space: spaces.Space[Any], size: int) -> None:
    env = SB3Wrapper(TinyTuningEnv(space))
    assert env.flattens and [(s.key, s.size) for s in env.segments] == [("", size)]
    assert env.action_space == spaces.Box(0.0, 1.0, (size,), np.float32)
    space.seed(2)
    for _ in range(30):
        a = space.sample()
        back = env.action(env.reverse_action(a))
        assert space.contains(back) and np.array_equal(np.asarray(back), np.asarray(a))
    assert check_both(env) == []
    with pytest.raises(InvalidArgumentError, match="entry 0 of the action"):
        env.action(np.full(size, np.inf, dtype=np.float32))


def test_unsupported_actions_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="part 'x' is a Tuple"):
        SB3Wrapper(TinyTuningEnv(spaces.Dict({"x": spaces.Tuple([spaces.Discrete(2)])})))
    with pytest.raises(InvalidArgumentError, match="part 'k' is an unbounded Box"):
        SB3Wrapper(TinyTuningEnv(spaces.Dict({"k": spaces.Box(0.0, np.inf, shape=(1,))})))
    with pytest.raises(InvalidArgumentError, match="the action space is an unbounded Box"):
        SB3Wrapper(TinyTuningEnv(spaces.Box(-np.inf, np.inf, shape=(2,))))
    with pytest.raises(InvalidArgumentError, match="no entries"):
        SB3Wrapper(TinyTuningEnv(spaces.Dict({"i": spaces.Box(0.0, 1.0, (0,))})))


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (spaces.Dict({"x": spaces.Discrete(2)}), "'bad' is a Dict \\(nested"),
        (spaces.Tuple([spaces.Discrete(2)]), "'bad' is a Tuple \\(nested"),
        (spaces.Box(0.0, 1.0, shape=(0,), dtype=np.float32), "'bad' has no entries"),
        (spaces.Discrete(3, start=1), "'bad' is a Discrete with a non-zero start"),
        (spaces.MultiDiscrete(np.array([[2, 2]])), "'bad' is a multi-dimensional MultiDiscrete"),
        (spaces.Sequence(spaces.Discrete(2)), "'bad' is a Sequence"),
        (spaces.Text(5), "'bad' is a Text"),
    ],
    ids=["dict", "tuple", "empty-box", "start", "multidiscrete-2d", "sequence", "text"],
)
def test_observations_sb3_cannot_take_are_refused(part: spaces.Space[Any], message: str) -> None:
    env = TinyTuningEnv()
    env.observation_space = spaces.Dict({"ok": spaces.Box(0.0, 1.0, (2,)), "bad": part})
    with pytest.raises(InvalidArgumentError, match=f"observation part {message}"):
        SB3Wrapper(env)
    env.observation_space = spaces.Tuple([spaces.Discrete(2)])  # type: ignore[assignment]
    with pytest.raises(InvalidArgumentError, match="the observation space is a Tuple"):
        SB3Wrapper(env)


@pytest.mark.parametrize("symmetric", [False, True], ids=["unit", "symmetric"])
def test_ppo_learns_on_the_wrapped_env(symmetric: bool) -> None:
    env = wrapped(symmetric=symmetric)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=1)
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    obs, _ = env.reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    _, reward, _, _, info = env.step(action)
    assert np.isfinite(float(reward)) and info["steps"] == 1


def test_symmetric_box_centres_ppo_first_samples() -> None:
    """The measured reason for `symmetric=True`: PPO's untrained Gaussian (mean ~0, std 1)
    clipped to [0, 1] sends about half of the knob entries to the lowest value; on
    [-1, 1] about a sixth."""
    lowest: dict[bool, float] = {}
    for symmetric in (False, True):
        env = wrapped(symmetric=symmetric)
        model = PPO("MultiInputPolicy", env, seed=1)
        obs, _ = env.reset(seed=0)
        knobs = np.array(
            [env.action(model.predict(obs, deterministic=False)[0])["knobs"] for _ in range(300)]
        )
        lowest[symmetric] = float((knobs <= 0.0).mean())
    assert 0.4 < lowest[False] < 0.6
    assert 0.1 < lowest[True] < 0.22
