"""What a measurement ran on: the facts that make a simulation or a comparison reproducible.

- `host_facts()`: dbgym's version and git commit, Python and the versions of the
  dependencies that shape results, the CPU model, cores (and the cgroup CPU limit), memory
  (and the cgroup memory limit), kernel and OS. Cheap (file reads, no subprocess but one
  `git rev-parse` when dbgym runs from a checkout); computed once per process.
- `server_facts(conn, instance=None)`: `SELECT version()`, the server's version number and
  every setting (`pg_settings`: name -> setting with its unit), and for an instance it
  started, the backend with the server binary's SHA-256 (local) or the image id (docker).
- `file_digest(path)`: the hash recorded for workload and data files (and dumps).

Everything returned is JSON-able (str, int, float, bool, None, lists and dicts of them).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from dbgym.dbms.instance import PostgresInstance

#: Distributions whose versions are recorded (those installed; missing ones are skipped).
DEPENDENCIES = (
    "gymnasium",
    "numpy",
    "scipy",
    "psycopg",
    "pyarrow",
    "minari",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "docker",
)

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (its name and bytes), or of a directory's files (their relative
    names and bytes, in name order): the hash recorded for workload and data files, and
    the state cache's key of a dump."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for f in files:
        h.update(str(f.relative_to(root) if root.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the dbgym checkout this package runs from (with "-dirty" when the work
    tree has changes), or None for an installed wheel or when git is unavailable."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5.0,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5.0,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limits() -> dict[str, Any]:
    """cgroup v2 limits of this process (None when unlimited or unknown)."""
    out: dict[str, Any] = {"cpu_limit": None, "memory_limit_bytes": None}
    base = Path("/sys/fs/cgroup")
    try:
        quota, period = (base / "cpu.max").read_text().split()
        if quota != "max":
            out["cpu_limit"] = int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        mem = (base / "memory.max").read_text().strip()
        if mem != "max":
            out["memory_limit_bytes"] = int(mem)
    except (OSError, ValueError):
        pass
    return out


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in DEPENDENCIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def _host_facts() -> dict[str, Any]:
    from dbgym import __version__, core_version

    uname = platform.uname()
    return {
        "dbgym_version": __version__,
        "dbgym_core_version": core_version,
        "dbgym_commit": git_commit(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "dependencies": _versions(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "memory_bytes": _mem_total_bytes(),
        **_cgroup_limits(),
        "kernel": uname.release,
        "os": f"{uname.system} {uname.version}",
        "machine": uname.machine,
        "hostname": uname.node,
    }


def host_facts() -> dict[str, Any]:
    """The machine and software facts (see the module docstring); a fresh copy each call."""
    facts = dict(_host_facts())
    facts["dependencies"] = dict(facts["dependencies"])
    return facts


def server_facts(
    conn: psycopg.Connection[Any], instance: PostgresInstance | None = None
) -> dict[str, Any]:
    """The server's version and full settings through `conn`, and for `instance` (a server
    dbgym started) its backend and binary checksum or image id."""
    with conn.cursor() as cur:
        cur.execute("SELECT version(), current_setting('server_version_num')")
        row = cur.fetchone()
        assert row is not None
        version, version_num = str(row[0]), int(row[1])
        cur.execute("SELECT name, setting, unit FROM pg_settings ORDER BY name")
        settings = {
            str(name): f"{setting}{unit}" if unit and setting is not None else setting
            for name, setting, unit in cur.fetchall()
        }
    if not conn.autocommit:
        conn.rollback()
    facts: dict[str, Any] = {
        "version": version,
        "server_version_num": version_num,
        "settings": settings,
    }
    if instance is not None:
        facts.update(instance_facts(instance))
    return facts


def instance_facts(instance: PostgresInstance) -> dict[str, Any]:
    """Backend, and the server binary's SHA-256 (local) or the image name and id (docker)."""
    out: dict[str, Any] = {"backend": instance.backend}
    impl: Any = instance.backend_impl
    image = getattr(impl, "image", None)
    if image is not None:
        out["image"] = getattr(image, "name", None)
        out["image_id"] = getattr(image, "image_id", None)
    else:
        bin_dir = instance.bin_dir
        if bin_dir is not None and (bin_dir / "postgres").exists():
            out["server_binary"] = str(bin_dir / "postgres")
            out["server_binary_sha256"] = _binary_sha256(str(bin_dir / "postgres"))
    return out


@functools.lru_cache(maxsize=8)
def _binary_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
