"""Benchmark: one registry entry per built-in benchmark, the one place its parameters live.

A benchmark's parameters are a table of `Param`s: each has a default, a check, and a role:
"state" (shapes the database: TPC-H keys/indexes), "workload" (shapes the statements:
TPC-H streams) or "both" (TPC-H scale and seed). From one set of parameters a benchmark
yields a matching database state and workload, each parameter given once:

```python
state, workload = dbgym.benchmarks.get("tpch").specs(scale=0.1, seed=15721, streams=2)
state.params   -> {"indexes": True, "keys": True, "scale": 0.1, "seed": 15721}
workload.params -> {"queries": None, "scale": 0.1, "seed": 15721, "shuffle": True, "streams": 2}
DatabaseState.from_spec(state).launch(); Workload.from_spec(workload)
```

Defaults are filled in, so equal databases have equal specs (and equal cache keys) however
the parameters were spelled. `BENCHMARKS` maps names to entries ("module:BENCHMARK"),
imported on first use.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import dbgym._core as _core
from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.progress import ProgressFn
from dbgym.registry import Registry, did_you_mean
from dbgym.spec import FrozenDict, JsonValue, thaw_json
from dbgym.state.report import LoadReport
from dbgym.state.spec import StateSpec
from dbgym.types import Target
from dbgym.workload.spec import WorkloadSpec

Role = Literal["state", "workload", "both"]

#: A parameter check: (value, key) -> the normalized value, or SpecError naming `key`.
Check = Callable[[object, str], JsonValue]


# --- parameter checks ------------------------------------------------------------------


def positive_int(value: object, key: str) -> JsonValue:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{key}: must be a positive integer, got {value!r}", key=key)
    return int(value)


def check_seed(value: object, key: str) -> JsonValue:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise SpecError(f"{key}: a seed is an integer in [0, 2**64), got {value!r}", key=key)
    return int(value)


def boolean(value: object, key: str) -> JsonValue:
    if not isinstance(value, bool):
        raise SpecError(f"{key}: must be true or false, got {value!r}", key=key)
    return value


def positive_number(value: object, key: str) -> JsonValue:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise SpecError(f"{key}: must be a positive number, got {value!r}", key=key)
    return float(value)


def one_of(choices: tuple[str, ...], what: str) -> Check:
    def check(value: object, key: str) -> JsonValue:
        if value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            raise SpecError(
                f"{key}: unknown {what} {value!r}{hint} (choose one of: {', '.join(choices)})",
                key=key,
            )
        return str(value)

    return check


def optional(check: Check) -> Check:
    def maybe(value: object, key: str) -> JsonValue:
        return None if value is None else check(value, key)

    return maybe


def int_list(low: int, high: int) -> Check:
    def check(value: object, key: str) -> JsonValue:
        if not isinstance(value, list | tuple) or not value:
            raise SpecError(f"{key}: must be a non-empty list of integers, got {value!r}", key=key)
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise SpecError(
                    f"{key}[{i}]: must be an integer in {low}..{high}, got {v!r}", key=key
                )
        return tuple(int(v) for v in value)

    return check


@dataclass(frozen=True)
class Param:
    """One benchmark parameter: its default, its check and its role."""

    default: JsonValue
    role: Role
    check: Check
    doc: str = ""


# --- the entry -------------------------------------------------------------------------


class Benchmark(abc.ABC):
    """A built-in benchmark: its parameters, how to load its database, how to make its
    workload's trace. Subclasses fill `name` and `params` and the two methods."""

    name: ClassVar[str]
    params: ClassVar[Mapping[str, Param]]

    def __repr__(self) -> str:
        return f"<benchmark {self.name!r}: {', '.join(self.params)}>"

    def names(self, role: Literal["state", "workload"]) -> tuple[str, ...]:
        """The parameters a state (or a workload) of this benchmark takes."""
        return tuple(k for k, p in self.params.items() if p.role in (role, "both"))

    def check_params(
        self, role: Literal["state", "workload"], given: Mapping[str, object], prefix: str = ""
    ) -> FrozenDict[JsonValue]:
        """`given` checked and completed with defaults: every parameter of `role`, normalized.
        SpecError names the key (`prefix` + name) of an unknown or invalid parameter."""
        names = self.names(role)
        for k in given:
            if k in names:
                continue
            if k in self.params:
                other = self.params[k].role
                raise SpecError(
                    f"{prefix}{k}: a {other} parameter of {self.name}, not a {role} one "
                    f"({role} parameters: {', '.join(names)})",
                    key=prefix + k,
                )
            raise SpecError(
                f"unknown parameter {k!r} of benchmark {self.name!r}"
                f"{did_you_mean(k, names)} ({role} parameters: {', '.join(names)})",
                key=prefix + k,
            )
        out: dict[str, JsonValue] = {}
        for k in names:
            value = given.get(k, self.params[k].default)
            out[k] = self.params[k].check(thaw_json(value), prefix + k)
        return FrozenDict(out)

    # -- specs ------------------------------------------------------------------------
    def state(self, **params: Any) -> BenchmarkState:
        """The database state of these parameters (state parameters only)."""
        return BenchmarkState(self.name, self.check_params("state", params))

    def workload(self, **params: Any) -> BenchmarkWorkload:
        """The workload of these parameters (workload parameters only)."""
        return BenchmarkWorkload(self.name, self.check_params("workload", params))

    def specs(self, **params: Any) -> tuple[BenchmarkState, BenchmarkWorkload]:
        """A matching state and workload from one set of parameters: each parameter goes
        to the state, the workload or both, as its role says."""
        for k in params:
            if k not in self.params:
                raise SpecError(
                    f"unknown parameter {k!r} of benchmark {self.name!r}"
                    f"{did_you_mean(k, tuple(self.params))} "
                    f"(parameters: {', '.join(self.params)})",
                    key=k,
                )
        state = {k: v for k, v in params.items() if k in self.names("state")}
        workload = {k: v for k, v in params.items() if k in self.names("workload")}
        return self.state(**state), self.workload(**workload)

    def trace(self, **params: Any) -> _core.Trace:
        """The workload trace of these parameters."""
        return self.make_trace(self.check_params("workload", params))

    # -- what a benchmark implements --------------------------------------------------
    @abc.abstractmethod
    def load(
        self,
        target: Target,
        params: Mapping[str, JsonValue],
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
    ) -> LoadReport:
        """Builds the database of (checked) state `params` in the empty database of
        `target` (a DSN, or anything with a `.dsn`), calling `on_progress(done, totals)`."""

    @abc.abstractmethod
    def make_trace(self, params: Mapping[str, JsonValue]) -> _core.Trace:
        """The trace of (checked) workload `params`."""


