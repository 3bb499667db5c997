"""`run(RunSpec)`: a model on a dbgym environment for N steps, with the best configuration.

A `RunSpec` is plain data (the GymSpec, the EnvSpec, the model's name and keyword
arguments, steps, episode length, seed), so a run can be recorded and re-created. `run`
makes the environment, lets the model pick actions, and keeps the step with the best
reward: its configuration (knob values, indexes, hint sets), its measured time (or cost)
against the baseline. Ctrl-C stops it cleanly: the environment (and its server) is closed
and the summary so far is returned with `interrupted=True`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dbgym.envs.spec import EnvSpec, GymSpec
from dbgym.errors import SpecError
from dbgym.spec import Spec

if TYPE_CHECKING:
    import gymnasium as gym


@dataclass(frozen=True)
class RunSpec(Spec):
    """What `dbgym run` runs: `model` (a name for dbgym.load_model, with `model_kwargs`)
    on `gym` / `env` for `steps` steps, `episode_steps` per episode (None: one episode),
    seeded with `seed`."""

    kind: ClassVar[str] = "run"

    gym: GymSpec
    env: EnvSpec = field(default_factory=EnvSpec)
    model: str = "random"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 30
    episode_steps: int | None = None
    seed: int = 15721

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1:
            raise SpecError(f"steps: must be at least 1, got {self.steps}", key="steps")
        if self.episode_steps is not None and self.episode_steps < 1:
            raise SpecError(
                f"episode_steps: must be at least 1, got {self.episode_steps}", key="episode_steps"
            )
        if not 0 <= self.seed < 2**63:
            raise SpecError(f"seed: must be in [0, 2**63), got {self.seed}", key="seed")


@dataclass
class StepRecord:
    """One step: reward, measured value, error (if the configuration failed)."""

    step: int
    episode: int
    reward: float
    value: float | None
    error: str | None
    seconds: float


@dataclass
class RunResult:
    """What a run did: every step, the baseline, and the best step's configuration."""

    spec: RunSpec
    baseline: float
    unit: str
    steps: list[StepRecord] = field(default_factory=list)
    best_reward: float = -math.inf
    best_value: float | None = None
    best_config: dict[str, Any] = field(default_factory=dict)
    #: The best configuration in `dbgym bench`'s configuration schema (`--from-sim`).
    best_bench_config: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def improvement(self) -> float | None:
        """(baseline - best) / baseline, or None when no step measured anything."""
        if self.best_value is None or self.baseline <= 0:
            return None
        return (self.baseline - self.best_value) / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "baseline": self.baseline,
            "unit": self.unit,
            "best_reward": None if math.isinf(self.best_reward) else self.best_reward,
            "best_value": self.best_value,
            "improvement": self.improvement,
            "best_config": self.best_config,
            "best_bench_config": self.best_bench_config,
            "interrupted": self.interrupted,
            "seconds": self.seconds,
            "steps": [asdict(s) for s in self.steps],
        }


#: Called after every step with (record, result so far).
OnStep = Callable[[StepRecord, RunResult], None]
#: Wraps the environment `run` made (e.g. in dbgym.project.recording.RecordEpisodes).
WrapEnv = Callable[["gym.Env[Any, Any]"], "gym.Env[Any, Any]"]


def run(
    spec: RunSpec,
    *,
    on_step: OnStep | None = None,
    progress: bool | None = None,
    wrap_env: WrapEnv | None = None,
) -> RunResult:
    """Run `spec` (see the module docstring). `wrap_env` wraps the environment before the
    first reset; the wrapper is closed with it."""
    import gymnasium as gym

    from dbgym.models.registry import load_model

    model = load_model(spec.model, **dict(spec.model_kwargs))
    env_id = "dbgym/DbGym-v0"
    env = gym.make(
        env_id,
        gym_spec=spec.gym,
        max_episode_steps=spec.episode_steps,
        progress=progress,
        **_env_kwargs(spec.env),
    )
    if wrap_env is not None:
        try:
            env = wrap_env(env)
        except BaseException:
            env.close()
            raise
    t0 = time.perf_counter()
    result: RunResult | None = None
    try:
        obs, info = env.reset(seed=spec.seed)
        unit = "cost" if spec.env.evaluation == "estimate" else "s"
        result = RunResult(spec=spec, baseline=float(info["baseline"]), unit=unit)
        model.initialize(obs, info)
        episode = 0
        for step in range(spec.steps):
            ts = time.perf_counter()
            action = model.pick_action(env.action_space, obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            model.update(obs, action, float(reward), next_obs, terminated, truncated, info)
            record = StepRecord(
                step=step,
                episode=episode,
                reward=float(reward),
                value=info.get("value"),
                error=info.get("error"),
                seconds=time.perf_counter() - ts,
            )
            result.steps.append(record)
            if info.get("error") is None and float(reward) > result.best_reward:
                result.best_reward = float(reward)
                result.best_value = info.get("value")
                result.best_config = info.get("config", {})
                result.best_bench_config = {
                    "name": f"best of run (step {step})",
                    **getattr(env.unwrapped, "configuration", dict)(),
                }
            if on_step is not None:
                on_step(record, result)
            obs = next_obs
            if (terminated or truncated) and step + 1 < spec.steps:
                episode += 1
                obs, info = env.reset()
                model.initialize(obs, info)
    except KeyboardInterrupt:
        if result is None:
            raise
        result.interrupted = True
    finally:
        env.close()
    result.seconds = time.perf_counter() - t0
    return result


def _env_kwargs(env: EnvSpec) -> dict[str, Any]:
    data = env.to_dict()
    data.pop("kind", None)
    return data
