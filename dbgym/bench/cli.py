"""`dbgym bench`: compare configurations on one workload and state (or `--self`: the
project's own benches in one table).

    dbgym bench --benchmark tpch --scale 0.01 --sql queries/ \\
        --default --config with-index.yaml --repeat 10 --json out.json --html out.html

The workload and state options are those of `dbgym run`. The first configuration is the
baseline: `--default` when given, else the first `--config`, then the other `--config`
files in order, then `--from-sim` ones. Exit codes: 0 compared; 4 a configuration is
significantly slower than the first by more than `--fail-if-slower` percent; 2 a bad
option or configuration; 3 a server that failed; 130 interrupted (the report of what was
measured is still printed and written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from dbgym.errors import InvalidArgumentError
from dbgym.runner.cli import (
    BenchmarkOption,
    DataSeedOption,
    DumpOption,
    LogOption,
    ScaleOption,
    SqlOption,
)


def register_bench(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


def _round_lines(spec: Any) -> Any:
    """When stderr is not a terminal (no bar): one line per finished round."""
    if sys.stderr.isatty():
        return None
    n = len(spec.configs)

    def line(done: int, total: int, _next: str) -> None:
        if done and done % n == 0:
            print(
                f"dbgym bench: round {done // n}/{total // n} done ({done}/{total} runs)",
                file=sys.stderr,
                flush=True,
            )

    return line


def spec_from_options(
    *,
    benchmark: str | None,
    scale: float | None,
    data_seed: int | None,
    log: Path | None,
    sql: Path | None,
    dump: Path | None,
    sample: int | None,
    configs: list[Path],
    default: bool,
    from_sim: list[str],
    project_dir: Path | None,
    backend: str,
    cpus: float | None,
    memory: str | None,
    speed: float | None,
    concurrency: int | None,
    repeat: int,
    warmup: int,
    cache: str,
    statement_timeout: float | None,
    restore: str,
    one_server: bool,
    seed: int,
    alpha: float,
    bootstrap: int,
    fail_if_slower: float | None,
    name: str | None,
) -> Any:
    """The BenchSpec of `dbgym bench`'s options."""
    from dbgym.bench.config import BenchConfig, ReplayMode, from_simulation, load_config
    from dbgym.bench.spec import BenchSpec
    from dbgym.dbms.spec import InstanceSpec
    from dbgym.runner.cli import gym_spec_from_options

    gym = gym_spec_from_options(
        benchmark=benchmark, scale=scale, seed=data_seed, log=log, sql=sql, dump=dump,
        sample=None,
    )  # fmt: skip
    chosen: list[BenchConfig] = []
    if default:
        chosen.append(BenchConfig.default())
    chosen.extend(load_config(p) for p in configs)
    for sim_id in from_sim:
        config = from_simulation(project_dir, sim_id)
        taken = {c.name for c in chosen}
        if config.name in taken:
            config = config.replace(name=f"{config.name} [{sim_id[:8]}]")
        chosen.append(config)
    if not chosen:
        raise InvalidArgumentError(
            "give the configurations to compare: --config FILE (YAML, JSON or TOML; repeat "
            "it), --default (the server's defaults) and/or --from-sim ID"
        )
    instance = InstanceSpec.from_dict({"backend": backend, "cpus": cpus, "memory": memory})
    return BenchSpec(
        state=gym.historical_state,
        workload=gym.historical_workloads[0],
        configs=tuple(chosen),
        sample=sample,
        instance=instance,
        replay=ReplayMode(speed=speed, concurrency=concurrency),
        repeat=repeat,
        warmup=warmup,
        cache=cast(Any, cache),
        statement_timeout=statement_timeout,
        restore=cast(Any, restore),
        one_server=one_server,
        alpha=alpha,
        bootstrap=bootstrap,
        seed=seed,
        fail_if_slower=fail_if_slower,
        name=name or "",
    )