def _is_benchmark(obj: object) -> bool:
    return isinstance(obj, Benchmark)


#: benchmark name -> "module:BENCHMARK", imported on first use.
BENCHMARKS: Registry[Benchmark] = Registry(
    "benchmark",
    {
        "tpch": "dbgym.benchmarks.tpch:BENCHMARK",
        "pgbench": "dbgym.benchmarks.pgbench:BENCHMARK",
    },
    accepts=_is_benchmark,
)


def get(name: str) -> Benchmark:
    """The benchmark registered as `name` (InvalidArgumentError naming the closest name)."""
    return BENCHMARKS.get(name)


def _entry(name: str) -> Benchmark:
    try:
        return BENCHMARKS.get(BENCHMARKS.check(name))
    except InvalidArgumentError as e:
        raise SpecError(str(e), key="benchmark") from None


# --- the specs -------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkState(StateSpec):
    """The database of built-in benchmark `benchmark` with its state parameters (defaults
    filled in; see `dbgym.benchmarks.get(name).params`)."""

    kind: ClassVar[str] = "benchmark"

    benchmark: str
    params: Mapping[str, Any] = FrozenDict()

    def __post_init__(self) -> None:
        super().__post_init__()
        checked = _entry(self.benchmark).check_params("state", self.params, prefix="params.")
        object.__setattr__(self, "params", checked)

    @property
    def entry(self) -> Benchmark:
        return get(self.benchmark)

    @property
    def name(self) -> str:
        return self.benchmark

    @property
    def title(self) -> str:
        return self.benchmark

    def cache_name(self) -> str:
        return self.benchmark

    def cache_params(self) -> dict[str, Any]:
        return dict(thaw_json(self.params))

    def load_into(
        self,
        target: Target,
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
        source_password: str | None = None,
    ) -> LoadReport:
        return self.entry.load(
            target, self.params, bin_dir=bin_dir, workers=workers, on_progress=on_progress
        )


@dataclass(frozen=True)
class BenchmarkWorkload(WorkloadSpec):
    """The workload of built-in benchmark `benchmark` with its workload parameters
    (defaults filled in)."""

    kind: ClassVar[str] = "benchmark"

    benchmark: str
    params: Mapping[str, Any] = FrozenDict()

    def __post_init__(self) -> None:
        super().__post_init__()
        checked = _entry(self.benchmark).check_params("workload", self.params, prefix="params.")
        object.__setattr__(self, "params", checked)

    @property
    def entry(self) -> Benchmark:
        return get(self.benchmark)

    @property
    def source(self) -> str:
        return f"benchmark:{self.benchmark}"

    def read(
        self, *, threads: int | None = None, progress: bool | None = None
    ) -> tuple[_core.Trace, _core.ParseStats | None]:
        return self.entry.make_trace(self.params), None
