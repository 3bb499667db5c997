"""reconcile(project): simulations whose process is gone are marked force_stopped + failed.

Run when a project is opened (`ProjectManager(..., reconcile=True)`), by `dbgym sims
reconcile`, and every heartbeat by a live `SimulationTracker` (for simulations other
processes started; its own children it watches directly). For each unfinished simulation:

- started on this host: its process is gone when its pid does not run, or runs with
  another start time (a reused pid: `dbgym.dbms.procs.is_alive(pid, start_time)`);
- started on another host: its heartbeat is older than `grace` seconds (a lost machine);
- not started yet (queued): the tracker that queued it heartbeats it; a heartbeat (or
  creation time) older than `grace` seconds means that tracker is gone.

A gone simulation gets, in one transaction (`Records.finish`, the first terminal writer
wins, so a simulation that ended meanwhile keeps its own end): is_done, failed,
force_stopped, and a FAIL/ERROR status row naming the pid and host. Then what it left is
cleaned: the PostgreSQL servers and containers it registered in the instance registry
(dbgym.dbms.instance_registry: entries whose owner is the dead pid) and any process left
in its process group (a simulation runs as the leader of a session of its own).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dbgym.dbms import instance_registry, procs
from dbgym.dbms.backend import backend_class
from dbgym.project.api_calls import api_call

if TYPE_CHECKING:
    from dbgym.project.manager import ProjectManager
    from dbgym.project.records import SimulationRow

__all__ = [
    "ReconcileReport",
    "clean_instances",
    "clean_process_group",
    "reconcile",
    "reconcile_quietly",
]

#: Seconds without a heartbeat after which a simulation on another host (or a queued one)
#: counts as gone.
DEFAULT_GRACE = 5.0


@dataclass
class ReconcileReport:
    """What `reconcile` did: the simulations it marked (id -> the status row's details)
    and what it cleaned (one line per server, container or process group)."""

    stopped: dict[str, str] = field(default_factory=dict)
    cleaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stopped or self.cleaned or self.errors)


def clean_instances(
    owner_pid: int, owner_start_time: int | None, *, force: bool = False
) -> list[str]:
    """Stop the servers/containers and remove the files of instance-registry entries owned
    by `owner_pid` (with `owner_start_time` when known); only entries whose owner is dead,
    unless `force` (a process cleaning its own). Returns one line per entry removed."""
    done: list[str] = []
    for path, entry in instance_registry.read_entries():
        if entry.get("owner_pid") != owner_pid:
            continue
        recorded = entry.get("owner_start_time")
        if owner_start_time is not None and recorded is not None and recorded != owner_start_time:
            continue  # another process that had the same pid
        if not force and instance_registry.owner_alive(entry):
            continue
        ident = f"{entry.get('id', path.stem)} ({entry.get('backend')}, {entry.get('workdir')})"
        try:
            actions = backend_class(str(entry.get("backend"))).cleanup_leftover(entry)
            instance_registry.remove_instance_files(entry)
            path.unlink(missing_ok=True)
        except Exception as exc:
            done.append(f"{ident}: cleanup failed: {exc}")
            continue
        done.append(f"{ident}: " + ", ".join([*actions, "files removed"]))
    return done


def clean_process_group(pid: int) -> str | None:
    """SIGKILL what is left of the process group led by `pid` (a simulation's session),
    once `pid` itself is gone. Only when no process has that pid at all: the kernel does not
    reuse a pid that still names a process group, so the members are the dead leader's."""
    if procs.start_time(pid) is not None:
        return None
    members = procs.group_members(pid)
    if not members:
        return None
    procs.kill_group(pid)
    return f"killed process group {pid}: pids {', '.join(map(str, members))}"


def _age(iso: str | None, now: datetime) -> float | None:
    if not iso:
        return None
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return (now - then).total_seconds()


def gone_reason(row: SimulationRow, *, grace: float, host: str, now: datetime) -> str | None:
    """Why `row`'s simulation is gone (the status row's details), or None if it may run."""
    if row.is_done:
        return None
    beat = _age(row.heartbeat, now)
    if row.pid is None or row.started is None:
        age = beat if beat is not None else _age(row.created, now)
        if age is not None and age > grace:
            return (
                f"force stopped: queued, but the tracker that queued it stopped heartbeating "
                f"{age:.1f} s ago (grace {grace:g} s)"
            )
        return None
    if row.host == host:
        if procs.is_alive(row.pid, row.pid_start_time):
            return None
        now_start = procs.start_time(row.pid)
        how = "gone" if now_start is None else f"gone (pid {row.pid} now runs another process)"
        return f"force stopped: pid {row.pid} on host {row.host} is {how}; signal unknown"
    if beat is not None and beat > grace:
        return (
            f"force stopped: pid {row.pid} on host {row.host} sent no heartbeat for "
            f"{beat:.1f} s (grace {grace:g} s)"
        )
    return None


def force_stop(project: ProjectManager, sim_id: str, details: str) -> bool:
    """Mark `sim_id` force_stopped + failed with a FAIL/ERROR row `details` (False if it
    had ended already)."""
    from dbgym.project.records import StatusCode, StatusSubcode

    return project.records.finish(
        sim_id,
        failed=True,
        force_stopped=True,
        status=(StatusCode.FAIL, StatusSubcode.ERROR, details, None),
    )


def clean_after(pid: int, pid_start_time: int | None) -> list[str]:
    """Everything a dead simulation process left on this host (servers, its group)."""
    cleaned = []
    with contextlib.suppress(OSError):
        group = clean_process_group(pid)
        if group is not None:
            cleaned.append(group)
    cleaned.extend(clean_instances(pid, pid_start_time))
    return cleaned


@api_call("project.reconcile")
def reconcile(
    project: ProjectManager, *, grace: float = DEFAULT_GRACE, exclude: Collection[str] = ()
) -> ReconcileReport:
    """Mark the project's gone simulations force_stopped + failed and clean what they left
    (see the module docstring); `exclude`: ids a caller watches itself."""
    return reconcile_quietly(project, grace=grace, exclude=exclude)


def reconcile_quietly(
    project: ProjectManager, *, grace: float = DEFAULT_GRACE, exclude: Collection[str] = ()
) -> ReconcileReport:
    """`reconcile` without an api_calls row (a tracker's monitor runs it every heartbeat)."""
    report = ReconcileReport()
    host = socket.gethostname()
    now = datetime.now(timezone.utc)
    for row in project.records.unfinished():
        if row.sim_id in exclude:
            continue
        reason = gone_reason(row, grace=grace, host=host, now=now)
        if reason is None:
            continue
        if force_stop(project, row.sim_id, reason):
            report.stopped[row.sim_id] = reason
        if row.pid is not None and row.host == host:
            try:
                report.cleaned.extend(clean_after(row.pid, row.pid_start_time))
            except Exception as exc:
                report.errors.append(f"{row.sim_id}: cleanup failed: {exc}")
    return report
