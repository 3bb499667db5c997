"""SB3Wrapper: makes a dbgym environment (or any Gymnasium environment with a Dict action
of Box / MultiBinary / MultiDiscrete / Discrete parts) ready for stable-baselines3.

stable-baselines3 (2.x) requires:

- an action space that is one Box, Discrete, MultiDiscrete or MultiBinary: no Dict or
  Tuple actions. The wrapper flattens a Dict action into ONE `Box(0, 1, (d,), float32)`
  (d: the total number of entries of the parts, in the Dict's key order);
- an observation that is a Box, a discrete space, or a Dict of those (with
  `"MultiInputPolicy"`): no nested Dict or Tuple observations. dbgym observations are a
  flat Dict of float32 Boxes, so they pass through unchanged; the wrapper refuses a nested
  one when it is made;
- a float reward and the Gymnasium 5-tuple `step` API (dbgym environments have both).

Decoding one flat vector x (each entry clipped to [0, 1]) into the Dict action:

- a Box part takes its entries as they are when the Box is [0, 1] (the knob action),
  otherwise `low + x * (high - low)` (the Box must be bounded);
- a MultiBinary bit is `x >= 0.5`;
- a MultiDiscrete (or Discrete) entry with n choices is `start + min(int(x * n), n - 1)`:
  [0, 1] cut into n equal buckets.

`reverse_action` maps an action of the Dict space to the flat vector (a Box part's
value, the middle of a discrete entry's bucket), so `action(reverse_action(a)) == a`.
Spaces that are not a Dict (the one-dimension ids: Box, MultiBinary, MultiDiscrete) are
already what SB3 takes: the wrapper leaves them, and their actions, unchanged.
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


@dataclass(frozen=True)
class Segment:
    """Where one part of the Dict action lives in the flat vector: entries
    [start, start + size) decode into `space`."""

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


def _check_observation_space(space: spaces.Space[Any]) -> None:
    if isinstance(space, spaces.Dict):
        for key, part in space.spaces.items():
            if isinstance(part, spaces.Dict | spaces.Tuple):
                raise InvalidArgumentError(
                    f"SB3Wrapper: observation part {key!r} is a {type(part).__name__}; "
                    "stable-baselines3 takes a flat Dict of Box/discrete spaces only"
                )
    elif isinstance(space, spaces.Tuple):
        raise InvalidArgumentError("SB3Wrapper: stable-baselines3 does not take Tuple observations")


class SB3Wrapper(gym.ActionWrapper[Any, Any, Any]):
    """A Dict action as one Box in [0, 1]^d (see the module docstring); other action spaces
    unchanged. `segments` says where each part lives in the flat vector."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        _check_observation_space(env.observation_space)
        inner = env.action_space
        self.segments: tuple[Segment, ...] = ()
        self._flat = isinstance(inner, spaces.Dict)
        if not isinstance(inner, spaces.Dict):
            return
        segments: list[Segment] = []
        start = 0
        for key, part in inner.spaces.items():
            if isinstance(part, spaces.Box):
                if not part.is_bounded("both"):
                    raise InvalidArgumentError(
                        f"SB3Wrapper: action part {key!r} is an unbounded Box; only bounded "
                        "Box parts can be scaled into [0, 1]"
                    )
                size = int(np.prod(part.shape))
            elif isinstance(part, spaces.MultiBinary | spaces.MultiDiscrete | spaces.Discrete):
                size = len(_choices(part)[0])
            else:
                raise InvalidArgumentError(
                    f"SB3Wrapper: action part {key!r} is a {type(part).__name__}; supported "
                    "parts are Box, MultiBinary, MultiDiscrete and Discrete"
                )
            segments.append(Segment(str(key), start, size, part))
            start += size
        self.segments = tuple(segments)
        self.action_space = spaces.Box(0.0, 1.0, shape=(start,), dtype=np.float32)

    # -- flat vector -> Dict action ------------------------------------------------------
    def action(self, action: Any) -> Any:
        """The inner environment's action for the flat vector `action` (unchanged when the
        inner action space is not a Dict)."""
        if not self._flat:
            return action
        x = np.asarray(action, dtype=np.float64)
        d = self.action_space.shape[0] if self.action_space.shape else 0
        if x.shape != (d,):
            raise InvalidArgumentError(
                f"SB3Wrapper: the action must have shape ({d},), got {x.shape}"
            )
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise InvalidArgumentError(
                f"SB3Wrapper: action entry {bad} ({self._where(bad)}) is not finite: {x[bad]}"
            )
        x = np.clip(x, 0.0, 1.0)
        out: dict[str, Any] = {}
        for seg in self.segments:
            part, xs = seg.space, x[seg.start : seg.stop]
            if isinstance(part, spaces.Box):
                low = part.low.astype(np.float64).ravel()
                high = part.high.astype(np.float64).ravel()
                value = np.clip(low + xs * (high - low), low, high)
                out[seg.key] = value.reshape(part.shape).astype(part.dtype)
                continue
            n, first = _choices(part)
            picks = first + np.minimum((xs * n).astype(np.int64), n - 1)
            if isinstance(part, spaces.Discrete):
                out[seg.key] = np.int64(picks[0])
            else:
                assert part.dtype is not None and part.shape is not None
                out[seg.key] = picks.reshape(part.shape).astype(part.dtype)
        return out

    # -- Dict action -> flat vector ------------------------------------------------------
    def reverse_action(self, action: Any) -> Any:
        """The flat vector for an action of the inner Dict space (unchanged when the inner
        action space is not a Dict): a Box part's scaled value, a discrete entry's bucket
        middle."""
        if not self._flat:
            return action
        if not isinstance(action, dict):
            raise InvalidArgumentError(
                f"SB3Wrapper: reverse_action takes a dict with keys "
                f"{[s.key for s in self.segments]}, got {type(action).__name__}"
            )
        missing = [s.key for s in self.segments if s.key not in action]
        if missing:
            raise InvalidArgumentError(f"SB3Wrapper: reverse_action: missing parts {missing}")
        flat: list[NDArray[np.float64]] = []
        for seg in self.segments:
            part = seg.space
            value = np.asarray(action[seg.key], dtype=np.float64).ravel()
            if value.size != seg.size:
                raise InvalidArgumentError(
                    f"SB3Wrapper: reverse_action: part {seg.key!r} has {value.size} entries, "
                    f"expected {seg.size}"
                )
            if isinstance(part, spaces.Box):
                low = part.low.astype(np.float64).ravel()
                span = part.high.astype(np.float64).ravel() - low
                flat.append(np.where(span > 0, (value - low) / np.where(span > 0, span, 1), 0))
                continue
            n, first = _choices(part)
            k = value - first
            if ((k < 0) | (k >= n)).any():
                raise InvalidArgumentError(
                    f"SB3Wrapper: reverse_action: part {seg.key!r} has a value outside "
                    f"its {part}: {action[seg.key]}"
                )
            flat.append((k + 0.5) / n)
        return np.clip(np.concatenate(flat), 0.0, 1.0).astype(np.float32)

    def _where(self, i: int) -> str:
        for seg in self.segments:
            if seg.start <= i < seg.stop:
                return f"part {seg.key!r} entry {i - seg.start}"
        return "outside every part"
