"""SB3Wrapper: makes a dbgym environment (or any Gymnasium environment with a Dict action
of Box / MultiBinary / MultiDiscrete / Discrete parts) ready for stable-baselines3.

What stable-baselines3 (2.x) requires, and what the wrapper does about it:

- Actions: one Box (bounded), Discrete, 1-D MultiDiscrete or 1-D MultiBinary, with
  discrete spaces starting at 0; no Dict or Tuple. The wrapper flattens a Dict action
  into ONE `Box(0, 1, (d,), float32)` (d: the total number of entries of the parts, in
  the Dict's key order, which gymnasium sorts: hints, indexes, knobs). A non-Dict action
  space SB3 takes (the one-dimension ids: a [0, 1] Box, MultiBinary(n),
  MultiDiscrete([h] * t)) is left as it is; one it does not take (a multi-dimensional
  MultiBinary/MultiDiscrete, a non-zero start) is flattened like a one-part Dict.
- Observations: a Box, a discrete space (starting at 0; MultiDiscrete 1-D), or a flat
  Dict of those (with `"MultiInputPolicy"`). Not supported, and refused when the wrapper
  is made: nested Dict or Tuple, Graph, Sequence, OneOf or Text parts, discrete parts with
  a non-zero start, a multi-dimensional MultiDiscrete, and a part with no entries (a
  `Box(shape=(0,))`: SB3's rollout cannot reshape its terminal observation). dbgym's
  observation, a flat Dict of float32 Boxes, passes through unchanged.
- Not required, but worth knowing for an environment's author: Box observations are fed
  to the network as they are (no scaling unless `VecNormalize`), so keep them bounded and
  of a moderate range (dbgym's are, e.g. signed log1p metric deltas); float32 avoids
  casts; SB3's `check_env` warns about 2-D and 3-D float Boxes ("unconventional shape",
  "is an image") but `MultiInputPolicy` flattens them (only uint8 Boxes are treated as
  images); every observation must lie in its space and be finite (check_env checks both).
- Rewards: a float, with Gymnasium's 5-tuple `step` (dbgym environments have both).

Decoding one flat vector into the Dict action: each entry is first mapped to u in [0, 1]
(`u = x`, or `u = (x + 1) / 2` with `symmetric=True`) and clipped, then

- a Box part takes u as it is when the Box is [0, 1] (the knob action), otherwise
  `low + u * (high - low)` (the Box must be bounded);
- a MultiBinary bit is `u >= 0.5`;
- a MultiDiscrete (or Discrete) entry with n choices is `start + min(int(u * n), n - 1)`:
  [0, 1] cut into n equal buckets.

`symmetric=True` makes the flat Box [-1, 1], which SB3 recommends: PPO's initial policy
(a Gaussian of mean 0, std 1, clipped to the Box) then centres on the middle of every part;
with [0, 1] about half of its first samples clip to 0 (the lowest knob value, bit 0, the
first hint set).

`reverse_action` maps an action of the inner space to the flat vector (a Box part's
value, the middle of a discrete entry's bucket), so `action(reverse_action(a)) == a`.

The action mask (`info["action_mask"]`, `env.action_masks()`) is not applied to the flat
Box: dbgym environments repair an index action that breaks the budget or prefix rules
(`info["notes"]` says what changed). For masked discrete RL use sb3-contrib's MaskablePPO
on `dbgym/IndexSelection-v0` or `dbgym/QueryHints-v0` without this wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.errors import InvalidArgumentError

Flat = NDArray[np.float32]

#: The key of the only segment when a non-Dict action space is flattened.
SINGLE = ""


@dataclass(frozen=True)
class Segment:
    """Where one part of the inner action lives in the flat vector: entries
    [start, start + size) decode into `space` (key "" when the inner action space is not a
    Dict but had to be flattened)."""

    key: str
    start: int
    size: int
    space: spaces.Space[Any]

    @property
    def stop(self) -> int:
        return self.start + self.size


def _choices(space: spaces.Space[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(n, start) per entry of a discrete part, flattened."""
    if isinstance(space, spaces.MultiBinary):
        n = np.full(int(np.prod(space.shape)), 2, dtype=np.int64)
        return n, np.zeros_like(n)
    if isinstance(space, spaces.MultiDiscrete):
        return (
            space.nvec.astype(np.int64).ravel(),
            np.broadcast_to(space.start, space.nvec.shape).astype(np.int64).ravel(),
        )
    assert isinstance(space, spaces.Discrete)
    return np.array([int(space.n)], np.int64), np.array([int(space.start)], np.int64)