def bench_cmd(
    benchmark: BenchmarkOption = None,
    scale: ScaleOption = None,
    data_seed: DataSeedOption = None,
    log: LogOption = None,
    sql: SqlOption = None,
    dump: DumpOption = None,
    sample: Annotated[
        int | None, typer.Option(help="Replay this many statements sampled from the workload")
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", help="A configuration file (YAML, JSON or TOML); repeat for several"
        ),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Include the server's default configuration (first)")
    ] = False,
    from_sim: Annotated[
        list[str] | None,
        typer.Option("--from-sim", help="The best configuration of a recorded simulation ID"),
    ] = None,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            help="Project folder: --from-sim reads it, and the report is recorded in it "
            "(default $DBGYM_PROJECT_DIR; not recorded when neither is given)",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="local or docker (a configuration's `backend` overrides it)")
    ] = "local",
    cpus: Annotated[float | None, typer.Option(help="Docker: CPU limit")] = None,
    memory: Annotated[str | None, typer.Option(help="Docker: memory limit, e.g. 2g")] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="Replay speed (1.0 = logged timing; default: as fast as possible)"),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Replay connections (default: one per logged session)"),
    ] = None,
    repeat: Annotated[int, typer.Option(help="Measured runs per configuration")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up runs per configuration")] = 1,
    cache: Annotated[
        str, typer.Option(help="warm, or cold: restart and drop the OS page cache before runs")
    ] = "warm",
    statement_timeout: Annotated[
        float | None, typer.Option("--statement-timeout", help="Seconds per statement")
    ] = None,
    restore: Annotated[
        str,
        typer.Option(
            help="Restore before every run: auto (when the workload writes), always, never"
        ),
    ] = "auto",
    one_server: Annotated[
        bool,
        typer.Option(
            "--one-server",
            help="One server per backend, switching configurations by restore + apply",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and of --sample")] = 0,
    alpha: Annotated[
        float, typer.Option(help="Significance level (intervals are 1 - alpha)")
    ] = 0.05,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples")] = 2000,
    fail_if_slower: Annotated[
        float | None,
        typer.Option(
            "--fail-if-slower",
            help="Exit 4 when a configuration is significantly slower than the first by "
            "more than this percentage",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the report")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON (versioned schema)")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write one CSV row per configuration")
    ] = None,
    png_out: Annotated[Path | None, typer.Option("--png", help="Write the plot (PNG)")] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report")
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A BenchSpec JSON file (replaces the options)")
    ] = None,
    self_: Annotated[
        bool, typer.Option("--self", help="Run the project's own benches (benches/) instead")
    ] = False,
    select: Annotated[
        str | None, typer.Option("--select", "-k", help="--self: pytest -k expression")
    ] = None,
) -> None:
    """Compares the runtime of one workload under several configurations, with statistics."""
    from rich.console import Console

    from dbgym.errors import RegressionError

    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the table
        console = Console(width=max(console.width, 150))
    if self_:
        from dbgym.bench.selfbench import run_self

        code = run_self(json_out=json_out, select=select, console=console)
        if code != 0:
            raise RegressionError("a bench of the project failed its bar (see the table)")
        return
    if select is not None:
        raise InvalidArgumentError("--select/-k goes with --self")
    if spec_file is not None:
        from dbgym.bench.spec import load_spec

        spec = load_spec(spec_file)
    else:
        spec = spec_from_options(
            benchmark=benchmark, scale=scale, data_seed=data_seed, log=log, sql=sql,
            dump=dump, sample=sample, configs=list(config or []), default=default,
            from_sim=list(from_sim or []), project_dir=project_dir, backend=backend,
            cpus=cpus, memory=memory, speed=speed, concurrency=concurrency, repeat=repeat,
            warmup=warmup, cache=cache, statement_timeout=statement_timeout,
            restore=restore, one_server=one_server, seed=seed, alpha=alpha,
            bootstrap=bootstrap, fail_if_slower=fail_if_slower, name=name,
        )  # fmt: skip
    from dbgym.bench.comparison import compare
    from dbgym.project.api_calls import recorded
    from dbgym.project.manager import open_if_named

    project = open_if_named(project_dir)
    with recorded(project, "cli.bench", {"spec": spec.to_dict()}) as details:
        report = compare(spec, progress=None, on_progress=_round_lines(spec), project=project)
        details["bench_run_id"] = report.metadata.get("project", {}).get("bench_run_id")
        report.render(console)
        for path, write in (
            (json_out, report.write_json),
            (csv_out, report.write_csv),
            (png_out, report.write_png),
            (html_out, report.write_html),
        ):
            if path is not None:
                write(path)
                console.print(f"wrote {path}", highlight=False)
        if report.interrupted:
            raise KeyboardInterrupt
        if report.regressions:
            raise RegressionError(
                f"{', '.join(report.regressions)}: significantly slower than "
                f"{report.baseline.name} by more than {spec.fail_if_slower:g}% "
                "(--fail-if-slower)"
            )
