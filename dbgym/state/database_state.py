"""DatabaseState: the database a simulation starts from, and its on-disk cache.

```python
s = DatabaseState.benchmark("tpch", scale=0.1, seed=15721)   # or "pgbench", scale=10
s = DatabaseState.from_dump("db.dump")                        # pg_dump custom/dir/tar/plain
s = DatabaseState.from_dsn("postgresql://...")                # copy of a live database
s = DatabaseState.from_spec(spec)                             # any StateSpec (e.g. from JSON)
s.spec                     # the StateSpec: JSON, key(), pickles; never a password
s.load_into(inst)          # builds it in a running PostgresInstance (progress bars)
inst = s.launch()          # a new PostgresInstance holding it: from the cache when built before
inst = s.launch(InstanceSpec(backend="docker", knobs={"work_mem": "64MB"}))
```

`launch` keeps built benchmark and dump states in a `StateCache` (dbgym/state/cache.py),
keyed by the state's parameters and the server version: the first launch builds the database
and exports the data directory; later launches of a server of the same PostgreSQL major
version start from a copy of it (no regeneration). The major version comes from the backend
before anything starts (`InstanceSpec.server_major`: the local binaries, the docker image's
label); when a backend cannot tell, the state is built afresh.
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

from dbgym.benchmarks import get as get_benchmark
from dbgym.dbms.instance import PostgresInstance
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import InvalidArgumentError
from dbgym.progress import progress_bars
from dbgym.state.cache import Entry, StateCache
from dbgym.state.report import LoadReport
from dbgym.state.spec import DsnState, DumpState, StateSpec, split_password
from dbgym.types import Target, target_dsn

#: The keywords `launch` took before it took an InstanceSpec (still accepted, deprecated).
_LEGACY_INSTANCE_KW = {f.name for f in fields(InstanceSpec)}


class DatabaseState:
    """A database to start from: a `StateSpec` (a built-in benchmark, a pg_dump, or a live
    database) plus where its built data directories are cached."""

    def __init__(
        self,
        spec: StateSpec,
        cache_dir: Path | str | None = None,
        *,
        source_password: str | None = None,
    ) -> None:
        if not isinstance(spec, StateSpec):
            raise InvalidArgumentError(
                f"DatabaseState needs a StateSpec, got {type(spec).__name__}"
            )
        self._spec = spec
        self._source_password = source_password
        self.cache = StateCache(cache_dir)

    @property
    def spec(self) -> StateSpec:
        """What this state is (serializable; never holds a password)."""
        return self._spec

    @property
    def kind(self) -> str:
        """ "benchmark", "dump" or "dsn"."""
        return self._spec.kind

    @property
    def name(self) -> str:
        """The benchmark name, the dump path, or the DSN (without its password)."""
        return self._spec.name

    @property
    def params(self) -> dict[str, Any]:
        """The state's parameters (a benchmark's; a dump's format; {} for a DSN)."""
        data = self._spec.to_dict()
        if self.kind == "benchmark":
            return dict(data["params"])
        return {"format": data["format"]} if self.kind == "dump" else {}

    def __repr__(self) -> str:
        secret = ", password=***" if self._source_password is not None else ""
        return f"DatabaseState({self._spec!r}{secret})"

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: StateSpec, *, cache_dir: Path | str | None = None) -> DatabaseState:
        """The state `spec` describes (e.g. `StateSpec.from_json(text)`)."""
        return cls(spec, cache_dir)

    @classmethod
    def benchmark(
        cls, name: str, *, cache_dir: Path | str | None = None, **params: Any
    ) -> DatabaseState:
        """A built-in benchmark database with its state parameters: "tpch" (scale, seed;
        `keys`: primary and foreign keys, `indexes`: secondary indexes) or "pgbench"
        (integer scale; `pgbench -i`). See `dbgym.benchmarks.get(name).params`."""
        return cls(get_benchmark(name).state(**params), cache_dir)

    @classmethod
    def from_dump(cls, path: Path | str, *, cache_dir: Path | str | None = None) -> DatabaseState:
        """The database of a pg_dump (custom, directory, tar or plain SQL format)."""
        return cls(DumpState.of(path), cache_dir)

    @classmethod
    def from_dsn(cls, dsn: str) -> DatabaseState:
        """A copy of the live database at `dsn` (pg_dump + pg_restore; never cached). A
        password in `dsn` is kept by this object only, out of its spec."""
        if not isinstance(dsn, str) or not dsn:
            raise InvalidArgumentError("from_dsn needs a libpq connection string")
        bare, password = split_password(dsn)
        return cls(DsnState(bare), None, source_password=password)

    # -- building -------------------------------------------------------------------------
    def load_into(
        self, target: Target, *, progress: bool | None = None, workers: int = 2
    ) -> LoadReport:
        """Builds this state in `target` (an instance, or a DSN) with progress bars
        (`progress`; None: when stderr is a terminal)."""
        bin_dir = target.bin_dir if isinstance(target, PostgresInstance) else None
        with progress_bars(self._spec.title, progress) as bar:
            return self._spec.load_into(
                target_dsn(target),
                bin_dir=bin_dir,
                workers=workers,
                on_progress=bar,
                source_password=self._source_password,
            )

    def cached(
        self, server_version_num: int | None = None, *, major: int | None = None
    ) -> Entry | None:
        """The cache entry of this state: for exactly `server_version_num`, or else the
        newest one of PostgreSQL `major`, or else the newest one of any version."""
        name, params = self._spec.cache_name(), self._spec.cache_params()
        if name is None or params is None:
            return None
        if server_version_num is not None:
            return self.cache.get(self.cache.key(name, params, server_version_num))
        found = self.cache.find(name, params, major=major)
        return found[0] if found else None

    def launch(
        self,
        instance: InstanceSpec | None = None,
        *,
        workdir: Path | str | None = None,
        cache: bool = True,
        progress: bool | None = None,
        **legacy: Any,
    ) -> PostgresInstance:
        """A new server of `instance` (default: `InstanceSpec()`, a local server) holding
        this state, in `workdir` (default: a new temp dir).

        With `cache`, a state built before for a server of the same PostgreSQL major version
        starts from a copy of its exported data directory; otherwise it is built and then
        exported to the cache (atomically). The instance's knobs never end up in the cache.

        The keywords of `PostgresInstance.launch` (backend, image, knobs, ...) are still
        accepted in place of `instance`, with a DeprecationWarning, for one release.
        """
        spec = self._instance_spec(instance, legacy)
        name, params = (
            (self._spec.cache_name(), self._spec.cache_params()) if cache else (None, None)
        )
        if name is None or params is None:
            return self._build(spec, workdir, progress)
        major = spec.server_major()
        entry = self.cached(major=major) if major is not None else None
        if entry is not None:
            return spec.launch(workdir=workdir, init_from=entry.datadir)
        inst = self._build(spec.replace(knobs={}), workdir, progress)
        try:
            version = inst.server_version_num
            key = self.cache.key(name, params, version)
            meta = {
                "kind": self.kind,
                "name": name,
                "params": params,
                "server_version_num": version,
                "spec": self._spec.to_dict(),
            }
            self.cache.store(key, meta, inst.export_datadir)
            if spec.knobs:
                inst.apply_knobs(dict(spec.knobs))
        except BaseException:
            inst.close()
            raise
        return inst

    def _build(
        self, spec: InstanceSpec, workdir: Path | str | None, progress: bool | None
    ) -> PostgresInstance:
        inst = spec.launch(workdir=workdir)
        try:
            self.load_into(inst, progress=progress)
        except BaseException:
            inst.close()
            raise
        return inst

    @staticmethod
    def _instance_spec(instance: InstanceSpec | None, legacy: dict[str, Any]) -> InstanceSpec:
        if "init_from" in legacy:
            raise InvalidArgumentError(
                "DatabaseState.launch picks init_from itself (the cached data directory); "
                "do not pass it"
            )
        unknown = sorted(set(legacy) - _LEGACY_INSTANCE_KW)
        if unknown:
            raise InvalidArgumentError(
                f"DatabaseState.launch got unexpected keyword {unknown[0]!r} "
                f"(give the server's options as an InstanceSpec)"
            )
        if not legacy:
            return instance if instance is not None else InstanceSpec()
        if instance is not None:
            raise InvalidArgumentError(
                "DatabaseState.launch takes an InstanceSpec or the old keywords "
                f"({', '.join(sorted(legacy))}), not both"
            )
        warnings.warn(
            "DatabaseState.launch(**keywords) is deprecated: pass "
            f"InstanceSpec({', '.join(f'{k}=...' for k in sorted(legacy))})",
            DeprecationWarning,
            stacklevel=3,
        )
        values: dict[str, Any] = {
            k: str(v) if k == "bin_dir" and v is not None else v for k, v in legacy.items()
        }
        return InstanceSpec(**values)
