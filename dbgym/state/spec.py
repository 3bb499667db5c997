"""StateSpec: the database a simulation starts from, as a typed, serializable value.

Three kinds, one protocol (`load_into`, `cache_name`, `cache_params`):

- `BenchmarkState` ("benchmark": a built-in benchmark with its parameters; defined with the
  benchmark registry in dbgym/benchmarks/base.py, and made by `dbgym.benchmarks.get(name)`);
- `DumpState` ("dump": a pg_dump in any format, by path);
- `DsnState` ("dsn": a copy of a live database).

`StateSpec.from_json(text)` decodes any of them (the "kind" picks the class). A spec never
holds a password: `DsnState` refuses a DSN with one. The password of the source database
comes from libpq's usual places (PGPASSWORD, PGPASSFILE, ~/.pgpass), or is given at run
time to `load_into(source_password=...)` (what `DatabaseState.from_dsn` does with a DSN that
has one), so no JSON, key or repr ever carries it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbgym.errors import SpecError
from dbgym.progress import ProgressFn
from dbgym.provenance import file_digest
from dbgym.spec import Spec, kind_registry
from dbgym.state.dump import copy_database, dump_format, restore_dump
from dbgym.state.report import LoadReport
from dbgym.types import Target, target_dsn

DumpFormat = Literal["custom", "directory", "tar", "plain"]


@dataclass(frozen=True)
class StateSpec(Spec, abc.ABC):
    """A database to start from (see the module docstring for the kinds)."""

    kinds = kind_registry(
        "state kind",
        {
            "benchmark": "dbgym.benchmarks.base:BenchmarkState",
            "dump": "dbgym.state.spec:DumpState",
            "dsn": "dbgym.state.spec:DsnState",
        },
    )

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """What the state is built from: a benchmark name, a dump path, a DSN."""

    @property
    def title(self) -> str:
        """The progress bars' title while the state loads."""
        return self.kind

    def cache_name(self) -> str | None:
        """The name of the state's entries in a StateCache; None: never cached."""
        return None

    def cache_params(self) -> dict[str, Any] | None:
        """What identifies the built database in a StateCache (with `cache_name`); may read
        files (a dump's digest). None: never cached."""
        return None

    @abc.abstractmethod
    def load_into(
        self,
        target: Target,
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
        source_password: str | None = None,
    ) -> LoadReport:
        """Builds the state in the (empty) database of `target` (a DSN, or anything with a
        `.dsn`); `on_progress(done, totals)` is called as it goes. `bin_dir`: client binaries
        matching the server; `workers`: parallel loaders where the kind has them;
        `source_password`: the password of a source server (DSN states only)."""


@dataclass(frozen=True)
class DumpState(StateSpec):
    """The database of a pg_dump at `path` (custom, directory, tar or plain SQL; None:
    detected when loaded). Cached by the dump's content (sha256), computed at cache lookup:
    the spec names the dump, the cache key says which content was built."""

    kind: ClassVar[str] = "dump"

    path: str
    format: DumpFormat | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise SpecError("path: must name a dump, got ''", key="path")

    @classmethod
    def of(cls, path: Path | str) -> DumpState:
        """The dump at `path` (made absolute), its format detected now (WorkloadError if the
        file is missing or not a dump)."""
        p = Path(path).absolute()
        return cls(str(p), cast("DumpFormat", dump_format(p)))

    @property
    def name(self) -> str:
        return self.path

    def cache_name(self) -> str:
        return "dump"

    def cache_params(self) -> dict[str, Any]:
        p = Path(self.path)
        return {"format": self.format or dump_format(p), "sha256": file_digest(p)}

    def load_into(
        self,
        target: Target,
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
        source_password: str | None = None,
    ) -> LoadReport:
        return restore_dump(target, self.path, bin_dir=bin_dir, on_progress=on_progress)


def split_password(dsn: str) -> tuple[str, str | None]:
    """(the DSN without its password, the password or None); SpecError if `dsn` does not
    parse (the message never quotes the DSN, which may hold a password)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SpecError(
            "dsn: not a libpq connection string or URI (e.g. 'host=h port=5432 dbname=d user=u')",
            key="dsn",
        ) from None
    password = params.pop("password", None)
    return make_conninfo("", **params), (None if password is None else str(password))


@dataclass(frozen=True)
class DsnState(StateSpec):
    """A copy of the live database at `dsn` (pg_dump + pg_restore; never cached).

    `dsn` must not hold a password (SpecError): give it in PGPASSWORD, PGPASSFILE or
    ~/.pgpass, or to `DatabaseState.from_dsn`, which keeps it out of the spec."""

    kind: ClassVar[str] = "dsn"

    dsn: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.dsn:
            raise SpecError("dsn: must be a libpq connection string, got ''", key="dsn")
        _, password = split_password(self.dsn)
        if password is not None:
            raise SpecError(
                "dsn: holds a password, which a spec never stores; give it in PGPASSWORD, "
                "PGPASSFILE or ~/.pgpass (or use DatabaseState.from_dsn, which keeps it aside)",
                key="dsn",
            )

    @property
    def name(self) -> str:
        return self.dsn

    def load_into(
        self,
        target: Target,
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
        source_password: str | None = None,
    ) -> LoadReport:
        source = self.dsn
        if source_password is not None:
            source = make_conninfo(source, password=source_password)
        return copy_database(source, target_dsn(target), bin_dir=bin_dir, on_progress=on_progress)
