"""Nothing is left behind: killed owners (dbgym clean), Ctrl-C, SIGTERM, plain exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from dbgym.dbms import instance_registry, procs
from dbgym.dbms.instance import default_workdir_base
from tests.conftest import wait_until
from tests.instance_checks import container_exists, leftovers, processes_using

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
import dbgym
from tests.instance_checks import instance_fields
inst = dbgym.PostgresInstance.launch(backend=sys.argv[1])
with inst.connect() as conn:
    conn.execute("SELECT 1")
print(json.dumps(instance_fields(inst)), flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)  # no close(): the atexit hook must do it
time.sleep(600)
"""


def spawn(backend: str, mode: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, backend, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def launched(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        _, err = child.communicate(timeout=30)
        pytest.fail(f"child did not launch an instance: {err[-2000:]}")
    fields: dict[str, Any] = json.loads(line)
    assert leftovers(fields), "the instance should be running now"
    return fields


def test_clean_removes_what_a_killed_process_left(backend: str) -> None:
    child = spawn(backend, "sleep")
    fields = launched(child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    # The owner is dead: its files and registry entry are still there (a local server
    # dies with its owner, a container stays until it is reaped)...
    assert Path(fields["datadir"], "PG_VERSION").exists()
    if backend == "docker":
        assert container_exists(fields["container_id"])
    report = instance_registry.clean()
    # ... and clean() removes them (unless another process's launch reaped them first)
    assert leftovers(fields) == []
    assert any(fields["id"] in line for line in report.removed) or not any(
        fields["id"] in line for line in report.live + report.errors
    ), report


def test_clean_leaves_live_instances_alone(backend: str) -> None:
    child = spawn(backend, "sleep")
    try:
        fields = launched(child)
        report = instance_registry.clean()
        assert not any(fields["id"] in line for line in report.removed)
        assert any(fields["id"] in line for line in report.live)
        remaining = leftovers(fields)
        assert any("registry entry" in x for x in remaining)
        assert Path(fields["datadir"], "PG_VERSION").exists()
        # SIGTERM: the child unwinds and closes its instance.
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert leftovers(fields) == []


def test_ctrl_c_leaves_nothing(backend: str) -> None:
    child = spawn(backend, "sleep")
    fields = launched(child)
    child.send_signal(signal.SIGINT)
    child.wait(timeout=60)
    assert leftovers(fields) == []


def test_exit_without_close_leaves_nothing(backend: str) -> None:
    child = spawn(backend, "exit")
    fields = launched(child)
    assert child.wait(timeout=60) == 0
    assert leftovers(fields) == []


def initdb_running(base: Path) -> bool:
    """An initdb process (local, or inside a container) works on a data directory under `base`."""
    for entry in os.scandir("/proc"):
        argv = procs.cmdline(int(entry.name)) if entry.name.isdigit() else []
        if argv and Path(argv[0]).name == "initdb" and any(str(base) in a for a in argv):
            return True
    return False


def test_ctrl_c_during_launch_leaves_nothing(backend: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="dbgym-sigint-", dir=default_workdir_base()))
    base.chmod(0o711)
    try:
        child = spawn(backend, "sleep", env={"DBGYM_WORKDIR_BASE": str(base)})
        # Interrupt while initdb runs (an event, not a delay): the launch is under way.
        wait_until(lambda: initdb_running(base) or child.poll() is not None, 60, "initdb to start")
        assert child.poll() is None, "the child ended before its launch could be interrupted"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "KeyboardInterrupt" in err and "launch" in err, err[-2000:]
        assert list(base.iterdir()) == []
        assert processes_using(base) == []
        mine = [e for _, e in instance_registry.read_entries() if e.get("owner_pid") == child.pid]
        assert mine == []
    finally:
        for pid in processes_using(base):
            procs.kill_group(os.getpgid(pid))
        shutil.rmtree(base, ignore_errors=True)
