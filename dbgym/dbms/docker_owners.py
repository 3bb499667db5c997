"""Labels on dbgym's containers (instance, workdir, owner process) and the removal of
containers whose owner is gone, for `DockerBackend` and `dbgym clean`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import dbgym.dbms.procs as procs

LABEL_WORKDIR = "dbgym.workdir"
LABEL_INSTANCE = "dbgym.instance"
LABEL_OWNER_PID = "dbgym.owner_pid"
LABEL_OWNER_START = "dbgym.owner_start_time"
LABEL_OWNER_HOST = "dbgym.owner_host"
LABEL_BOOT_ID = "dbgym.boot_id"
LABEL_ROLE = "dbgym.role"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner_labels() -> dict[str, str]:
    pid, started = procs.identity()
    return {
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_START: str(started),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_BOOT_ID: _boot_id(),
    }


def owner_dead(labels: dict[str, str]) -> bool:
    """True only when the labels prove the owner process (on this machine) is gone."""
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return False
    if labels.get(LABEL_BOOT_ID) and labels.get(LABEL_BOOT_ID) != _boot_id():
        return True  # rebooted since: every process of that boot is gone
    try:
        pid = int(labels[LABEL_OWNER_PID])
    except (KeyError, ValueError):
        return False
    start = labels.get(LABEL_OWNER_START)
    return not procs.is_alive(pid, int(start) if start and start.isdigit() else None)


def _remove(container: Any) -> bool:
    """Remove a container; False if another process (a concurrent reaper) got there first."""
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # its removal is already in progress
            return False
        raise
    return True


def remove_instance_containers(client: Any, tag: str, workdir: str) -> list[str]:
    """Remove the containers of one instance (its tag and workdir labels)."""
    done = []
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={tag}"}):
        if c.labels.get(LABEL_WORKDIR) == workdir and _remove(c):
            done.append(f"removed container {c.name}")
    return done


def remove_orphans(client: Any) -> list[str]:
    """Remove dbgym containers whose owner process (per their labels) is dead."""
    done = []
    for c in client.containers.list(all=True, filters={"label": LABEL_OWNER_PID}):
        if owner_dead(c.labels) and _remove(c):
            done.append(
                f"container {c.name} ({c.labels.get(LABEL_WORKDIR)}): owner pid "
                f"{c.labels.get(LABEL_OWNER_PID)} is dead, removed"
            )
    return done
