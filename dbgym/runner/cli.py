"""`dbgym run`: a model on a dbgym environment for N steps (the README's main job).

    dbgym run --benchmark tpch --scale 0.01 --model random --steps 30

Every run is a tracked simulation (key "dbgym-run") of the project in `--project-dir`
(default $DBGYM_PROJECT_DIR, else ./.dbgym-projects): it runs in a child process, its rows
(status history, progress, environment, result) land in the project database and its steps
in the standard training-data format under sims/<sim_id>/ (`dbgym sims show ID`,
`dbgym.project.load_dataset`). A progress bar shows the step, its reward and the best so
far; the run ends with a table: baseline, best, improvement, and the best configuration
(knob values, indexes, hint sets). Ctrl-C cancels the simulation (its server is stopped),
still prints the summary so far and exits 130. `--json OUT` writes the whole run (spec,
every step, best configuration).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dbgym.errors import InvalidArgumentError


def register_run(app: typer.Typer) -> None:
    app.command("run")(run_cmd)


def gym_spec_from_options(
    *,
    benchmark: str | None,
    scale: float | None,
    seed: int | None,
    log: Path | None,
    sql: Path | None,
    dump: Path | None,
    sample: int | None,
) -> Any:
    """The GymSpec of `dbgym run`'s workload and state options."""
    from dbgym.benchmarks import get as get_benchmark
    from dbgym.envs.spec import GymSpec
    from dbgym.state.spec import DumpState
    from dbgym.workload.spec import LogWorkload, SqlWorkload

    if log is not None and sql is not None:
        raise InvalidArgumentError("give one workload: --log FILE or --sql DIR, not both")
    params: dict[str, Any] = {k: v for k, v in (("scale", scale), ("seed", seed)) if v is not None}
    state: Any = None
    workload: Any = None
    if benchmark is not None:
        entry = get_benchmark(benchmark)
        state_params = {k: v for k, v in params.items() if k in entry.names("state")}
        workload_params = {k: v for k, v in params.items() if k in entry.names("workload")}
        state = entry.state(**state_params)
        workload = entry.workload(**workload_params)
    elif params:
        raise InvalidArgumentError("--scale/--seed need --benchmark NAME")
    if log is not None:
        workload = LogWorkload(str(log.absolute()))
    if sql is not None:
        workload = SqlWorkload(str(sql.absolute()))
    if dump is not None:
        state = DumpState.of(dump)
    if workload is None or state is None:
        raise InvalidArgumentError(
            "say what to tune on: --benchmark NAME (state and workload), or a workload "
            "(--log FILE / --sql DIR) with a state (--dump FILE or --benchmark NAME)"
        )
    return GymSpec(historical_workloads=[workload], historical_state=state, episode_sample=sample)


# The workload and state options `dbgym run` and `dbgym bench` share (typer annotations).
BenchmarkOption = Annotated[
    str | None, typer.Option(help="Built-in benchmark for state and workload: tpch, pgbench")
]
ScaleOption = Annotated[float | None, typer.Option(help="Benchmark scale factor")]
DataSeedOption = Annotated[
    int | None, typer.Option("--data-seed", help="Benchmark data/query seed")
]
LogOption = Annotated[Path | None, typer.Option(help="Workload: a PostgreSQL server log")]
SqlOption = Annotated[Path | None, typer.Option(help="Workload: a .sql file or directory")]
DumpOption = Annotated[Path | None, typer.Option(help="State: a pg_dump file")]
ProjectDirOption = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="Project folder recording the run (default $DBGYM_PROJECT_DIR or ./.dbgym-projects)",
    ),
]


