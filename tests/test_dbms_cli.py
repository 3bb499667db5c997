"""`dbgym doctor`, `dbgym instance smoke`, `dbgym clean` (the README's main job): real
commands, real servers, a real owner killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from dbgym.dbms import procs
from dbgym.dbms.doctor import doctor
from dbgym.dbms.smoke import smoke
from tests.instance_checks import leftovers
from tests.test_instance_cleanup import launched, spawn


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbgym", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_doctor_reports_every_backend() -> None:
    reports = {r.backend: r for r in doctor()}
    assert set(reports) == {"local", "docker"}
    local = reports["local"]
    assert local.usable, local.problems
    assert any("PostgreSQL 15" in line for line in local.details)
    for report in reports.values():
        assert report.usable or report.problems  # never "unusable" without a reason
    out = run_cli("doctor")
    assert out.returncode == 0, out.stderr
    assert "local: usable" in out.stdout


def test_smoke_round_trip_on_local() -> None:
    lines: list[str] = []
    smoke("local", echo=lines.append)
    text = "\n".join(lines)
    assert "launched local PostgreSQL" in text
    assert "restarted=False" in text
    assert "after restore: count(*) = 1000, scratch gone, work_mem = 64MB" in text
    assert lines[-1].endswith("closed: server stopped, files removed")


def test_clean_cli_removes_a_dead_owners_instance_and_keeps_a_live_one(tmp_path: Path) -> None:
    # a registry of its own: no other process's launch or clean touches these instances
    env = {"DBGYM_RUNTIME_DIR": str(tmp_path / "runtime")}
    live, dead = spawn("local", "sleep", env=env), spawn("local", "sleep", env=env)
    try:
        kept, gone = launched(live), launched(dead)
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert Path(gone["workdir"]).exists()  # the dead owner left its files behind
        out = run_cli("clean", env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert [x for x in lines if x.startswith("removed") and gone["id"] in x], out.stdout
        assert [x for x in lines if x.startswith("kept") and kept["id"] in x], out.stdout
        assert leftovers(gone) == []
        assert Path(kept["datadir"], "PG_VERSION").exists()
        assert procs.is_alive(kept["server_pid"], kept["server_start_time"])  # still serving
    finally:
        live.terminate()
        live.wait(timeout=60)
    again = run_cli("clean", env=env)
    assert again.returncode == 0 and "nothing to clean" in again.stdout, again.stdout
