"""DatabaseState: the database a simulation starts from, and its on-disk cache.

```python
s = DatabaseState.benchmark("tpch", scale=0.1, seed=15721)   # or "pgbench", scale=10
s = DatabaseState.from_dump("db.dump")                        # pg_dump custom/dir/tar/plain
s = DatabaseState.from_dsn("postgresql://...")                # copy of a live database
s.load_into(inst)          # builds it in a running PostgresInstance (progress bars)
inst = s.launch()          # a new PostgresInstance holding it: from the cache when built before
```

`launch` keeps built benchmark and dump states in a `StateCache` (dbgym/workload/state_cache.py),
keyed by the state's parameters and the server version: the first launch builds the database
and exports the data directory; later launches start from a copy of it (no regeneration).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbgym.benchmarks import pgbench, tpch
from dbgym.benchmarks.tpch import LoadReport
from dbgym.dbms.binaries import find_binaries
from dbgym.dbms.instance import PostgresInstance
from dbgym.errors import WorkloadError
from dbgym.progress import progress_bars
from dbgym.state.cache import Entry, StateCache
from dbgym.state.dump import copy_database, dump_format, restore_dump


def _hide_password(dsn: str) -> str:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def _file_digest(path: Path) -> str:
    """sha256 of a dump file, or of a dump directory's files (names and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _version_num(version: str) -> int:
    """'15.18' -> 150018 (server_version_num of PostgreSQL >= 10)."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]] + [0]
    return parts[0] * 10_000 + parts[1]


class DatabaseState:
    """A database to start from: a built-in benchmark, a pg_dump, or a live database."""

    def __init__(
        self, kind: str, name: str, params: dict[str, Any], cache_dir: Path | str | None
    ) -> None:
        self.kind = kind
        self.name = name
        self.params = params
        self.cache = StateCache(cache_dir)

    def __repr__(self) -> str:
        shown = _hide_password(self.name) if self.kind == "dsn" else self.name
        return f"DatabaseState({self.kind}={shown!r}, {self.params})"

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def benchmark(
        cls,
        name: str,
        *,
        scale: float = 1.0,
        seed: int = tpch.DEFAULT_SEED,
        keys: bool = True,
        indexes: bool = True,
        cache_dir: Path | str | None = None,
    ) -> DatabaseState:
        """A built-in benchmark database: "tpch" (scale factor, seed; `keys`: primary and
        foreign keys, `indexes`: secondary indexes) or "pgbench" (integer scale; `pgbench -i`)."""
        params: dict[str, Any]
        if name == "tpch":
            params = {
                "scale": tpch.check_scale(scale),
                "seed": int(seed),
                "keys": bool(keys),
                "indexes": bool(indexes),
            }
        elif name == "pgbench":
            params = {"scale": pgbench.check_scale(scale)}
        else:
            raise WorkloadError(f"unknown benchmark {name!r} (benchmarks: tpch, pgbench)")
        return cls("benchmark", name, params, cache_dir)

    @classmethod
    def from_dump(cls, path: Path | str, *, cache_dir: Path | str | None = None) -> DatabaseState:
        """The database of a pg_dump (custom, directory, tar or plain SQL format)."""
        p = Path(path).absolute()
        return cls("dump", str(p), {"format": dump_format(p)}, cache_dir)

    @classmethod
    def from_dsn(cls, dsn: str) -> DatabaseState:
        """A copy of the live database at `dsn` (pg_dump + pg_restore; never cached)."""
        if not isinstance(dsn, str) or not dsn:
            raise WorkloadError(f"from_dsn needs a libpq connection string, got {dsn!r}")
        return cls("dsn", dsn, {}, None)

    # -- building -------------------------------------------------------------------------
    def load_into(
        self, target: PostgresInstance | str, *, progress: bool = True, workers: int = 2
    ) -> LoadReport:
        """Builds this state in `target` (an instance, or a DSN) with progress bars."""
        if isinstance(target, PostgresInstance):
            dsn, bin_dir = target.dsn, target.bin_dir
        else:
            dsn, bin_dir = target, None
        with progress_bars(self.name if self.kind == "benchmark" else self.kind, progress) as bar:
            if self.kind == "benchmark" and self.name == "tpch":
                p = self.params
                return tpch.load(
                    dsn,
                    p["scale"],
                    p["seed"],
                    keys=p["keys"],
                    indexes=p["indexes"],
                    workers=workers,
                    progress=bar,
                )
            if self.kind == "benchmark":
                return pgbench.load(dsn, self.params["scale"], bin_dir=bin_dir, progress=bar)
            if self.kind == "dump":
                return restore_dump(dsn, self.name, bin_dir=bin_dir, progress=bar)
            return copy_database(self.name, dsn, bin_dir=bin_dir, progress=bar)

    def _cache_params(self) -> dict[str, Any] | None:
        if self.kind == "benchmark":
            return dict(self.params)
        if self.kind == "dump":
            return {**self.params, "sha256": _file_digest(Path(self.name))}
        return None

    def _cache_name(self) -> str:
        return self.name if self.kind == "benchmark" else "dump"

    def cached(self, server_version_num: int | None = None) -> Entry | None:
        """The cache entry of this state for a server version (any version when None)."""
        params = self._cache_params()
        if params is None:
            return None
        if server_version_num is None:
            found = self.cache.find(self._cache_name(), params)
            return found[0] if found else None
        return self.cache.get(self.cache.key(self._cache_name(), params, server_version_num))

    def launch(
        self, *, cache: bool = True, progress: bool = True, **launch_kw: Any
    ) -> PostgresInstance:
        """A new PostgresInstance (see `PostgresInstance.launch` for `launch_kw`) holding
        this state. With `cache`, a state built before for the same server version starts
        from a copy of its exported data directory; otherwise it is built and then exported
        to the cache (atomically). Knobs in `launch_kw` never end up in the cache."""
        if "init_from" in launch_kw:
            raise WorkloadError("DatabaseState.launch picks init_from itself; do not pass it")
        params = self._cache_params() if cache else None
        if params is None:
            return self._build(launch_kw, progress)
        entry = self.cached(self._expected_version(launch_kw))
        if entry is not None:
            return PostgresInstance.launch(init_from=entry.datadir, **launch_kw)
        knobs = launch_kw.pop("knobs", None)
        inst = self._build(launch_kw, progress)
        try:
            version = inst.server_version_num
            key = self.cache.key(self._cache_name(), params, version)
            meta = {
                "kind": self.kind,
                "name": self._cache_name(),
                "params": params,
                "server_version_num": version,
            }
            self.cache.store(key, meta, inst.export_datadir)
            if knobs:
                inst.apply_knobs(knobs)
        except BaseException:
            inst.close()
            raise
        return inst

    def _build(self, launch_kw: dict[str, Any], progress: bool) -> PostgresInstance:
        inst = PostgresInstance.launch(**launch_kw)
        try:
            self.load_into(inst, progress=progress)
        except BaseException:
            inst.close()
            raise
        return inst

    @staticmethod
    def _expected_version(launch_kw: dict[str, Any]) -> int | None:
        """server_version_num a launch with `launch_kw` will run, when knowable up front
        (local backend: the binaries' version); None means "any cached version"."""
        if launch_kw.get("backend", "local") != "local":
            return None
        return _version_num(find_binaries(launch_kw.get("bin_dir")).version)