def _starts_at_zero(space: spaces.Discrete | spaces.MultiDiscrete) -> bool:
    return bool(np.all(np.asarray(space.start) == 0))


def sb3_takes_action_space(space: spaces.Space[Any]) -> bool:
    """Whether stable-baselines3 takes `space` as an action space as it is."""
    if isinstance(space, spaces.Box):
        return space.is_bounded("both")
    if isinstance(space, spaces.Discrete):
        return _starts_at_zero(space)
    if isinstance(space, spaces.MultiDiscrete):
        return space.nvec.ndim == 1 and _starts_at_zero(space)
    if isinstance(space, spaces.MultiBinary):
        return isinstance(space.n, int | np.integer)
    return False


def _observation_problem(space: spaces.Space[Any]) -> str | None:
    """Why SB3 cannot take `space` as an observation (or one Dict part of it), or None."""
    name = type(space).__name__
    if isinstance(space, spaces.Dict | spaces.Tuple):
        return f"is a {name} (nested; stable-baselines3 takes one flat Dict level)"
    if isinstance(space, spaces.Discrete | spaces.MultiDiscrete) and not _starts_at_zero(space):
        return f"is a {name} with a non-zero start ({space.start})"
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim > 1:
        return f"is a multi-dimensional MultiDiscrete (nvec shape {space.nvec.shape})"
    if not isinstance(
        space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary
    ):
        return f"is a {name}; stable-baselines3 takes Box, Discrete, MultiDiscrete, MultiBinary"
    if space.shape is not None and int(np.prod(space.shape)) == 0:
        return f"has no entries (shape {space.shape}); leave the part out instead"
    return None


def check_sb3_observation_space(space: spaces.Space[Any]) -> None:
    """InvalidArgumentError naming the part when stable-baselines3 cannot take `space` as
    an observation space (see the module docstring)."""
    if isinstance(space, spaces.Dict):
        if not space.spaces:
            raise InvalidArgumentError("SB3Wrapper: the observation Dict has no parts")
        for key, part in space.spaces.items():
            problem = _observation_problem(part)
            if problem is not None:
                raise InvalidArgumentError(f"SB3Wrapper: observation part {key!r} {problem}")
        return
    problem = _observation_problem(space)
    if problem is not None:
        raise InvalidArgumentError(f"SB3Wrapper: the observation space {problem}")


def _segment(key: str, start: int, part: spaces.Space[Any]) -> Segment:
    where = f"action part {key!r}" if key != SINGLE else "the action space"
    if isinstance(part, spaces.Box):
        if not part.is_bounded("both"):
            raise InvalidArgumentError(
                f"SB3Wrapper: {where} is an unbounded Box; only bounded Boxes can be scaled "
                "from [0, 1]"
            )
        return Segment(key, start, int(np.prod(part.shape)), part)
    if isinstance(part, spaces.MultiBinary | spaces.MultiDiscrete | spaces.Discrete):
        return Segment(key, start, len(_choices(part)[0]), part)
    raise InvalidArgumentError(
        f"SB3Wrapper: {where} is a {type(part).__name__}; supported are Box, MultiBinary, "
        "MultiDiscrete and Discrete"
    )


