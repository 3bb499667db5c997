"""Finding PostgreSQL server binaries on the host (local backend, client tools).

Order (`search_dirs`, the one place that knows it): an explicit path > $DBGYM_PG_BIN >
`pg_config --bindir` of the pg_config on PATH > /usr/lib/postgresql/<version>/bin, highest
version first. Server binaries (`find_binaries`) and client programs
(`dbgym.dbms.client_tools.find_client`) are both looked up in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dbgym.errors import BackendUnavailableError

REQUIRED = ("initdb", "postgres")
DEBIAN_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding `initdb` and `postgres`, and the version they report."""

    bin_dir: Path
    source: str  # how it was found: "explicit", "DBGYM_PG_BIN", "pg_config", "debian"
    version: str  # e.g. "15.18"

    def tool(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def _version_of(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+(?:\.\d+)*)", out.stdout)
    if out.returncode != 0 or match is None:
        raise BackendUnavailableError(
            f"{bin_dir / 'postgres'} --version failed: {(out.stderr or out.stdout).strip()}"
        )
    return match.group(1)


def _check_dir(bin_dir: Path, source: str) -> PgBinaries:
    missing = [n for n in REQUIRED if not os.access(bin_dir / n, os.X_OK)]
    if missing:
        raise BackendUnavailableError(
            f"PostgreSQL binaries from {source} ({bin_dir}) lack executable {', '.join(missing)}"
        )
    return PgBinaries(bin_dir=bin_dir, source=source, version=_version_of(bin_dir))


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(out.stdout.strip())


def _debian_bindirs() -> list[Path]:
    if not DEBIAN_ROOT.is_dir():
        return []
    found = []
    for child in DEBIAN_ROOT.iterdir():
        if child.name.isdigit() and (child / "bin" / "postgres").exists():
            found.append(child)
    return [c / "bin" for c in sorted(found, key=lambda c: int(c.name), reverse=True)]


def search_dirs(explicit: Path | str | None = None) -> list[tuple[Path, str]]:
    """Directories PostgreSQL programs are looked for in, in order, each with how it was
    found ("explicit", "DBGYM_PG_BIN", "pg_config", "debian")."""
    dirs: list[tuple[Path, str]] = []
    if explicit is not None:
        dirs.append((Path(explicit), "explicit"))
    env = os.environ.get("DBGYM_PG_BIN")
    if env:
        dirs.append((Path(env), "DBGYM_PG_BIN"))
    bindir = _pg_config_bindir()
    if bindir is not None:
        dirs.append((bindir, "pg_config"))
    dirs.extend((d, "debian") for d in _debian_bindirs())
    return dirs


def find_binaries(explicit: Path | str | None = None) -> PgBinaries:
    """Locate server binaries; raises BackendUnavailableError listing what was tried. An
    explicit directory or $DBGYM_PG_BIN is used as given (no fallback)."""
    dirs = search_dirs(explicit)
    if dirs and dirs[0][1] in ("explicit", "DBGYM_PG_BIN"):
        return _check_dir(*dirs[0])
    tried = ["DBGYM_PG_BIN (unset)"]
    for bindir, source in dirs:
        if all((bindir / n).exists() for n in REQUIRED):
            return _check_dir(bindir, source)
        tried.append(f"{source} -> {bindir} (no initdb/postgres there)")
    if not any(source == "pg_config" for _, source in dirs):
        tried.append("pg_config on PATH (not found)")
    tried.append(f"{DEBIAN_ROOT}/*/bin (none)")
    raise BackendUnavailableError(
        "no PostgreSQL server binaries found; tried "
        + "; ".join(tried)
        + ". Install them (Debian: apt-get install postgresql-15) or set DBGYM_PG_BIN."
    )
