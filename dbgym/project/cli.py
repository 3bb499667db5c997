"""`dbgym sims`: the project's simulations from the command line.

    dbgym sims list [--state running] [--key dbgym-run] [--limit 20] [--json]
    dbgym sims show ID [--json]              (a unique prefix of the id is enough)
    dbgym sims start KEY [--kwargs JSON] [--name NAME] [--detach]
    dbgym sims cancel ID
    dbgym sims delete ID
    dbgym sims reconcile
    dbgym sims export ID --out DIR

Every command takes `--project-dir` (default $DBGYM_PROJECT_DIR, else ./.dbgym-projects)
and is recorded in the project's `api_calls` table. `start` waits for the simulation with a
progress bar (Ctrl-C cancels it) unless `--detach`, which leaves it running on its own.
`export` writes a self-contained copy of one simulation: `db/simulations.db` (a project
database holding its rows: simulation, status history, file index, and its key's exported
type) and its `sims/<id>/` folder, so `ProjectManager(DIR)` opens it like any project.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer

from dbgym.errors import InvalidArgumentError

ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="Project folder (default $DBGYM_PROJECT_DIR, else ./.dbgym-projects)",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]

sims_app = typer.Typer(
    name="sims",
    help="The project's tracked simulations: list, show, start, cancel, delete, reconcile, export.",
    no_args_is_help=True,
)


def register_sims(app: typer.Typer) -> None:
    app.add_typer(sims_app, name="sims")


def _open(project_dir: Path | None) -> Any:
    from dbgym.project.manager import ProjectManager

    return ProjectManager(project_dir)


def _fmt_time(iso: str | None) -> str:
    return "-" if not iso else iso.replace("T", " ")[:19]


def _progress(row: Any) -> str:
    if row.progress_done is None:
        return "-"
    return (
        f"{row.progress_done}/{row.progress_total}"
        if row.progress_total
        else str(row.progress_done)
    )


_STATE_STYLE = {
    "done": "green",
    "running": "cyan",
    "pending": "dim",
    "failed": "red",
    "cancelled": "yellow",
    "force_stopped": "magenta",
}


@sims_app.command("list")
def list_cmd(
    project_dir: ProjectDir = None,
    state: Annotated[
        str | None,
        typer.Option(help="pending, running, done, failed, cancelled or force_stopped"),
    ] = None,
    key: Annotated[str | None, typer.Option(help="Only simulations of this key")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Lists the project's simulations, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from dbgym.project.api_calls import recorded

    project = _open(project_dir)
    args = {"state": state, "key": key, "limit": limit}
    with recorded(project, "cli.sims.list", args):
        rows = project.records.list(state=state, key=key, limit=limit)
    if as_json:
        typer.echo(json.dumps([_summary(r) for r in rows], indent=2))
        return
    table = Table(title=f"simulations in {project.project_folder()}")
    for col in ("id", "name", "key", "state", "progress", "created", "ended"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = _STATE_STYLE.get(r.state, "")
        table.add_row(
            r.sim_id[:8],
            r.name,
            r.sim_key,
            f"[{style}]{r.state}[/]" if style else r.state,
            _progress(r),
            _fmt_time(r.created),
            _fmt_time(r.ended),
        )
    Console().print(table)


def _summary(row: Any) -> dict[str, Any]:
    return {
        k: getattr(row, k)
        for k in (
            "sim_id", "name", "sim_key", "state", "created", "started", "ended",
            "progress_done", "progress_total",
        )
    }  # fmt: skip


@sims_app.command("show")
def show_cmd(
    sim_id: Annotated[str, typer.Argument(help="Simulation id (a unique prefix is enough)")],
    project_dir: ProjectDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Shows one simulation: its row, status history, files and result."""
    from rich.console import Console
    from rich.table import Table

    from dbgym.project.api_calls import recorded

    project = _open(project_dir)
    with recorded(project, "cli.sims.show", {"sim_id": sim_id}):
        row = project.records.get(sim_id)
        statuses = project.records.statuses(row.sim_id)
        files = project.records.files(row.sim_id)
    if as_json:
        data = row.to_dict()
        data["statuses"] = [s.to_dict() for s in statuses]
        data["files"] = files
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console()
    head = Table(title=f"simulation {row.sim_id}", show_header=False)
    head.add_column("")
    head.add_column("", overflow="fold")
    for label, value in (
        ("name", row.name),
        ("key", row.sim_key),
        ("type", f"{row.sim_module_name}:{row.sim_type_name}"),
        ("state", row.state),
        ("progress", _progress(row)),
        ("created", _fmt_time(row.created)),
        ("started", _fmt_time(row.started)),
        ("ended", _fmt_time(row.ended)),
        ("pid", f"{row.pid} on {row.host}" if row.pid else "-"),
        ("folder", str(project.sim_folder(row.sim_id))),
        ("config", json.dumps(row.config)[:300] if row.config else "-"),
    ):
        head.add_row(label, str(value))
    if isinstance(row.result, dict):
        for k in ("baseline", "best_value", "improvement", "interrupted"):
            if k in row.result:
                head.add_row(f"result.{k}", str(row.result[k]))
    console.print(head)
    st = Table(title="status history")
    for col in ("time", "code", "subcode", "details"):
        st.add_column(col, overflow="fold")
    for s in statuses:
        st.add_row(_fmt_time(s.time), s.code.name, s.subcode.name, s.details)
    console.print(st)
    failed = [s for s in statuses if s.error_trace]
    if failed:
        console.print("[red]error trace:[/]")
        console.print(failed[-1].error_trace, markup=False, highlight=False)
    if files:
        ft = Table(title="files")
        for col in ("kind", "path", "rows", "schema"):
            ft.add_column(col)
        for f in files:
            ft.add_row(f["kind"], f["relpath"], str(f["rows"]), str(f["schema_version"]))
        console.print(ft)


