"""DbGymEnv: the Gymnasium environment on a real PostgreSQL (see docs/environment.md).

One environment owns one `DbSession`, and through it one PostgreSQL server (local
processes, or a Docker container with `backend="docker"`), launched from the database
state cache and snapshotted as the pristine state with the default configuration.

- `DbGymEnv` ("dbgym/DbGym-v0"): the holistic action, a Dict of the tuned dimensions
  (`tune`, all three by default: "knobs" Box, "indexes" MultiBinary, "hints"
  MultiDiscrete).
- `KnobTuningEnv`, `IndexSelectionEnv`, `QueryHintsEnv` ("dbgym/KnobTuning-v0", ...): the
  same machinery tuning one dimension, whose space is the action itself (no Dict).

reset() restores the pristine snapshot, samples the episode's workload with the seed,
measures (or takes from the cache) the baseline, and returns the first observation.
step() applies the action (creating/dropping indexes, reloading or restarting for knobs,
per-template hint sets), measures, observes, and returns the reward. A configuration that
fails (does not start, crashes the server, an index build that fails) is part of the
environment: the step gets `EnvSpec.penalty`, `info["error"]` says what happened, and the
environment recovers to the previous good configuration (or the pristine state) before
the next step. Only caller mistakes (an action outside the space, a bad argument) raise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
import psycopg
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.dbms.indexes import IndexSpec
from dbgym.dbms.spec import InstanceSpec
from dbgym.envs.estimate import WhatIfEstimator
from dbgym.envs.evaluation import (
    StepMeasure,
    measure_replay,
    slot_counts,
    statement_timeouts,
    template_latencies,
)
from dbgym.envs.hint_space import HintSpace
from dbgym.envs.index_space import (
    IndexSpace,
    default_budget,
    estimate_sizes,
    mine_candidates,
    parse_budget,
)
from dbgym.envs.knob_space import KnobSpace, server_limits
from dbgym.envs.observation import ObservationBuilder
from dbgym.envs.reward import RewardContext, RewardFn, checked, name_of, resolve
from dbgym.envs.spec import Dimension, EnvSpec, GymSpec
from dbgym.envs.templates import TemplateSlots
from dbgym.errors import (
    DbgymError,
    InstanceError,
    InvalidArgumentError,
    KnobError,
)
from dbgym.observe.metrics import MetricsObserver
from dbgym.observe.plans import explain_one
from dbgym.plans.catalog import PlanCatalog
from dbgym.session import DbSession, MeasureOutcome
from dbgym.workload.workload import Workload

Obs = dict[str, NDArray[np.float32]]

#: Seconds one EXPLAIN for the plan observation may take (planning, and waiting for a lock
#: someone else holds), and all of a step's EXPLAINs together: slots not explained in time
#: have no plan in that observation (template_mask 0).
EXPLAIN_TIMEOUT = 1.0
EXPLAIN_BUDGET = 5.0
#: Seconds one what-if EXPLAIN of estimate mode may take (its cost is the step's value).
ESTIMATE_TIMEOUT = 10.0


@dataclass
class Config:
    """The configuration in force: decoded knobs (None: the defaults), index bits, hint
    choice per slot."""

    knobs: dict[str, str] | None
    indexes: NDArray[np.int8]
    hints: NDArray[np.int64]

    def copy(self) -> Config:
        return Config(
            None if self.knobs is None else dict(self.knobs),
            self.indexes.copy(),
            self.hints.copy(),
        )


@dataclass
class Baseline:
    """The default configuration's measure of one episode workload."""

    measure: StepMeasure
    timeouts: dict[int, float] = field(default_factory=dict)
    #: the timeout most statements get, set once per connection; only templates with
    #: another timeout pay for a SET LOCAL around each statement
    common_timeout: float | None = None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _common(template_ids: NDArray[np.uint32], timeouts: Mapping[int, float]) -> float | None:
    """The timeout (ms-rounded) the most statements have."""
    weight: dict[int, int] = {}
    uniq, counts = np.unique(template_ids, return_counts=True)
    for tid, n in zip(uniq.tolist(), counts.tolist(), strict=True):
        if tid in timeouts:
            ms = _ms(timeouts[tid])
            weight[ms] = weight.get(ms, 0) + n
    if not weight:
        return None
    return max(weight, key=lambda ms: (weight[ms], ms)) / 1000


