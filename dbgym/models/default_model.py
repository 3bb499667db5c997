"""The "default" model: always the action meaning "the default configuration" (no change).

It returns the latest `info["default_action"]` seen by `initialize` or `update` (dbgym
environments put it in the reset info), so a run with it measures the baseline again: the
noise floor any other model has to beat.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gymnasium import spaces

from dbgym.errors import InvalidArgumentError
from dbgym.models.protocol import write_model_file


class DefaultModel:
    """Picks `info["default_action"]` (see the module docstring). Takes no keywords."""

    name = "default"

    def __init__(self) -> None:
        self._default: Any = None
        self._seen = False

    def __repr__(self) -> str:
        return "DefaultModel()"

    def _take(self, info: Mapping[str, Any]) -> None:
        if "default_action" in info:
            self._default = info["default_action"]
            self._seen = True

    def initialize(self, observations: Any, info: Mapping[str, Any]) -> None:
        self._take(info)

    def pick_action(self, action_space: spaces.Space[Any], observations: Any) -> Any:
        if not self._seen:
            raise InvalidArgumentError(
                "model 'default': no info['default_action'] seen yet; call initialize() with "
                "the reset info of a dbgym environment first"
            )
        return copy.deepcopy(self._default)

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
        write_model_file(path, self.name, {})
