"""Checks shared by the instance tests: is anything of an instance still around?"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbgym.dbms import instance_registry, procs


def processes_using(datadir: Path) -> list[int]:
    """Live pids whose command line names `datadir` (local postmasters)."""
    found = []
    for entry in os.scandir("/proc"):
        if (
            entry.name.isdigit()
            and str(datadir) in procs.cmdline(int(entry.name))
            and procs.is_alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def container_exists(container_id: str) -> bool:
    import docker.errors

    import docker

    try:
        docker.from_env().containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def leftovers(fields: dict[str, Any]) -> list[str]:
    """What of an instance (described by its registry fields) still exists."""
    left = []
    datadir = Path(fields["datadir"])
    pids = processes_using(datadir)
    if pids:
        left.append(f"processes {pids} using {datadir}")
    pid = fields.get("server_pid")
    if isinstance(pid, int) and procs.is_alive(pid, fields.get("server_start_time")):
        left.append(f"server pid {pid}")
    cid = fields.get("container_id")
    if isinstance(cid, str) and container_exists(cid):
        left.append(f"container {cid}")
    if Path(fields["workdir"]).exists():
        left.append(f"workdir {fields['workdir']}")
    if any(entry.get("id") == fields["id"] for _, entry in instance_registry.read_entries()):
        left.append(f"registry entry {fields['id']}")
    return left


def instance_fields(inst: Any) -> dict[str, Any]:
    """The registry fields of a live instance (what `leftovers` checks later)."""
    return {
        "id": inst.id,
        "workdir": str(inst.workdir),
        "datadir": str(inst.datadir),
        **inst.backend_impl.registry_fields(),
    }
