"""`dbgym sims`: list, show, start (foreground and detached), cancel, delete, reconcile,
export, each recorded in api_calls; real `dbgym` processes on a real project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dbgym.project.exporter import SimulationExporter
from dbgym.project.manager import ProjectManager
from dbgym.project.records import StatusCode, StatusSubcode
from tests.project_sims_fixture import Quick, Sleeper

DBGYM = [sys.executable, "-m", "dbgym"]
ROOT = Path(__file__).resolve().parent.parent


def _sims(project: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DBGYM, "sims", *args, "--project-dir", str(project)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_sims_commands_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    pm = ProjectManager(folder)
    SimulationExporter.prepare_for_export("cli-quick", Quick)
    SimulationExporter.prepare_for_export("cli-sleeper", Sleeper)
    SimulationExporter.export_sims(pm)

    # start in the foreground: waits, prints the state
    done = _sims(folder, "start", "cli-quick", "--kwargs", '{"posts": 5}', "--name", "five")
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout
    (quick,) = pm.records.list(key="cli-quick")
    assert quick.state == "done" and quick.name == "five" and quick.progress_done == 5

    # detached: returns its id at once; cancel stops it
    detached = _sims(folder, "start", "cli-sleeper", "--detach", "--kwargs", '{"seconds": 60}')
    assert detached.returncode == 0, detached.stderr
    sleeper_id = detached.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 60
    while pm.records.get(sleeper_id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pm.records.get(sleeper_id).state == "running"
    t0 = time.monotonic()
    cancelled = _sims(folder, "cancel", sleeper_id[:8])
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    row = pm.records.get(sleeper_id)
    assert row.state == "cancelled" and time.monotonic() - t0 < 30
    assert pm.records.statuses(sleeper_id)[-1].subcode == StatusSubcode.STOPPED

    # list and show, as tables and as JSON
    table = _sims(folder, "list")
    assert table.returncode == 0 and "cli-quick" in table.stdout and "cancelled" in table.stdout
    listed = json.loads(_sims(folder, "list", "--json").stdout)
    assert {r["sim_id"]: r["state"] for r in listed} == {
        quick.sim_id: "done",
        sleeper_id: "cancelled",
    }
    only = json.loads(_sims(folder, "list", "--json", "--state", "done").stdout)
    assert [r["sim_id"] for r in only] == [quick.sim_id]
    shown = json.loads(_sims(folder, "show", quick.sim_id[:8], "--json").stdout)
    assert shown["sim_id"] == quick.sim_id and shown["result"]["posts"] == 5
    assert [s["details"] for s in shown["statuses"]][-1] == "done"
    text = _sims(folder, "show", quick.sim_id)
    assert "status history" in text.stdout and "post 4" in text.stdout

    # export: a self-contained copy that opens as a project
    out = tmp_path / "copy"
    exported = _sims(folder, "export", quick.sim_id, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    copy = ProjectManager(out, reconcile=False)
    (copied,) = copy.records.list()
    assert copied.sim_id == quick.sim_id and copied.result == quick.result
    assert len(copy.records.statuses(quick.sim_id)) == len(pm.records.statuses(quick.sim_id))
    assert (copy.sim_folder(quick.sim_id) / "child.log").exists()
    assert [t["key"] for t in copy.records.sim_types()] == ["cli-quick"]  # its type, only
    again = _sims(out, "start", "cli-quick", "--kwargs", '{"posts": 2}')
    assert again.returncode == 0 and "done" in again.stdout, again.stderr

    # delete: rows and folder go
    deleted = _sims(folder, "delete", sleeper_id)
    assert deleted.returncode == 0, deleted.stderr
    assert not pm.sim_folder(sleeper_id).exists()
    assert [r.sim_id for r in pm.records.list()] == [quick.sim_id]

    # errors: unknown id, bad kwargs (caller mistakes: exit 2)
    unknown = _sims(folder, "show", "ffffffff")
    assert unknown.returncode == 2 and "no simulation 'ffffffff'" in unknown.stderr
    bad = _sims(folder, "start", "cli-quick", "--kwargs", "{nope")
    assert bad.returncode == 2 and "--kwargs: not JSON" in bad.stderr

    # every command was recorded
    names = [c["name"] for c in pm.records.api_calls()]
    for name in ("start", "cancel", "list", "show", "export", "delete"):
        assert f"cli.sims.{name}" in names, names
    failed = [c for c in pm.records.api_calls("cli.sims.show") if c["code"] == 1]
    assert failed and "no simulation" in failed[0]["details"]["outcome"]


def test_reconcile_marks_a_dead_simulation_force_stopped(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path)
    sid = pm.records.create_simulation(
        name="ghost", sim_key="k", config=None, start_kwargs=None, sim_type_name="T",
        sim_module_name="m",
    )  # fmt: skip
    dead = subprocess.Popen(["true"])
    dead.wait()
    pm.records.mark_started(sid, pid=dead.pid, pid_start_time=None, host=os.uname().nodename)
    pm.records.add_status(sid, StatusCode.INFO, details="running")
    proc = _sims(tmp_path, "reconcile")
    assert proc.returncode == 0, proc.stderr
    assert sid in proc.stdout and f"pid {dead.pid}" in proc.stdout
    row = pm.records.get(sid)
    assert row.state == "force_stopped" and row.failed
    assert "nothing to reconcile" in _sims(tmp_path, "reconcile").stdout
    first, second = pm.records.api_calls("cli.sims.reconcile")
    assert first["code"] == 0 and first["details"]["stopped"] == [sid]
    assert second["details"]["stopped"] == []
