"""Rewards: how a step's measurement becomes a number.

Built-ins (EnvSpec.reward):

- "relative" (default): `(baseline - now) / baseline`, the improvement of the step's
  workload time (or estimated cost) over the episode's baseline, as a fraction: 0.25
  means 25% faster than the default configuration, -1.0 twice as slow.
- "delta": `(previous - now) / previous`, the improvement over the previous step (the
  baseline for the first step).
- "throughput": `(tps - baseline_tps) / baseline_tps`, for OLTP workloads (pgbench):
  successful statements per second over the baseline's.

Or "module:attr" naming a callable `(RewardContext) -> float` (a user callable passed to
the environment is recorded that way, so the run's EnvSpec still re-creates it). A step
whose configuration failed gets EnvSpec.penalty instead, whatever the reward.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from dbgym.errors import InvalidArgumentError


@dataclass(frozen=True)
class RewardContext:
    """What a reward sees: the step's measure, the previous step's, the baseline's.
    `value`s are seconds (execute) or planner cost units (estimate); lower is better.
    `throughput`s are successful statements per second (None in estimate mode)."""

    value: float
    previous: float
    baseline: float
    throughput: float | None
    baseline_throughput: float | None
    evaluation: str


RewardFn = Callable[[RewardContext], float]


def _fraction(better: float, worse: float) -> float:
    return (better - worse) / better if better > 0 else 0.0


def relative(ctx: RewardContext) -> float:
    return _fraction(ctx.baseline, ctx.value)


def delta(ctx: RewardContext) -> float:
    return _fraction(ctx.previous, ctx.value)


def throughput(ctx: RewardContext) -> float:
    if ctx.throughput is None or not ctx.baseline_throughput:
        raise InvalidArgumentError(
            "reward='throughput' needs evaluation='execute' (estimates have no throughput)"
        )
    return (ctx.throughput - ctx.baseline_throughput) / ctx.baseline_throughput


BUILTIN: dict[str, RewardFn] = {"relative": relative, "delta": delta, "throughput": throughput}


def resolve(name: str) -> RewardFn:
    """The reward function EnvSpec.reward names (a built-in or "module:attr")."""
    fn = BUILTIN.get(name)
    if fn is not None:
        return fn
    module, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise InvalidArgumentError(f"reward={name!r}: cannot import it ({e})") from None
    if not callable(obj):
        raise InvalidArgumentError(f"reward={name!r} is not callable")
    resolved: RewardFn = obj
    return resolved


def name_of(fn: RewardFn) -> str:
    """The "module:qualname" a callable is recorded as (InvalidArgumentError for a lambda
    or a local function, which another process could not import)."""
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not module or not qual or "<" in qual:
        raise InvalidArgumentError(
            f"reward {fn!r}: give a module-level function (it is recorded as 'module:name' "
            "so the run can be re-created)"
        )
    return f"{module}:{qual}"


def checked(value: float, name: str) -> float:
    """A reward must be a finite number."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"reward {name!r} returned {value!r}, not a finite number")
    return float(value)
