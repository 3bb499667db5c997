"""The built-in simulation "dbgym-run": `run(RunSpec)` as a tracked simulation.

Its `kwargs` hold the run: `{"spec": RunSpec.to_dict()}`. In the child process it

- records the environment: dbgym.provenance's host facts, then (once the environment's
  server is up) the server's version, every setting and its binary checksum or image id,
  every seed, and the hashes of the workload and dump files;
- wraps the environment in `RecordEpisodes`, so every step lands in the standard
  training-data format under `sims/<sim_id>/`, each part file indexed in the project;
- reports progress per step, posts a status row at most every `POST_INTERVAL` seconds
  (step, reward, best so far), keeps the result so far in the project every
  `RESULT_INTERVAL` seconds, and at the end records the whole `RunResult` (with
  `best_bench_config`, which `dbgym bench --from-sim` reads).

A cancellation (SimulationCancelled) stops `run` at once: the environment and its server
are closed, the result so far is recorded, and the simulation ends cancelled.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbgym.errors import DbgymError
from dbgym.project.simulation import Simulation, SimulationCancelled, SimulationContext
from dbgym.runner.run import RunResult, RunSpec, StepRecord, run

if TYPE_CHECKING:
    import gymnasium as gym

#: The registry key of this simulation type.
SIM_KEY = "dbgym-run"


def start_config(spec: RunSpec, name: str | None = None) -> Any:
    """The SimulationStartConfig that runs `spec` as "dbgym-run"."""
    from dbgym.project.simulation import SimulationStartConfig

    return SimulationStartConfig(
        name=name or f"{spec.model} for {spec.steps} steps",
        sim_key=SIM_KEY,
        kwargs={"spec": spec.to_dict()},
    )


def failure_error(project: Any, sim_id: str) -> DbgymError | None:
    """The error a failed simulation ended with (None for one that did not fail): its class
    when dbgym.errors knows it, so `dbgym run` exits as for a caller mistake or a server
    fault; otherwise a DbgymError. The message is the simulation's last FAIL status."""
    import dbgym.errors as errors

    row = project.records.get(sim_id)
    if not row.failed:
        return None
    last = next((s for s in reversed(project.records.statuses(sim_id)) if s.code == 1), None)
    details = last.details if last is not None else "no status recorded"
    message = f"simulation {sim_id} failed: {details}"
    cls = getattr(errors, details.split(":", 1)[0].strip(), None)
    if isinstance(cls, type) and issubclass(cls, DbgymError):
        try:
            return cls(message)
        except TypeError:  # a class whose constructor needs more than a message
            pass
    return DbgymError(message)


def run_environment(spec: RunSpec) -> dict[str, Any]:
    """Seeds and file hashes of a run (the part of its environment known before it starts)."""
    from dbgym.provenance import file_digest

    files: dict[str, str] = {}
    seeds: dict[str, Any] = {"run": spec.seed}
    if "seed" in spec.model_kwargs:
        seeds["model"] = spec.model_kwargs["seed"]
    sources = [("state", spec.gym.historical_state)] + [
        (f"workload[{i}]", w) for i, w in enumerate(spec.gym.historical_workloads)
    ]
    for what, source in sources:
        params = source.to_dict()
        if "seed" in params:
            seeds[what] = params["seed"]
        path = params.get("path")
        if isinstance(path, str) and Path(path).exists():
            files[path] = file_digest(path)
    return {"seeds": seeds, "files_sha256": files, "run_spec": spec.to_dict()}


class RunSimulation(Simulation):
    """ "dbgym-run": a model on a dbgym environment for N steps (see the module docstring)."""

    #: Seconds between two status postings (step, reward, best so far).
    POST_INTERVAL = 1.0
    #: Seconds between two writes of the result so far.
    RESULT_INTERVAL = 2.0

    def run(self, ctx: SimulationContext) -> None:
        spec = RunSpec.from_dict(self.config.kwargs_dict()["spec"])
        ctx.record_environment(run_environment(spec))
        ctx.progress(0, spec.steps)
        ctx.post(f"starting: model {spec.model}, {spec.steps} steps, {spec.env.evaluation}")
        last = {"post": time.monotonic(), "result": time.monotonic()}

        def wrap(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
            from dbgym.project.recording import RecordEpisodes
            from dbgym.provenance import server_facts

            session = getattr(env.unwrapped, "session", None)
            if session is not None:
                ctx.record_environment(
                    {"server": server_facts(session.connection(), session.instance)}
                )
            return RecordEpisodes(
                env,
                ctx.folder,
                on_file=lambda kind, relpath, rows, version: ctx.project.records.add_file(
                    ctx.sim_id, kind, relpath, rows, version
                ),
            )

        def on_step(record: StepRecord, result: RunResult) -> None:
            ctx.progress(record.step + 1, spec.steps)
            now = time.monotonic()
            if now - last["post"] >= self.POST_INTERVAL or record.step + 1 == spec.steps:
                last["post"] = now
                best = "-" if math.isinf(result.best_reward) else f"{result.best_reward:+.3f}"
                failed = " (config failed)" if record.error else ""
                ctx.post(
                    f"step {record.step + 1}/{spec.steps}: reward {record.reward:+.3f}, "
                    f"best {best}{failed}"
                )
            if now - last["result"] >= self.RESULT_INTERVAL:
                last["result"] = now
                ctx.record_result(result.to_dict())

        result = run(spec, on_step=on_step, progress=False, wrap_env=wrap)
        ctx.flush_progress()
        ctx.record_result(result.to_dict())
        if result.interrupted:
            raise SimulationCancelled(f"cancelled after {len(result.steps)} of {spec.steps} steps")
        improvement = result.improvement
        ctx.post(
            f"finished {len(result.steps)} steps in {result.seconds:.1f} s; improvement "
            + ("-" if improvement is None else f"{improvement:+.1%}")
        )
