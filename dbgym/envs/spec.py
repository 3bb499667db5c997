"""The two specs that describe an environment, both plain data (dbgym.spec.Spec).

- `GymSpec`: *what* to tune on: the historical workloads, the historical database state,
  and the optional per-episode workload sampling. It is what `gym.make(...,
  gym_spec=...)` receives.
- `EnvSpec`: *how* the environment behaves: the `gym.make` keyword arguments (backend,
  what to tune, evaluation, reward, observations, knob ranges, index candidates, hint
  sets, timeouts). `DbGymEnv(gym_spec, **kwargs)` builds one from its keywords.

Both have the stable dict/JSON form of every spec (`to_json()` / `from_json()`,
`key()`), so a run can be recorded and re-created exactly, and both pickle cheaply: a
`GymSpec` built from loaded `Workload` objects carries their traces in the compact
binary form (`_core.Trace.to_bytes`), so a vector env's child process does not parse a
multi-GB log again; one decoded from JSON reads its sources when the env is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dbgym.errors import SpecError
from dbgym.spec import Spec
from dbgym.state.spec import StateSpec
from dbgym.types import SettingValue
from dbgym.workload.spec import WorkloadSpec

if TYPE_CHECKING:
    from dbgym.workload.workload import Workload

Dimension = Literal["knobs", "indexes", "hints"]
Component = Literal["plans", "metrics", "knobs", "indexes", "hints"]
Evaluation = Literal["execute", "estimate"]

#: Every tuning dimension, in the order of the holistic Dict action.
DIMENSIONS: tuple[Dimension, ...] = ("knobs", "indexes", "hints")
#: Every observation component, in the order of the Dict observation.
COMPONENTS: tuple[Component, ...] = ("plans", "metrics", "knobs", "indexes", "hints")
#: Built-in rewards (anything else must be a "module:attr" callable).
REWARDS = ("relative", "delta", "throughput")


@dataclass(frozen=True)
class KnobRange(Spec):
    """One tuned knob: its pg_settings name and, for numeric knobs, the range the action
    spans, in the knob's base unit as pg_settings' `setting` column prints it (e.g. 8kB
    pages for shared_buffers, kB for work_mem, ms for timeouts). None: the default
    range (the curated one for default knobs, else pg_settings' min_val/max_val, capped
    by the server's memory and CPUs)."""

    kind: ClassVar[str] = ""

    name: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name:
            raise SpecError("name: a knob name is empty", key="name")
        if self.low is not None and self.high is not None and self.high < self.low:
            raise SpecError(
                f"knob {self.name}: high ({self.high:g}) is below low ({self.low:g})",
                key="high",
            )


@dataclass(frozen=True)
class EnvSpec(Spec):
    """How an environment behaves (the `gym.make` keyword arguments).

    backend, image, cpus, memory: the server (see `InstanceSpec`; the local backend
        refuses cpus/memory). tune: the tuning dimensions (the action). evaluation:
        "execute" (replay the workload) or "estimate" (EXPLAIN with HypoPG what-if
        indexes; no execution). reward: "relative" (improvement over the episode's
        baseline, as a fraction), "delta" (over the previous step), "throughput"
        (statements per second over the baseline's, for OLTP), or "module:attr" naming a
        callable `(RewardContext) -> float`. observe: the observation components.
    knobs: the tuned knobs (None: the curated default set, dbgym.envs.knob_space).
    index_max_width, index_min_rows, index_max_candidates, index_budget: index candidates
        (columns per index, tables with fewer estimated rows are left out, how many
        candidates at most, the storage budget in bytes or as "2GB"; None: the size of
        the database's tables).
    hint_sets: Bao-style planner-setting combinations (None: the default arms,
        dbgym.envs.hint_space); the first must be {} (no hint).
    max_templates, max_plan_nodes: the plan observation's fixed shape (template slots x
        nodes); templates beyond the slots are measured but neither hinted nor observed.
    baseline_factor, min_statement_timeout: a statement's timeout is
        max(min_statement_timeout, baseline_factor x its
        template's baseline latency), in seconds; timed-out statements count at it.
    penalty: the reward of a step whose configuration failed (did not start, crashed).
    speed, concurrency: the replay's pacing (None: as fast as possible) and clients.
    step_timeout: seconds for one step's whole measure (None: no limit).
    index_timeout: seconds one index build (or drop) may take, lock waits included; a
        build that times out is a failed configuration (the penalty).
    """

    kind: ClassVar[str] = "env"

    backend: str = "local"
    image: str | None = None
    cpus: float | None = None
    memory: int | str | None = None
    tune: tuple[Dimension, ...] = DIMENSIONS
    evaluation: Evaluation = "execute"
    reward: str = "relative"
    observe: tuple[Component, ...] = COMPONENTS
    knobs: tuple[KnobRange, ...] | None = None
    index_max_width: int = 2
    index_min_rows: int = 1000
    index_max_candidates: int = 64
    index_budget: int | str | None = None
    hint_sets: tuple[Mapping[str, SettingValue], ...] | None = None
    max_templates: int = 32
    max_plan_nodes: int = 64
    baseline_factor: float = 10.0
    min_statement_timeout: float = 1.0
    penalty: float = -1.0
    speed: float | None = None
    concurrency: int | None = None
    step_timeout: float | None = None
    index_timeout: float | None = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tune:
            raise SpecError("tune: give at least one of knobs, indexes, hints", key="tune")
        if len(set(self.tune)) != len(self.tune):
            raise SpecError(f"tune: repeated dimension in {list(self.tune)}", key="tune")
        if len(set(self.observe)) != len(self.observe):
            raise SpecError(f"observe: repeated component in {list(self.observe)}", key="observe")
        if self.reward not in REWARDS and ":" not in self.reward:
            raise SpecError(
                f"reward: {self.reward!r} is neither one of {', '.join(REWARDS)} nor a "
                "'module:attr' callable",
                key="reward",
            )
        if self.knobs is not None:
            names = [k.name for k in self.knobs]
            if not names:
                raise SpecError(
                    "knobs: an empty knob list (leave it None for the default)", key="knobs"
                )
            if len(set(names)) != len(names):
                raise SpecError(f"knobs: a knob is listed twice in {names}", key="knobs")
        for key in ("index_max_width", "index_max_candidates", "max_templates", "max_plan_nodes"):
            if getattr(self, key) < 1:
                raise SpecError(f"{key}: must be at least 1, got {getattr(self, key)}", key=key)
        if self.index_min_rows < 0:
            raise SpecError(
                f"index_min_rows: must be >= 0, got {self.index_min_rows}", key="index_min_rows"
            )
        if isinstance(self.index_budget, int) and self.index_budget <= 0:
            raise SpecError(
                f"index_budget: must be positive, got {self.index_budget}", key="index_budget"
            )
        if self.hint_sets is not None and (not self.hint_sets or dict(self.hint_sets[0])):
            raise SpecError(
                "hint_sets: the first hint set must be {} (the planner's own choice)",
                key="hint_sets",
            )
        for key in ("baseline_factor", "min_statement_timeout"):
            if not getattr(self, key) > 0:
                raise SpecError(f"{key}: must be positive, got {getattr(self, key)}", key=key)
        if not math.isfinite(self.penalty):
            raise SpecError("penalty: must be finite", key="penalty")
        if self.speed is not None and not self.speed > 0:
            raise SpecError(f"speed: must be positive or None, got {self.speed}", key="speed")
        if self.concurrency is not None and self.concurrency < 1:
            raise SpecError(f"concurrency: must be >= 1, got {self.concurrency}", key="concurrency")
        if self.index_timeout is not None and not self.index_timeout > 0:
            raise SpecError(
                f"index_timeout: must be positive, got {self.index_timeout}", key="index_timeout"
            )
        if self.step_timeout is not None and not self.step_timeout > 0:
            raise SpecError(
                f"step_timeout: must be positive, got {self.step_timeout}", key="step_timeout"
            )


@dataclass(frozen=True)
class GymSpec(Spec):
    """What to tune on (see the module docstring).

    historical_workloads: one or more workloads (`Workload` objects or `WorkloadSpec`s);
        each episode replays one of them, picked with the episode's seed.
    historical_state: the database the workloads run on (`DatabaseState` or `StateSpec`).
    episode_sample: when set, each episode replays this many statements sampled (with
        the episode's seed) from its workload, instead of all of it.
    """

    kind: ClassVar[str] = "gym"

    historical_workloads: tuple[WorkloadSpec, ...]
    historical_state: StateSpec
    episode_sample: int | None = None

    def __init__(
        self,
        historical_workloads: Any,
        historical_state: Any,
        episode_sample: int | None = None,
    ) -> None:
        from dbgym.state.database_state import DatabaseState
        from dbgym.workload.workload import Workload

        if isinstance(historical_workloads, Workload | WorkloadSpec | Mapping):
            historical_workloads = [historical_workloads]
        if not isinstance(historical_workloads, list | tuple):
            raise SpecError(
                "historical_workloads: give a list of Workload or WorkloadSpec values, got "
                f"{type(historical_workloads).__name__}",
                key="historical_workloads",
            )
        specs: list[Any] = []
        loaded: dict[str, Any] = {}
        for i, w in enumerate(historical_workloads):
            if isinstance(w, Workload):
                if w.spec is None:
                    raise SpecError(
                        f"historical_workloads[{i}]: a workload built by hand (no spec) "
                        "cannot be recorded; use Workload.from_log/from_sql/benchmark",
                        key=f"historical_workloads[{i}]",
                    )
                specs.append(w.spec)
                loaded[w.spec.key()] = w.trace
            else:
                specs.append(w)
        if isinstance(historical_state, DatabaseState):
            historical_state = historical_state.spec
        object.__setattr__(self, "historical_workloads", specs)
        object.__setattr__(self, "historical_state", historical_state)
        object.__setattr__(self, "episode_sample", episode_sample)
        self.__post_init__()
        if not self.historical_workloads:
            raise SpecError(
                "historical_workloads: give at least one workload", key="historical_workloads"
            )
        if self.episode_sample is not None and self.episode_sample < 1:
            raise SpecError(
                f"episode_sample: must be at least 1, got {self.episode_sample}",
                key="episode_sample",
            )
        #: loaded traces given by the caller, by spec key (not part of the JSON form)
        self._loaded: dict[str, Any]
        object.__setattr__(self, "_loaded", loaded)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_rebuild, (self.to_json(), dict(self._loaded)))

    def workloads(self, *, progress: bool | None = None) -> list[Workload]:
        """The historical workloads, loaded (the traces given to the constructor, or their
        sources read again)."""
        from dbgym.workload.workload import Workload

        out = []
        for spec in self.historical_workloads:
            trace = self._loaded.get(spec.key())
            out.append(
                Workload(trace, spec=spec)
                if trace is not None
                else Workload.from_spec(spec, progress=progress)
            )
        return out


def _rebuild(text: str, loaded: dict[str, Any]) -> GymSpec:
    spec = GymSpec.from_json(text)
    object.__setattr__(spec, "_loaded", loaded)
    return spec
