"""The "random" model: uniform samples of the action space, honouring the action mask.

It samples from a private, seeded copy of the action space it is given (the environment's
own space and its RNG are left alone), so `load_model("random", seed=1)` picks the same
sequence of actions on the same spaces and masks every time. The latest
`info["action_mask"]` (gymnasium's `sample(mask=...)` form: for a Dict space a dict of
per-part masks, None for Box parts; a MultiBinary mask is int8 with 0 "must be 0",
1 "must be 1", 2 "free"; a MultiDiscrete mask the allowed choices per entry, as a tuple
of arrays or one (entries, choices) array, see `dbgym.models.masks`) is applied when
present.

`save` records the seed, not the RNG's position: a loaded model starts the seeded
sequence again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium import spaces

from dbgym.errors import InvalidArgumentError
from dbgym.models.masks import sample_mask
from dbgym.models.protocol import write_model_file


class RandomModel:
    """Samples `action_space` (see the module docstring). seed: an int for a repeatable
    sequence, None for fresh entropy."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidArgumentError(f"model 'random': seed must be an int or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise InvalidArgumentError(f"model 'random': seed must be >= 0, got {seed}")
        self.seed = seed
        self._mask: Any = None
        self._space: spaces.Space[Any] | None = None
        self._sampler: spaces.Space[Any] | None = None

    def __repr__(self) -> str:
        return f"RandomModel(seed={self.seed!r})"

    def _take(self, info: Mapping[str, Any]) -> None:
        self._mask = info.get("action_mask")

    def initialize(self, observations: Any, info: Mapping[str, Any]) -> None:
        self._take(info)

    def pick_action(self, action_space: spaces.Space[Any], observations: Any) -> Any:
        if not isinstance(action_space, spaces.Space):
            raise InvalidArgumentError(
                f"model 'random': action_space must be a gymnasium Space, "
                f"got {type(action_space).__name__}"
            )
        if action_space is not self._space:
            self._space = action_space
            self._sampler = copy.deepcopy(action_space)
            self._sampler.seed(self.seed)
        assert self._sampler is not None
        if self._mask is None:
            return self._sampler.sample()
        try:
            return self._sampler.sample(mask=sample_mask(action_space, self._mask))
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"model 'random': {exc}") from None
        except (
            AssertionError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            gymnasium.error.Error,
        ) as exc:
            raise InvalidArgumentError(
                f"model 'random': info['action_mask'] does not fit the action space "
                f"{action_space} ({type(exc).__name__}: {exc})"
            ) from None

    def update(
        self,
        observations: Any,
        action: Any,
        reward: float,
        next_observations: Any,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None:
        self._take(info)

    def save(self, path: str | Path) -> None:
        write_model_file(path, self.name, {"seed": self.seed})
