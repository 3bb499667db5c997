"""`dbgym doctor`, `dbgym instance smoke`, `dbgym clean` (the README's main job)."""

from __future__ import annotations

import subprocess
import sys

from dbgym.dbms.doctor import doctor
from dbgym.dbms.smoke import smoke


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbgym", *args], capture_output=True, text=True, timeout=300
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


def test_clean_cli_runs_and_leaves_live_instances() -> None:
    out = run_cli("clean")
    assert out.returncode == 0, out.stderr
    assert "removed" in out.stdout or "nothing to clean" in out.stdout