class SB3Wrapper(gym.ActionWrapper[Any, Any, Any]):
    """The inner action as one flat Box in [0, 1]^d, or [-1, 1]^d with `symmetric=True`
    (see the module docstring); action spaces SB3 already takes are left unchanged.

    `segments` says where each part lives in the flat vector (empty when nothing is
    flattened). The observation space is checked, never changed.
    """

    def __init__(self, env: gym.Env[Any, Any], *, symmetric: bool = False) -> None:
        super().__init__(env)
        check_sb3_observation_space(env.observation_space)
        self.symmetric = bool(symmetric)
        inner = env.action_space
        self.segments: tuple[Segment, ...] = ()
        self._single = not isinstance(inner, spaces.Dict)
        if self._single and sb3_takes_action_space(inner):
            return
        parts = inner.spaces if isinstance(inner, spaces.Dict) else {SINGLE: inner}
        segments: list[Segment] = []
        start = 0
        for key, part in parts.items():
            seg = _segment(str(key), start, part)
            segments.append(seg)
            start += seg.size
        if start == 0:
            raise InvalidArgumentError("SB3Wrapper: the action has no entries to flatten")
        self.segments = tuple(segments)
        low = -1.0 if self.symmetric else 0.0
        self.action_space = spaces.Box(low, 1.0, shape=(start,), dtype=np.float32)

    @property
    def flattens(self) -> bool:
        """Whether the inner action is flattened (False: passed through unchanged)."""
        return bool(self.segments)

    # -- flat vector -> inner action -----------------------------------------------------
    def action(self, action: Any) -> Any:
        """The inner environment's action for the flat vector `action` (unchanged when
        nothing is flattened)."""
        if not self.segments:
            return action
        x = np.asarray(action, dtype=np.float64)
        d = self.segments[-1].stop
        if x.shape != (d,):
            raise InvalidArgumentError(
                f"SB3Wrapper: the action must have shape ({d},), got {x.shape}"
            )
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise InvalidArgumentError(
                f"SB3Wrapper: action entry {bad} ({self._where(bad)}) is not finite: {x[bad]}"
            )
        u = np.clip((x + 1.0) / 2.0 if self.symmetric else x, 0.0, 1.0)
        out: dict[str, Any] = {}
        for seg in self.segments:
            out[seg.key] = _decode(seg.space, u[seg.start : seg.stop])
        return out[SINGLE] if self._single else out

    # -- inner action -> flat vector -----------------------------------------------------
    def reverse_action(self, action: Any) -> Any:
        """The flat vector for an action of the inner space (unchanged when nothing is
        flattened): a Box part's scaled value, a discrete entry's bucket middle."""
        if not self.segments:
            return action
        if self._single:
            action = {SINGLE: action}
        elif not isinstance(action, dict):
            raise InvalidArgumentError(
                f"SB3Wrapper: reverse_action takes a dict with keys "
                f"{[s.key for s in self.segments]}, got {type(action).__name__}"
            )
        missing = [s.key for s in self.segments if s.key not in action]
        if missing:
            raise InvalidArgumentError(f"SB3Wrapper: reverse_action: missing parts {missing}")
        flat: list[NDArray[np.float64]] = []
        for seg in self.segments:
            value = np.asarray(action[seg.key], dtype=np.float64).ravel()
            where = f"part {seg.key!r}" if seg.key != SINGLE else "the action"
            if value.size != seg.size:
                raise InvalidArgumentError(
                    f"SB3Wrapper: reverse_action: {where} has {value.size} entries, "
                    f"expected {seg.size}"
                )
            part = seg.space
            if isinstance(part, spaces.Box):
                low = part.low.astype(np.float64).ravel()
                span = part.high.astype(np.float64).ravel() - low
                flat.append(np.where(span > 0, (value - low) / np.where(span > 0, span, 1), 0))
                continue
            n, first = _choices(part)
            k = value - first
            if ((k < 0) | (k >= n) | (k != np.floor(k))).any():
                raise InvalidArgumentError(
                    f"SB3Wrapper: reverse_action: {where} has a value outside its {part}: "
                    f"{action[seg.key]}"
                )
            flat.append((k + 0.5) / n)
        u = np.clip(np.concatenate(flat), 0.0, 1.0)
        return (2.0 * u - 1.0 if self.symmetric else u).astype(np.float32)

    def _where(self, i: int) -> str:
        for seg in self.segments:
            if seg.start <= i < seg.stop:
                if seg.key == SINGLE:
                    return f"entry {i - seg.start} of the action"
                return f"part {seg.key!r} entry {i - seg.start}"
        return "outside every part"


def _decode(part: spaces.Space[Any], u: NDArray[np.float64]) -> Any:
    """One part's value for its slice u of the flat vector (already in [0, 1])."""
    if isinstance(part, spaces.Box):
        low = part.low.astype(np.float64).ravel()
        high = part.high.astype(np.float64).ravel()
        value = np.clip(low + u * (high - low), low, high)
        return value.reshape(part.shape).astype(part.dtype)
    n, first = _choices(part)
    picks = first + np.minimum((u * n).astype(np.int64), n - 1)
    if isinstance(part, spaces.Discrete):
        return np.int64(picks[0])
    assert part.dtype is not None and part.shape is not None
    return picks.reshape(part.shape).astype(part.dtype)