class DbGymEnv(gym.Env[Obs, Any]):
    """The holistic environment (see the module docstring and docs/environment.md).

    gym_spec: what to tune on (GymSpec). reward: a built-in name, a "module:attr", or a
    module-level callable `(RewardContext) -> float`. Other keywords: the fields of
    `EnvSpec` (backend, tune, evaluation, observe, knobs, ...). progress: progress bars
    while the state is built (None: on a terminal).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium's)
    #: the tuned dimension of a one-dimension preset (None: the holistic Dict action)
    preset: ClassVar[Dimension | None] = None

    def __init__(
        self,
        gym_spec: GymSpec,
        *,
        render_mode: str | None = None,
        progress: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.session: DbSession | None = None
        self._estimator: WhatIfEstimator | None = None
        self._metrics: MetricsObserver | None = None
        self._closed = False
        if not isinstance(gym_spec, GymSpec):
            raise InvalidArgumentError(
                f"gym_spec must be a dbgym.GymSpec, got {type(gym_spec).__name__}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InvalidArgumentError(f"render_mode={render_mode!r}: only 'ansi' is supported")
        self.render_mode = render_mode
        reward = kwargs.get("reward", "relative")
        self._reward_fn: RewardFn
        if callable(reward):
            kwargs["reward"] = name_of(reward)
            self._reward_fn = reward
        if self.preset is not None:
            given = kwargs.get("tune", (self.preset,))
            if tuple(given) != (self.preset,):
                raise InvalidArgumentError(
                    f"{type(self).__name__} tunes {self.preset} only; use dbgym/DbGym-v0 "
                    f"for tune={tuple(given)}"
                )
            kwargs["tune"] = (self.preset,)
        self.gym_spec = gym_spec
        self.env_spec = EnvSpec(**kwargs)
        if not callable(reward):
            self._reward_fn = resolve(self.env_spec.reward)
        try:
            self._build(progress)
        except BaseException:
            self.close()
            raise

    # -- construction ------------------------------------------------------------------
    def _build(self, progress: bool | None) -> None:
        spec = self.env_spec
        tune, observe = set(spec.tune), set(spec.observe)
        self.workloads: list[Workload] = self.gym_spec.workloads(progress=progress)
        self.slots = TemplateSlots(self.workloads, spec.max_templates)
        if not len(self.slots):
            raise InvalidArgumentError("the historical workloads have no statements")
        instance = InstanceSpec(
            backend=spec.backend, image=spec.image, cpus=spec.cpus, memory=spec.memory
        )
        self.session = DbSession.launch(
            instance, state=self.gym_spec.historical_state, progress=progress
        )
        inst = self.session.instance
        assert inst is not None  # launched: the session owns its server
        conn = self.session.connection()

        self.knob_space: KnobSpace | None = None
        if "knobs" in tune or "knobs" in observe:
            memory, cpus = server_limits(instance)
            self.knob_space = KnobSpace(
                inst.knob_catalog,
                spec.knobs,
                memory_bytes=memory,
                cpus=cpus,
                limited=instance.memory is not None,
            )
        self.index_space: IndexSpace | None = None
        if "indexes" in tune or "indexes" in observe:
            candidates = mine_candidates(
                conn,
                self.slots.statements(),
                max_width=spec.index_max_width,
                min_rows=spec.index_min_rows,
                max_candidates=spec.index_max_candidates,
            )
            if not candidates and "indexes" in tune:
                raise InvalidArgumentError(
                    "tune includes 'indexes' but the workload gives no index candidate "
                    f"(tables with at least index_min_rows={spec.index_min_rows} rows, "
                    "columns in predicates, joins, GROUP BY / ORDER BY)"
                )
            budget = (
                parse_budget(spec.index_budget)
                if spec.index_budget is not None
                else default_budget(conn)
            )
            if candidates:  # else only observed: nothing to observe
                sizes = estimate_sizes(conn, candidates)
                self.index_space = IndexSpace(candidates, sizes, budget)
        jit_tuned = self.knob_space is not None and "jit" in self.knob_space.names
        self.hint_space: HintSpace | None = None
        if "hints" in tune or "hints" in observe:
            self.hint_space = HintSpace(len(self.slots), spec.hint_sets, jit_tuned=jit_tuned)

        base = PlanCatalog.from_connection(conn)
        extra = [c.name for c in self.index_space.candidates] if self.index_space else []
        self.plan_catalog = PlanCatalog(base.relations, (*base.indexes, *extra), base.columns)
        if "metrics" in observe:
            self._metrics = self.session.add_source(MetricsObserver(self.session))
        if spec.evaluation == "estimate":
            self._estimator = WhatIfEstimator(
                self.session,
                [(i, s.sql, s.params, s.count) for i, s in enumerate(self.slots.slots)],
                timeout=ESTIMATE_TIMEOUT,
            )
        self._builder = ObservationBuilder(
            spec.observe,
            catalog=self.plan_catalog,
            n_slots=len(self.slots),
            max_nodes=spec.max_plan_nodes,
            n_metrics=len(self._metrics.names) if self._metrics is not None else 0,
            n_knobs=len(self.knob_space.names) if self.knob_space else 0,
            n_indexes=len(self.index_space.candidates) if self.index_space else 0,
            n_hint_sets=self.hint_space.n_sets if self.hint_space else 1,
        )
        self.observation_space = self._builder.space  # type: ignore[assignment]
        parts: dict[str, spaces.Space[Any]] = {}
        for dim in spec.tune:
            parts[dim] = self._part(dim).space
        self.action_space = parts[self.preset] if self.preset else spaces.Dict(parts)
        self._default_settings = self._read_knobs() if self.knob_space else {}
        self._default = Config(
            None,
            np.zeros(len(self.index_space.candidates) if self.index_space else 0, np.int8),
            np.zeros(len(self.slots), np.int64),
        )
        self._config = self._default.copy()
        self._good = self._default.copy()
        self._baselines: dict[tuple[str, ...], Baseline] = {}
        self._episode: Workload | None = None
        self._previous = 0.0
        self._steps = 0

    def _part(self, dim: str) -> Any:
        part = {"knobs": self.knob_space, "indexes": self.index_space, "hints": self.hint_space}[
            dim
        ]
        assert part is not None
        return part

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        session = self._live()
        t0 = time.perf_counter()
        if self._estimator is None:
            if not session.alive():
                session.recover()
            session.restore()
            session.apply(template_settings={})
        self._config = self._default.copy()
        self._good = self._default.copy()
        pick = int(self.np_random.integers(len(self.workloads)))
        workload = self.workloads[pick]
        if self.gym_spec.episode_sample is not None:
            n = min(self.gym_spec.episode_sample, len(workload))
            workload = workload.sample(n, int(self.np_random.integers(2**63 - 1)))
        self._episode = workload
        self._slot_of = self.slots.mapping(workload)
        counts = slot_counts(workload.template_ids(), self._slot_of, len(self.slots))
        self._counts = counts
        total = max(len(workload), 1)
        self._weights = (counts / total).astype(np.float32)
        self._baseline = self._measure_baseline(workload, pick)
        self._previous = self._baseline.measure.value
        self._steps = 0
        if self._metrics is not None:
            self._metrics.reset()
        obs, plans, truncated = self._observe(metrics_zero=True)
        info = {
            "baseline": self._baseline.measure.value,
            "baseline_throughput": self._baseline.measure.throughput,
            "workload": {"index": pick, "statements": len(workload)},
            "evaluation": self.env_spec.evaluation,
            "config": self._describe(self._config),
            "default_action": self.default_action(),
            "action_mask": self.action_mask(),
            "plans": plans,
            "plans_truncated": truncated,
            "reset_seconds": time.perf_counter() - t0,
        }
        return obs, info

    def step(self, action: Any) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        self._live()
        if self._episode is None:
            raise InvalidArgumentError("call reset() before step()")
        wanted, notes = self._decode(action)
        phases: dict[str, float] = {}
        error: str | None = None
        restarted = False
        measure: StepMeasure | None = None
        t = time.perf_counter()
        try:
            if self._estimator is None:
                restarted = self._apply(wanted)
        except (InstanceError, KnobError) as e:
            error = f"apply: {type(e).__name__}: {e}"
        phases["apply"] = time.perf_counter() - t
        t = time.perf_counter()
        if error is None:
            measure, error = self._evaluate(wanted)
        phases["measure"] = time.perf_counter() - t
        if error is not None:
            recovery = self._recover()
            error = f"{error} (recovered: {recovery})"
        else:
            self._config = wanted
            self._good = wanted.copy()
        t = time.perf_counter()
        obs, plans, truncated = self._observe(metrics_zero=False)
        phases["observe"] = time.perf_counter() - t
        base = self._baseline.measure
        if measure is None:
            reward = float(self.env_spec.penalty)
        else:
            ctx = RewardContext(
                value=measure.value,
                previous=self._previous,
                baseline=base.value,
                throughput=measure.throughput,
                baseline_throughput=base.throughput,
                evaluation=self.env_spec.evaluation,
            )
            reward = checked(self._reward_fn(ctx), self.env_spec.reward)
            self._previous = measure.value
        self._steps += 1
        value = None if measure is None else measure.value
        info: dict[str, Any] = {
            "time" if self._estimator is None else "cost": value,
            "value": value,
            "baseline": base.value,
            "throughput": None if measure is None else measure.throughput,
            "per_template": {} if measure is None else measure.per_slot,
            "timeouts": {} if measure is None else measure.timeouts,
            "statement_errors": {} if measure is None else measure.errors,
            "config": self._describe(self._config),
            "restarted": restarted,
            "phases": phases,
            "error": error,
            "notes": notes,
            "action_mask": self.action_mask(),
            "plans": plans,
            "plans_truncated": truncated,
            "evaluation": self.env_spec.evaluation,
        }
        return obs, reward, False, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        cfg = self._describe(self._config)
        return f"step {self._steps}: {cfg}"

    def close(self) -> None:
        """Release the server (and everything else); safe to call twice and on every path."""
        if self._closed:
            return
        self._closed = True
        if self._estimator is not None:
            with contextlib.suppress(Exception):
                self._estimator.close()
        if self.session is not None:
            self.session.close()
        super().close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- masks and defaults ------------------------------------------------------------
    def default_action(self) -> Any:
        """The action meaning "the default configuration" (no change from reset)."""
        parts: dict[str, Any] = {}
        for dim in self.env_spec.tune:
            if dim == "knobs":
                assert self.knob_space is not None
                parts[dim] = self.knob_space.encode(self._default_settings)
            elif dim == "indexes":
                parts[dim] = self._default.indexes.copy()
            else:
                parts[dim] = self._default.hints.copy()
        return parts[self.preset] if self.preset else parts

    def action_mask(self) -> Any:
        """The mask in gymnasium's `sample(mask=...)` form: for the index part, MultiBinary
        int8 (0: must be 0, 2: free) following SWIRL's rules against the indexes in force;
        None for Box parts; for hints a tuple of all-allowed int8 arrays, one per slot."""
        parts: dict[str, Any] = {}
        for dim in self.env_spec.tune:
            if dim == "knobs":
                parts[dim] = None
            elif dim == "indexes":
                assert self.index_space is not None
                parts[dim] = self.index_space.mask(self._config.indexes)
            else:
                assert self.hint_space is not None
                parts[dim] = tuple(
                    np.ones(self.hint_space.n_sets, dtype=np.int8)
                    for _ in range(self.hint_space.n_slots)
                )
        return parts[self.preset] if self.preset else parts

    def action_masks(self) -> NDArray[np.bool_]:
        """sb3-contrib's MaskablePPO form: one flat bool array over the discrete parts
        (indexes: per candidate [may be 0, may be 1]; hints: every choice)."""
        out: list[NDArray[np.bool_]] = []
        for dim in self.env_spec.tune:
            if dim == "indexes":
                assert self.index_space is not None
                out.append(self.index_space.sb3_mask(self._config.indexes))
            elif dim == "hints":
                assert self.hint_space is not None
                out.append(self.hint_space.sb3_mask())
        return np.concatenate(out) if out else np.ones(0, dtype=bool)

    # -- internals ---------------------------------------------------------------------
    def _live(self) -> DbSession:
        if self._closed or self.session is None:
            raise InvalidArgumentError("the environment is closed")
        return self.session

    def _read_knobs(self) -> dict[str, str]:
        assert self.knob_space is not None and self.session is not None
        rows = (
            self.session.connection()
            .execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (list(self.knob_space.names),),
            )
            .fetchall()
        )
        return {str(n): str(v) for n, v in rows}

    def _decode(self, action: Any) -> tuple[Config, list[str]]:
        if not self.action_space.contains(action):
            raise InvalidArgumentError(self._why_not(action))
        parts = {self.preset: action} if self.preset else dict(action)
        wanted = self._config.copy()
        notes: list[str] = []
        if "knobs" in parts:
            assert self.knob_space is not None
            wanted.knobs = self.knob_space.decode(np.asarray(parts["knobs"], dtype=np.float32))
        if "indexes" in parts:
            assert self.index_space is not None
            bits, notes = self.index_space.repair(np.asarray(parts["indexes"], dtype=np.int8))
            wanted.indexes = bits
        if "hints" in parts:
            assert self.hint_space is not None
            wanted.hints = self.hint_space.check(parts["hints"])
        return wanted, notes

    def _why_not(self, action: Any) -> str:
        space = self.action_space
        if isinstance(space, spaces.Dict):
            if not isinstance(action, Mapping):
                keys = list(space.spaces)
                return f"the action must be a dict with keys {keys}, got {type(action).__name__}"
            missing = set(space.spaces) - set(action)
            extra = set(action) - set(space.spaces)
            if missing or extra:
                return f"action keys {sorted(action)}; expected {sorted(space.spaces)}"
            for k, sub in space.spaces.items():
                if not sub.contains(action[k]):
                    return f"action[{k!r}] = {action[k]!r} is not in {sub}"
        return f"action {action!r} is not in the action space {space}"

    def _template_settings(
        self, cfg: Config, timeouts: Mapping[int, float]
    ) -> dict[int, dict[str, str]]:
        """Per template id of the episode workload: its hint set and statement timeout."""
        hints = self.hint_space.slot_settings(cfg.hints) if self.hint_space else {}
        out: dict[int, dict[str, str]] = {}
        common = self._baseline.common_timeout
        for tid, seconds in timeouts.items():
            if common is None or _ms(seconds) != _ms(common):
                out[tid] = {"statement_timeout": f"{_ms(seconds)}ms"}
        for tid, slot in self._slot_of.items():
            if slot in hints:
                out.setdefault(tid, {}).update(hints[slot])
        return out

    def _apply(self, cfg: Config) -> bool:
        """Reach `cfg` on the server; whether it restarted."""
        session = self._live()
        knobs = None
        if cfg.knobs is not None and cfg.knobs != self._config.knobs:
            knobs = cfg.knobs
        indexes = None
        if self.index_space is not None and not np.array_equal(cfg.indexes, self._config.indexes):
            indexes = self.index_space.specs(cfg.indexes)
        settings: dict[int, dict[str, str]] | None = self._template_settings(
            cfg, self._baseline.timeouts
        )
        if settings == session.template_settings:
            settings = None  # unchanged: no round trips to check them again
        if knobs is None and indexes is None and settings is None:
            return False
        change = session.apply(
            knobs=knobs,
            indexes=indexes,
            template_settings=settings,
            index_timeout=self.env_spec.index_timeout,
        )
        return bool(change.knobs is not None and change.knobs.restarted)

    def _evaluate(self, cfg: Config) -> tuple[StepMeasure | None, str | None]:
        if self._estimator is not None:
            return self._estimate(cfg), None
        session = self._live()
        assert self._episode is not None
        common = self._baseline.common_timeout
        result, status = session.measure(
            self._episode,
            speed=self.env_spec.speed,
            concurrency=self.env_spec.concurrency,
            timeout=self.env_spec.step_timeout,
            statement_timeout=None if common is None else _ms(common) / 1000,
        )
        if (
            status.outcome in (MeasureOutcome.SERVER_CRASHED, MeasureOutcome.FAILED)
            or result is None
        ):
            return None, f"measure: {status}"
        floor = self.env_spec.min_statement_timeout
        return measure_replay(result, self._baseline.timeouts, floor, self._slot_of), None

    def _estimate(self, cfg: Config) -> StepMeasure:
        assert self._estimator is not None
        indexes: list[IndexSpec] = self.index_space.specs(cfg.indexes) if self.index_space else []
        settings = dict(cfg.knobs) if cfg.knobs else {}
        hints = self.hint_space.slot_settings(cfg.hints) if self.hint_space else {}
        est = self._estimator.estimate(indexes, settings, hints)
        self._last_estimate = est
        costs = np.array([est.per_template.get(i, 0.0) for i in range(len(self.slots))])
        costs = np.nan_to_num(costs, nan=0.0)
        value = float((costs * self._counts).sum())
        return StepMeasure(
            value=value,
            per_slot={i: float(c) for i, c in enumerate(costs) if self._counts[i] > 0},
            statements=int(self._counts.sum()),
        )

    def _recover(self) -> str:
        """Back to a good state after a fault: the server up again, then the last good
        configuration, else the pristine state."""
        session = self._live()
        if self._estimator is not None:
            return "estimate mode: nothing to recover"
        try:
            action = session.recover()
        except InstanceError:
            session.restore()
            action = "restored"
        if action == "restored":
            self._config = self._default.copy()
            self._good = self._default.copy()
            session.apply(
                template_settings=self._template_settings(self._config, self._baseline.timeouts)
            )
            return "pristine state restored"
        try:
            self._reconcile(self._good)
            return "previous configuration"
        except (InstanceError, KnobError):
            session.restore()
            self._config = self._default.copy()
            self._good = self._default.copy()
            session.apply(
                template_settings=self._template_settings(self._config, self._baseline.timeouts)
            )
            return "pristine state restored"

    def _reconcile(self, cfg: Config) -> None:
        """Make the server hold `cfg` whatever the environment believed was in force."""
        session = self._live()
        knobs = cfg.knobs if cfg.knobs is not None else self._default_knob_values()
        indexes = self.index_space.specs(cfg.indexes) if self.index_space else None
        session.apply(
            index_timeout=self.env_spec.index_timeout,
            knobs=knobs,
            indexes=indexes,
            template_settings=self._template_settings(cfg, self._baseline.timeouts),
        )
        self._config = cfg.copy()

    def _default_knob_values(self) -> dict[str, str] | None:
        if self.knob_space is None:
            return None
        return self.knob_space.decode(self.knob_space.encode(self._default_settings))

    def _measure_baseline(self, workload: Workload, pick: int) -> Baseline:
        spec = workload.spec
        key = (
            self.gym_spec.historical_state.key(),
            spec.key() if spec is not None else f"workload{pick}",
            self.env_spec.evaluation,
        )
        found = self._baselines.get(key)
        if found is not None:
            return found
        if self._estimator is not None:
            baseline = Baseline(self._estimate(self._default))
        else:
            baseline = self._execute_baseline(workload)
        self._baselines[key] = baseline
        return baseline

    def _execute_baseline(self, workload: Workload) -> Baseline:
        session = self._live()
        last = ""
        for _ in range(2):
            result, status = session.measure(
                workload,
                speed=self.env_spec.speed,
                concurrency=self.env_spec.concurrency,
                timeout=self.env_spec.step_timeout,
            )
            if result is not None and status.outcome in (MeasureOutcome.OK, MeasureOutcome.TIMEOUT):
                latencies = template_latencies(result)
                timeouts = statement_timeouts(
                    latencies, self.env_spec.baseline_factor, self.env_spec.min_statement_timeout
                )
                measure = measure_replay(
                    result, timeouts, self.env_spec.min_statement_timeout, self._slot_of
                )
                return Baseline(measure, timeouts, _common(result.template_id, timeouts))
            last = str(status)
            session.recover()
        raise InstanceError(f"the baseline (default configuration) could not be measured: {last}")

    def _observe(self, *, metrics_zero: bool) -> tuple[Obs, list[str | None], int]:
        comps = set(self.env_spec.observe)
        plans: list[str | None] = []
        plan_arrays = None
        truncated = 0
        if "plans" in comps:
            plans = self._plans()
            plan_arrays, truncated = self._builder.plans(plans, self._weights)
        metrics = None
        if self._metrics is not None:
            try:
                metrics = (
                    np.zeros(len(self._metrics.names)) if metrics_zero else self._metrics.observe()
                )
            except DbgymError:
                metrics = None
        knobs = None
        if self.knob_space is not None and "knobs" in comps:
            if self._estimator is not None or self._config.knobs is None:
                knobs = (
                    self.knob_space.encode(self._default_settings)
                    if self._config.knobs is None
                    else self.knob_space.encode(self._config.knobs)
                )
            else:
                try:
                    knobs = self.knob_space.encode(self._read_knobs())
                except (DbgymError, psycopg.Error):
                    knobs = self.knob_space.encode(self._config.knobs)
        hints = self.hint_space.one_hot(self._config.hints) if self.hint_space else None
        obs = self._builder.build(
            plans=plan_arrays,
            metrics=metrics,
            knobs=knobs,
            indexes=self._config.indexes,
            hints=hints,
        )
        return obs, plans, truncated

    def _plans(self) -> list[str | None]:
        if self._estimator is not None:
            est = getattr(self, "_last_estimate", None)
            if est is None:
                est = self._estimator.estimate([], {}, {})
                self._last_estimate = est
            return [est.plans.get(i) for i in range(len(self.slots))]
        session = self._live()
        hints = self.hint_space.slot_settings(self._config.hints) if self.hint_space else {}
        out: list[str | None] = []
        try:
            conn = session.connection()
        except InstanceError:
            return [None] * len(self.slots)
        deadline = time.monotonic() + EXPLAIN_BUDGET
        for i, slot in enumerate(self.slots.slots):
            left = min(EXPLAIN_TIMEOUT, deadline - time.monotonic())
            if left <= 0.001:
                out.append(None)
                continue
            try:
                settings = hints.get(i)
                plan = explain_one(
                    conn, slot.sql, slot.params, planner_settings=settings, timeout=left
                )
                out.append(plan)
            except psycopg.Error:
                out.append(None)
        return out

    def configuration(self) -> dict[str, Any]:
        """The configuration in force, machine-readable in `dbgym bench`'s configuration
        schema: {"knobs": {name: value}, "indexes": [{"table", "columns", "using"}],
        "hints": {template text: {setting: value}}} (a dimension not tuned is left out;
        knobs at their defaults are an empty mapping)."""
        cfg = self._config
        out: dict[str, Any] = {}
        if self.knob_space is not None:
            out["knobs"] = dict(cfg.knobs) if cfg.knobs is not None else {}
        if self.index_space is not None:
            out["indexes"] = [
                {"table": s.table, "columns": list(s.columns), "using": s.using}
                for s in self.index_space.specs(cfg.indexes)
            ]
        if self.hint_space is not None:
            out["hints"] = {
                self.slots.slots[slot].text: settings
                for slot, settings in self.hint_space.slot_settings(cfg.hints).items()
            }
        return out

    def _describe(self, cfg: Config) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.knob_space is not None:
            out["knobs"] = dict(cfg.knobs) if cfg.knobs is not None else "default"
        if self.index_space is not None:
            out["indexes"] = [str(s) for s in self.index_space.specs(cfg.indexes)]
        if self.hint_space is not None:
            out["hints"] = {
                self.slots.slots[slot].text[:80]: desc
                for slot, desc in self.hint_space.describe(cfg.hints).items()
            }
        return out


class KnobTuningEnv(DbGymEnv):
    """ "dbgym/KnobTuning-v0": the knob action alone (a Box in [0, 1]^k)."""

    preset = "knobs"


class IndexSelectionEnv(DbGymEnv):
    """ "dbgym/IndexSelection-v0": the index action alone (a MultiBinary)."""

    preset = "indexes"


class QueryHintsEnv(DbGymEnv):
    """ "dbgym/QueryHints-v0": the hint action alone (a MultiDiscrete)."""

    preset = "hints"