def run_cmd(
    benchmark: BenchmarkOption = None,
    scale: ScaleOption = None,
    data_seed: DataSeedOption = None,
    log: LogOption = None,
    sql: SqlOption = None,
    dump: DumpOption = None,
    sample: Annotated[
        int | None, typer.Option(help="Statements sampled per episode (default: all)")
    ] = None,
    model: Annotated[str, typer.Option(help="Model name (dbgym.load_model)")] = "random",
    steps: Annotated[int, typer.Option(help="Steps to run")] = 30,
    episode_steps: Annotated[
        int | None, typer.Option(help="Steps per episode (default: one episode)")
    ] = None,
    tune: Annotated[
        str, typer.Option(help="Comma-separated tuning dimensions: knobs,indexes,hints")
    ] = "knobs,indexes,hints",
    evaluation: Annotated[str, typer.Option(help="execute or estimate")] = "execute",
    reward: Annotated[str, typer.Option(help="relative, delta, throughput")] = "relative",
    backend: Annotated[str, typer.Option(help="local or docker")] = "local",
    cpus: Annotated[float | None, typer.Option(help="Docker: CPU limit")] = None,
    memory: Annotated[str | None, typer.Option(help="Docker: memory limit, e.g. 2g")] = None,
    seed: Annotated[int, typer.Option(help="Environment and model seed")] = 15721,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the run (every step) as JSON")
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A RunSpec JSON file (replaces the options)")
    ] = None,
    project_dir: ProjectDirOption = None,
) -> None:
    """Runs a model on a dbgym environment and reports the best configuration found."""
    from dbgym.envs.spec import EnvSpec
    from dbgym.runner.run import RunSpec

    if spec_file is not None:
        spec = RunSpec.from_json(spec_file.read_text())
    else:
        gym_spec = gym_spec_from_options(
            benchmark=benchmark, scale=scale, seed=data_seed, log=log, sql=sql, dump=dump,
            sample=sample,
        )  # fmt: skip
        env = EnvSpec.from_dict(
            {
                "tune": [t.strip() for t in tune.split(",") if t.strip()],
                "evaluation": evaluation,
                "reward": reward,
                "backend": backend,
                "cpus": cpus,
                "memory": memory,
            }
        )
        spec = RunSpec(
            gym=gym_spec,
            env=env,
            model=model,
            model_kwargs={"seed": seed} if model == "random" else {},
            steps=steps,
            episode_steps=episode_steps,
            seed=seed,
        )
    from dbgym.models.registry import available_models

    if spec.model not in available_models():
        raise InvalidArgumentError(
            f"--model {spec.model!r}: unknown model; available: {', '.join(available_models())}"
        )
    from dbgym.project.api_calls import recorded
    from dbgym.project.manager import ProjectManager

    project = ProjectManager(project_dir)
    with recorded(project, "cli.run", {"spec": spec.to_dict()}):
        sim_id, result, interrupted = run_tracked(project, spec)
    if result is not None:
        print_summary(result, interrupted=interrupted)
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=2, default=str) + "\n")
            typer.echo(f"wrote {json_out}")
    typer.echo(f"simulation {sim_id} in {project.project_folder()}")
    if interrupted:
        raise KeyboardInterrupt
    from dbgym.runner.simulation import failure_error

    error = failure_error(project, sim_id)
    if error is not None:
        raise error


def run_tracked(project: Any, spec: Any) -> tuple[str, dict[str, Any] | None, bool]:
    """Runs `spec` as a "dbgym-run" simulation of `project` in a child process, with a
    progress bar fed from the project's rows; Ctrl-C cancels it. Returns (sim_id, the
    recorded result or None, whether it was interrupted)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dbgym.project.tracker import SimulationTracker
    from dbgym.runner.simulation import start_config

    progress = Progress(
        TextColumn("[bold]dbgym run"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        transient=False,
    )
    task = progress.add_task("run", total=spec.steps, status="starting the server")
    interrupted = False
    with SimulationTracker(project, max_concurrent=1) as tracker:
        sim_id = tracker.start_sim(start_config(spec))
        try:
            with progress:
                last_status = 0
                while not tracker.wait(sim_id, timeout=0.25):
                    row = project.records.get(sim_id)
                    statuses = project.records.statuses(sim_id, after=last_status)
                    if statuses:
                        last_status = statuses[-1].id
                        progress.update(task, status=statuses[-1].details[:60])
                    progress.update(task, completed=row.progress_done or 0)
                row = project.records.get(sim_id)
                progress.update(task, completed=row.progress_done or 0)
        except KeyboardInterrupt:
            interrupted = True
            tracker.cancel(sim_id)
            tracker.wait(sim_id, timeout=60.0)
    row = project.records.get(sim_id)
    interrupted = interrupted or bool(row.cancelled)
    return sim_id, row.result, interrupted


def print_summary(result: dict[str, Any], *, interrupted: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    unit = result["unit"]
    interrupted = interrupted or bool(result.get("interrupted"))
    table = Table(title="dbgym run" + (" (interrupted)" if interrupted else ""))
    table.add_column("")
    table.add_column("value", overflow="fold")

    def fmt(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:.4g} s" if unit == "s" else f"{v:.6g}"

    steps = result["steps"]
    table.add_row("steps", f"{len(steps)} ({sum(1 for s in steps if s['error'])} failed)")
    table.add_row("baseline", fmt(result["baseline"]))
    table.add_row("best", fmt(result["best_value"]))
    imp = result["improvement"]
    table.add_row("improvement", "-" if imp is None else f"{imp:+.1%}")
    cfg = result["best_config"] or {}
    knobs = cfg.get("knobs")
    if knobs is not None:
        shown = knobs if isinstance(knobs, str) else ", ".join(f"{k}={v}" for k, v in knobs.items())
        table.add_row("knobs", shown or "default")
    if "indexes" in cfg:
        table.add_row("indexes", "\n".join(cfg["indexes"]) or "none")
    if "hints" in cfg:
        table.add_row(
            "hints", "\n".join(f"{t[:50]}: {h}" for t, h in cfg["hints"].items()) or "none"
        )
    table.add_row("time", f"{result['seconds']:.1f} s")
    console.print(table)
