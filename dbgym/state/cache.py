"""On-disk cache of built database states: snapshot-ready data directories.

Layout: `<root>/<key>/data` (a directory written by `PostgresInstance.export_datadir`, usable
as `PostgresInstance.launch(init_from=...)`) and `<root>/<key>/state.json` (what was built).
`key` names the state and the server version: `<name>-<params hash>-pg<server_version_num>`.
A data directory serves every server of its PostgreSQL major version (`find(..., major=)`),
never one of another major version.

Writes are atomic: an entry is built in `<root>/.<key>.tmp-<pid>-<start>-<rand>` and renamed
into place, so readers never see a half-written entry; a temp dir left by a killed process is
removed by the next writer (that pid with that start time no longer runs: a reused pid does
not keep it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dbgym.dbms.procs as procs

_TMP = re.compile(r"^\..+\.tmp-(\d+)-(?:(\d+)-)?[0-9a-f]+$")


def default_root() -> Path:
    """`$DBGYM_CACHE_DIR/states`, else `~/.cache/dbgym/states` (XDG_CACHE_HOME respected)."""
    base = os.environ.get("DBGYM_CACHE_DIR")
    if base:
        return Path(base) / "states"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dbgym" / "states"


def params_hash(params: dict[str, Any]) -> str:
    """Short stable hash of JSON-able parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Entry:
    """A complete cache entry."""

    path: Path
    meta: dict[str, Any]

    @property
    def datadir(self) -> Path:
        return self.path / "data"

    @property
    def server_version_num(self) -> int:
        return int(self.meta["server_version_num"])

    @property
    def major(self) -> int | None:
        """The PostgreSQL major version of the data directory (its PG_VERSION file), or
        None when that disagrees with the version the entry was built for."""
        try:
            on_disk = int((self.datadir / "PG_VERSION").read_text().strip())
        except (OSError, ValueError):
            return None
        return on_disk if on_disk == self.server_version_num // 10_000 else None


def _tmp_name(key: str) -> str:
    pid, started = procs.identity()
    return f".{key}.tmp-{pid}-{started or 0}-{secrets.token_hex(4)}"


class StateCache:
    """Entries under one root directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def key(self, name: str, params: dict[str, Any], server_version_num: int) -> str:
        return f"{name}-{params_hash(params)}-pg{server_version_num}"

    def get(self, key: str) -> Entry | None:
        """The complete entry `key`, or None."""
        path = self.root / key
        meta_file = path / "state.json"
        if not meta_file.is_file() or not (path / "data" / "PG_VERSION").is_file():
            return None
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            return None
        return Entry(path, meta) if isinstance(meta, dict) else None

    def entries(self) -> list[Entry]:
        """Every complete entry, by key."""
        if not self.root.is_dir():
            return []
        found = (
            self.get(p.name) for p in sorted(self.root.iterdir()) if not p.name.startswith(".")
        )
        return [e for e in found if e is not None]

    def find(self, name: str, params: dict[str, Any], *, major: int | None = None) -> list[Entry]:
        """Entries of `name` with `params`, newest server version first: of PostgreSQL
        `major` only (by the entry's version and its data directory's PG_VERSION), or of
        any version when `major` is None."""
        prefix = f"{name}-{params_hash(params)}-pg"
        found = []
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.name.startswith(prefix):
                    entry = self.get(p.name)
                    if entry is not None and (major is None or entry.major == major):
                        found.append(entry)
        return sorted(found, key=lambda e: e.server_version_num, reverse=True)

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """A fresh temp dir to build entry `key` in; renamed into place if the block succeeds
        (an entry another process finished first wins), removed on any error or Ctrl-C."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        tmp = self.root / _tmp_name(key)
        tmp.mkdir(mode=0o700)
        try:
            yield tmp
            try:
                os.rename(tmp, self.root / key)
            except OSError:
                if self.get(key) is None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def store(
        self, key: str, meta: dict[str, Any], write_datadir: Callable[[Path], object]
    ) -> Entry:
        """Builds entry `key`: `write_datadir(dest)` must create `dest` (a data directory)."""
        with self.writing(key) as tmp:
            write_datadir(tmp / "data")
            full = {**meta, "created": time.time()}
            (tmp / "state.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        entry = self.get(key)
        if entry is None:
            raise OSError(f"cache entry {self.root / key} missing right after it was written")
        return entry

    def clean_stale(self) -> list[Path]:
        """Removes temp dirs of writers that no longer run."""
        removed = []
        if self.root.is_dir():
            for p in self.root.iterdir():
                m = _TMP.match(p.name)
                started = int(m.group(2)) if m and m.group(2) and m.group(2) != "0" else None
                if m and not procs.is_alive(int(m.group(1)), started):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
        return removed

    def remove(self, key: str) -> bool:
        """Deletes entry `key` (rename first, so readers never see it half-deleted)."""
        path = self.root / key
        if not path.exists():
            return False
        doomed = self.root / _tmp_name(key)
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True
