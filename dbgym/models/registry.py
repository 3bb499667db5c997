"""`load_model(name, **kwargs)`: the built-in models and the "dbgym.models" entry points.

Built-ins: "random" (`RandomModel(seed=None)`: samples the action space under the action
mask) and "default" (`DefaultModel()`: the default configuration, no change). Any installed
distribution can add models with an entry point in the "dbgym.models" group; its object is
a class (or factory) called with the keywords:

    [project.entry-points."dbgym.models"]
    my-tuner = "my_tuner:MyTuner"

Built-in names win over an entry point with the same name. `load(path)` re-creates the
model a `save(path)` wrote (the name and keywords in a small JSON file).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from dbgym.errors import InvalidArgumentError
from dbgym.models.protocol import Model, read_model_file
from dbgym.registry import Registry, did_you_mean

#: The entry-point group third-party models register in.
ENTRY_POINT_GROUP = "dbgym.models"

#: The built-in models, imported on first use.
BUILTIN_MODELS: Registry[Callable[..., Any]] = Registry(
    "model",
    {
        "default": "dbgym.models.default_model:DefaultModel",
        "random": "dbgym.models.random_model:RandomModel",
    },
    accepts=callable,
)


def _entry_points() -> dict[str, EntryPoint]:
    """The installed "dbgym.models" entry points by name (read afresh on every call, so a
    distribution installed while the process runs is found)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_models() -> list[str]:
    """Every name `load_model` accepts: the built-ins and the installed entry points, sorted."""
    return sorted(set(BUILTIN_MODELS.names()) | set(_entry_points()))


def _factory(name: str) -> tuple[Callable[..., Any], str]:
    """The class/factory of `name` and where it comes from (for messages)."""
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS.get(name), BUILTIN_MODELS.target(name)
    ep = _entry_points().get(name)
    if ep is None:
        names = available_models()
        raise InvalidArgumentError(
            f"unknown model {name!r}{did_you_mean(name, names)} "
            f"(choose one of: {', '.join(names)}; third-party models register an entry point "
            f"in the {ENTRY_POINT_GROUP!r} group)"
        )
    where = f"entry point {ep.name} = {ep.value!r}"
    if ep.dist is not None:
        where += f" of {ep.dist.name} {ep.dist.version}"
    try:
        obj = ep.load()
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"model {name!r}: {where} cannot be loaded: {exc}") from exc
    if not callable(obj):
        raise TypeError(f"model {name!r}: {where} is not a class or factory: {obj!r}")
    return obj, where


def load_model(name: str, **kwargs: Any) -> Model:
    """The model registered as `name`, made with `kwargs` (see the module docstring).

    Unknown names and keywords the model does not take raise InvalidArgumentError; an
    entry point whose object does not make a `Model` raises TypeError (a bug in its
    package).
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"model name must be a non-empty string, got {name!r}")
    factory, where = _factory(name)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # not introspectable (a builtin): let the call check
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            takes = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            raise InvalidArgumentError(
                f"model {name!r}: {exc} (keywords it takes: {', '.join(takes) or 'none'})"
            ) from None
    model = factory(**kwargs)
    if not isinstance(model, Model):
        missing = [
            m
            for m in ("initialize", "pick_action", "update", "save")
            if not callable(getattr(model, m, None))
        ]
        raise TypeError(
            f"model {name!r}: {where} made a {type(model).__name__}, not a dbgym Model "
            f"(missing: {', '.join(missing)})"
        )
    return model


def load(path: str | Path) -> Model:
    """The model a `save(path)` wrote: `load_model(name, **kwargs)` from the file."""
    name, kwargs = read_model_file(path)
    return load_model(name, **kwargs)