@sims_app.command("start")
def start_cmd(
    key: Annotated[str, typer.Argument(help="Simulation key (dbgym sims list-keys: see docs)")],
    project_dir: ProjectDir = None,
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="The simulation's kwargs as a JSON object")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start it and return; it keeps running on its own")
    ] = False,
) -> None:
    """Starts a simulation of a registered or exported key in a child process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from dbgym.project.api_calls import recorded
    from dbgym.project.exporter import load_exported
    from dbgym.project.simulation import parse_kwargs
    from dbgym.project.tracker import SimulationTracker

    parsed = None if kwargs is None else parse_kwargs(kwargs, where="--kwargs")
    project = _open(project_dir)
    load_exported(project)
    args = {"key": key, "kwargs": parsed, "name": name, "detach": detach}
    with recorded(project, "cli.sims.start", args) as extra:
        tracker = SimulationTracker(project, max_concurrent=1)
        try:
            sim_id = tracker.start_sim(key, kwargs=parsed, name=name, tie_to_parent=not detach)
            extra["sim_id"] = sim_id
            if detach:
                typer.echo(sim_id)
                return
            progress = Progress(
                TextColumn(f"[bold]{key}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
            )  # fmt: skip
            task = progress.add_task(key, total=None, status="starting")
            try:
                with progress:
                    while not tracker.wait(sim_id, timeout=0.25):
                        row = project.records.get(sim_id)
                        last = project.records.statuses(sim_id, limit=1)
                        progress.update(
                            task,
                            completed=row.progress_done or 0,
                            total=row.progress_total,
                            status=last[0].details[:60] if last else "",
                        )
            except KeyboardInterrupt:
                tracker.cancel(sim_id)
                raise
        finally:
            if not detach:
                tracker.close()
    row = project.records.get(sim_id)
    typer.echo(f"simulation {sim_id}: {row.state}")
    if row.failed:
        last = project.records.statuses(sim_id, limit=1)
        from dbgym.errors import DbgymError

        raise DbgymError(
            f"simulation {sim_id} ended {row.state}: {last[0].details if last else ''}"
        )


@sims_app.command("cancel")
def cancel_cmd(
    sim_id: Annotated[str, typer.Argument(help="Simulation id (a unique prefix is enough)")],
    project_dir: ProjectDir = None,
) -> None:
    """Cancels a queued or running simulation (its servers are stopped)."""
    from dbgym.project.api_calls import recorded
    from dbgym.project.tracker import SimulationTracker

    project = _open(project_dir)
    with recorded(project, "cli.sims.cancel", {"sim_id": sim_id}):
        full = project.records.get(sim_id).sim_id
        with SimulationTracker(project) as tracker:
            stopped = tracker.cancel(full)
    row = project.records.get(full)
    typer.echo(f"simulation {full}: {row.state}" + ("" if stopped else " (had ended already)"))


@sims_app.command("delete")
def delete_cmd(
    sim_id: Annotated[str, typer.Argument(help="Simulation id (a unique prefix is enough)")],
    project_dir: ProjectDir = None,
) -> None:
    """Deletes a simulation that is not running: its rows and its sims/<id>/ folder."""
    from dbgym.project.api_calls import recorded

    project = _open(project_dir)
    with recorded(project, "cli.sims.delete", {"sim_id": sim_id}):
        full = project.records.delete(sim_id)
    typer.echo(f"deleted simulation {full}")


@sims_app.command("reconcile")
def reconcile_cmd(project_dir: ProjectDir = None) -> None:
    """Marks simulations whose process is gone force_stopped and cleans their servers."""
    from dbgym.project.api_calls import recorded
    from dbgym.project.manager import ProjectManager
    from dbgym.project.reconcile import reconcile

    project = ProjectManager(project_dir, reconcile=False)
    with recorded(project, "cli.sims.reconcile", {}) as extra:
        report = reconcile(project)
        extra["stopped"] = sorted(report.stopped)
    for sid, details in report.stopped.items():
        typer.echo(f"{sid}: {details}")
    for line in report.cleaned:
        typer.echo(f"cleaned {line}")
    for line in report.errors:
        typer.echo(f"error: {line}", err=True)
    if not report:
        typer.echo("nothing to reconcile")


@sims_app.command("export")
def export_cmd(
    sim_id: Annotated[str, typer.Argument(help="Simulation id (a unique prefix is enough)")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the copy into")],
    project_dir: ProjectDir = None,
) -> None:
    """Writes a self-contained copy of one simulation (its rows and files) to DIR."""
    from dbgym.project.api_calls import recorded

    project = _open(project_dir)
    with recorded(project, "cli.sims.export", {"sim_id": sim_id, "out": str(out)}):
        full = export_simulation(project, sim_id, out)
    typer.echo(f"exported simulation {full} to {out}")


def export_simulation(project: Any, sim_id: str, out: Path) -> str:
    """Copy `sim_id`'s rows (simulation, statuses, files index) into a new project at `out`
    and its folder into out/sims/<id>/. Returns the full id."""
    from dbgym.project.db import retry, write
    from dbgym.project.manager import ProjectManager

    row = project.records.get(sim_id)
    if out.exists() and any(out.iterdir()):
        raise InvalidArgumentError(f"--out {out}: the directory exists and is not empty")
    target = ProjectManager(out, reconcile=False)
    src = sqlite3.connect(f"file:{project.db_path()}?mode=ro", uri=True, timeout=30.0)

    def read(sql: str, key: str) -> tuple[list[str], list[Any]]:
        def once() -> tuple[list[str], list[Any]]:
            cur = src.execute(sql, (key,))
            return [d[0] for d in cur.description], cur.fetchall()

        return retry(once)

    def copy(dst: sqlite3.Connection) -> None:
        for table in ("simulations", "sim_status", "sim_files"):
            cols, data = read(f"SELECT * FROM {table} WHERE sim_id = ?", row.sim_id)
            marks = ", ".join("?" for _ in cols)
            dst.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)
        # its exported type, so the copy can start the same key again
        cols, data = read("SELECT * FROM sim_types WHERE key = ?", row.sim_key)
        marks = ", ".join("?" for _ in cols)
        dst.executemany(f"INSERT INTO sim_types ({', '.join(cols)}) VALUES ({marks})", data)

    try:
        write(target.records.conn, copy)  # one transaction, retried while locked
    finally:
        src.close()
    folder = project.sim_folder(row.sim_id)
    if folder.exists():
        shutil.copytree(folder, target.sim_folder(row.sim_id), dirs_exist_ok=True)
    target.close()
    return str(row.sim_id)
