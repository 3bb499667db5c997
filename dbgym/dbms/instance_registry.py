"""Registry of started instances, and `dbgym clean` for what dead processes left behind.

Every instance writes a JSON file `<runtime>/instances/<id>.json` (runtime dir:
$DBGYM_RUNTIME_DIR, else /tmp/dbgym-<uid>) before it starts anything, rewrites it when
its server pid changes, and deletes it in close(). The file names the owner process
(pid and start time, so pid reuse is detected), the backend, the workdir and whatever
the backend needs to find its server again (`Backend.registry_fields`).

`clean()` only acts on entries whose owner is dead; instances of live processes (other
test runs, other notebooks) are never touched. `reap()` is its cheap part, run by every
launch (as Testcontainers' reaper does): the registry entries of dead owners and, for the
launching backend, its unregistered leftovers, within a time budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dbgym.dbms.procs as procs
from dbgym.dbms.backend import BACKENDS, Backend, backend_class
from dbgym.errors import BackendUnavailableError, DbgymError


def runtime_dir() -> Path:
    """Per-user directory for the registry (created 0700, must be ours)."""
    base = Path(os.environ.get("DBGYM_RUNTIME_DIR") or f"/tmp/dbgym-{os.getuid()}")
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = base.lstat()
    if st.st_uid != os.getuid() or not base.is_dir() or base.is_symlink():
        raise DbgymError(f"runtime dir {base} is not a directory owned by uid {os.getuid()}")
    instances = base / "instances"
    instances.mkdir(mode=0o700, exist_ok=True)
    return instances


#: Seconds a launch spends at most on dead owners' leftovers (checked between entries:
#: one entry's removal can take longer, up to 15 s for a server that ignores SIGQUIT).
REAP_BUDGET = 5.0


def owner_identity() -> dict[str, Any]:
    pid, started = procs.identity()
    return {"owner_pid": pid, "owner_start_time": started}


def write_entry(instance_id: str, data: dict[str, Any]) -> Path:
    """Atomically (re)write an instance's registry file."""
    directory = runtime_dir()
    path = directory / f"{instance_id}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{instance_id}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def remove_entry(instance_id: str) -> None:
    with contextlib.suppress(OSError):
        (runtime_dir() / f"{instance_id}.json").unlink()


def read_entries() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(runtime_dir().glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue  # being written or removed right now
    return out


def owner_alive(entry: dict[str, Any]) -> bool:
    pid = entry.get("owner_pid")
    return isinstance(pid, int) and procs.is_alive(pid, entry.get("owner_start_time"))


def remove_instance_files(entry: dict[str, Any]) -> None:
    """Remove what an instance created in its workdir (all of it if dbgym created it)."""
    workdir = entry.get("workdir")
    if not workdir:
        return
    root = Path(workdir)
    if entry.get("created_workdir"):
        shutil.rmtree(root, ignore_errors=True)
        return
    for name in entry.get("owned_paths", []):
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                target.unlink()


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)  # one line per leftover removed
    live: list[str] = field(default_factory=list)  # entries left alone (owner alive)
    errors: list[str] = field(default_factory=list)


def _clean_entries(report: CleanReport, deadline: float | None) -> None:
    """Remove what the registry entries of dead owners name (until `deadline`)."""
    for path, entry in read_entries():
        ident = f"{entry.get('id', path.stem)} ({entry.get('backend')}, {entry.get('workdir')})"
        if owner_alive(entry):
            report.live.append(f"{ident}: owner pid {entry.get('owner_pid')} is alive")
            continue
        if deadline is not None and time.monotonic() > deadline:
            report.errors.append(f"{ident}: left for later (out of time)")
            continue
        try:
            cls = backend_class(str(entry.get("backend")))
            actions = cls.cleanup_leftover(entry)
            remove_instance_files(entry)
            path.unlink(missing_ok=True)
            report.removed.append(f"{ident}: " + ", ".join([*actions, "files removed"]))
        except Exception as exc:  # e.g. docker's APIError: report it, go on with the rest
            report.errors.append(f"{ident}: {exc}")


def _clean_unregistered(report: CleanReport, cls: type[Backend]) -> None:
    try:
        report.removed.extend(cls.find_unregistered_leftovers())
    except Exception as exc:
        report.errors.append(f"{cls.name}: {exc}")


def clean() -> CleanReport:
    """Remove servers/containers/files of instances whose owner process is dead."""
    report = CleanReport()
    _clean_entries(report, None)
    for name in BACKENDS:
        try:
            cls = backend_class(name)
        except BackendUnavailableError:
            continue
        _clean_unregistered(report, cls)
    return report


def reap(backend: type[Backend] | None = None, budget: float = REAP_BUDGET) -> CleanReport:
    """The cheap part of `clean()`, for every launch: the leftovers of registry entries
    whose owner died, then `backend`'s unregistered ones (docker: labelled containers of
    dead owners), within about `budget` seconds; never raises (errors are reported)."""
    report = CleanReport()
    deadline = time.monotonic() + budget
    try:
        _clean_entries(report, deadline)
        if backend is not None and time.monotonic() < deadline:
            _clean_unregistered(report, backend)
    except Exception as exc:  # the runtime dir is unusable: the launch says so itself
        report.errors.append(str(exc))
    return report
