"""The `Model` protocol: what `dbgym run` (and any loop over a dbgym environment) calls.

A model is anything with these four methods (a structural, runtime-checkable Protocol: no
base class to inherit). The loop is:

    obs, info = env.reset(seed=...)
    model.initialize(obs, info)
    action = model.pick_action(env.action_space, obs)
    next_obs, reward, terminated, truncated, info = env.step(action)
    model.update(obs, action, reward, next_obs, terminated, truncated, info)

`save(path)` writes a small JSON file (`write_model_file`: the registry name and the
keyword arguments) that `dbgym.models.load(path)` turns back into a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gymnasium import spaces

from dbgym.errors import InvalidArgumentError

#: The "format" field of a saved model file.
MODEL_FILE_FORMAT = "dbgym.model"
#: The "version" field of a saved model file.
MODEL_FILE_VERSION = 1


@runtime_checkable
class Model(Protocol):
    """A tuning model driven by `initialize` / `pick_action` / `update`.

    What a model gets (all of it plain gymnasium / numpy / JSON-like data, so a learned
    model can train on recorded runs as well as on a live environment):

    - action_space (`pick_action`): the environment's gymnasium space: for
      "dbgym/DbGym-v0" a Dict of "hints" MultiDiscrete([H] * T), "indexes" MultiBinary(n)
      and "knobs" Box([0, 1]^k, float32) (the tuned dimensions only); the one-dimension
      ids have that part alone.
    - observations: a flat dict of float32 arrays whose keys name the features
      ("plan_features" (T, N, F), "plan_node_type", "plan_parent", "plan_mask",
      "template_mask", "template_weight", "metrics", "knobs", "indexes", "hints"; see
      dbgym.envs.observation).
    - info (`initialize`, `update`): the reset/step info. Reset: "default_action" (the
      action meaning "no change" from the default configuration), "action_mask"
      (gymnasium's `sample(mask=...)` form, see dbgym.models.masks), "baseline", "config"
      (the knobs, indexes and hint sets in force, by name), "plans" (each template slot's
      EXPLAIN JSON), "workload". Step: "action_mask", "config", "value", "per_template",
      "error" (None, or why the configuration failed: the reward is then the penalty),
      "notes" (how the index action was repaired), "plans".
    """

    def initialize(self, observations: Any, info: Mapping[str, Any]) -> None:
        """Called after every `reset()` with its observation and info."""
        ...

    def pick_action(self, action_space: spaces.Space[Any], observations: Any) -> Any:
        """The next action, an element of `action_space`."""
        ...

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
        """Called after every `step()` with the transition it made."""
        ...

    def save(self, path: str | Path) -> None:
        """Writes what `dbgym.models.load(path)` needs to re-create the model."""
        ...


def write_model_file(path: str | Path, name: str, kwargs: Mapping[str, Any]) -> None:
    """Writes the model file `load(path)` reads: {"format", "version", "name", "kwargs"}.

    kwargs must be JSON values (InvalidArgumentError naming the keyword otherwise).
    """
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"model {name!r}: keyword {key!r} is not a JSON value and cannot be saved "
                f"({type(value).__name__}: {exc})"
            ) from None
    data = {
        "format": MODEL_FILE_FORMAT,
        "version": MODEL_FILE_VERSION,
        "name": name,
        "kwargs": dict(kwargs),
    }
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_model_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(name, kwargs) of a file `write_model_file` wrote (InvalidArgumentError naming the
    file and what is wrong otherwise)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(f"{p}: no such model file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"{p}: not a dbgym model file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FILE_FORMAT:
        raise InvalidArgumentError(f"{p}: not a dbgym model file (no format {MODEL_FILE_FORMAT!r})")
    if data.get("version") != MODEL_FILE_VERSION:
        raise InvalidArgumentError(
            f"{p}: model file version {data.get('version')!r} is not supported "
            f"(this dbgym reads version {MODEL_FILE_VERSION})"
        )
    name, kwargs = data.get("name"), data.get("kwargs", {})
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{p}: 'name' must be a non-empty string, got {name!r}")
    if not isinstance(kwargs, dict):
        raise InvalidArgumentError(f"{p}: 'kwargs' must be an object, got {kwargs!r}")
    return name, kwargs
