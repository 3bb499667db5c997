"""WorkloadSpec: where a workload comes from, as a typed, serializable value.

Three kinds:

- `LogWorkload` ("log": a PostgreSQL server log: path, format, log_line_prefix, lenient);
- `SqlWorkload` ("sql": a .sql file or a directory of them);
- `BenchmarkWorkload` ("benchmark": a built-in benchmark with its parameters; defined with
  the benchmark registry in dbgym/benchmarks/base.py).

Every kind carries `sample`: the samples drawn from it, in order (each `Sample(n, seed)`).
`Workload.from_spec(spec)` reads the source and draws the same samples again, which gives
the same statements (sampling is deterministic for a seed). `Workload.spec` is the spec of a
workload; `WorkloadSpec.from_json` decodes any kind.

A spec names a source; it does not hold a digest of a log's content (hashing a multi-GB log
is not cheap), so a log rewritten in place gives another workload for the same spec.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import dbgym._core as _core
from dbgym.errors import SpecError
from dbgym.spec import Spec, kind_registry

LogFormat = Literal["stderr", "csvlog", "jsonlog"]

#: Logs at least this big show a progress bar while they are read (progress=None).
PROGRESS_MIN_BYTES = 64 << 20

W = TypeVar("W", bound="WorkloadSpec")


@dataclass(frozen=True)
class Sample(Spec):
    """`n` statements drawn without replacement with `seed` (see `Workload.sample`)."""

    n: int
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 0:
            raise SpecError(f"n: a sample size must be >= 0, got {self.n}", key="n")
        if not 0 <= self.seed < 2**64:
            raise SpecError(f"seed: must be in [0, 2**64), got {self.seed}", key="seed")


@dataclass(frozen=True, kw_only=True)
class WorkloadSpec(Spec, abc.ABC):
    """A workload's source, and the samples drawn from it (see the module docstring)."""

    kinds = kind_registry(
        "workload kind",
        {
            "log": "dbgym.workload.spec:LogWorkload",
            "sql": "dbgym.workload.spec:SqlWorkload",
            "benchmark": "dbgym.benchmarks.base:BenchmarkWorkload",
        },
    )

    sample: tuple[Sample, ...] = ()

    @property
    @abc.abstractmethod
    def source(self) -> str:
        """A short description of the source: a path, or "benchmark:<name>"."""

    @abc.abstractmethod
    def read(
        self, *, threads: int | None = None, progress: bool | None = None
    ) -> tuple[_core.Trace, _core.ParseStats | None]:
        """The source's trace before sampling, and the parse statistics of a log."""

    def trace(
        self, *, threads: int | None = None, progress: bool | None = None
    ) -> tuple[_core.Trace, _core.ParseStats | None]:
        """The trace this spec stands for: the source with every sample drawn again."""
        trace, stats = self.read(threads=threads, progress=progress)
        for s in self.sample:
            trace = trace.sample(s.n, s.seed)
        return trace, stats

    def sampled(self: W, n: int, seed: int = 0) -> W:
        """This spec with one more sample drawn."""
        return self.replace(sample=(*self.sample, Sample(n, seed)))


@dataclass(frozen=True)
class LogWorkload(WorkloadSpec):
    """A PostgreSQL server log. format: None = detected from the content; log_line_prefix:
    the server's setting for stderr logs (None = detected); lenient: skip malformed lines."""

    kind: ClassVar[str] = "log"

    path: str
    format: LogFormat | None = None
    log_line_prefix: str | None = None
    lenient: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise SpecError("path: must name a log file, got ''", key="path")

    @property
    def source(self) -> str:
        return self.path

    def read(
        self, *, threads: int | None = None, progress: bool | None = None
    ) -> tuple[_core.Trace, _core.ParseStats | None]:
        from dbgym.jobs import run_job  # rich is imported only to read a log

        p = Path(self.path)
        show = progress
        if show is None:
            try:
                show = p.stat().st_size >= PROGRESS_MIN_BYTES
            except OSError:
                show = False
        job = _core.parse_log_start(
            p,
            format=self.format,
            log_line_prefix=self.log_line_prefix,
            lenient=self.lenient,
            threads=threads or 0,
        )
        trace, stats = run_job(job, title="reading", progress=show).result()
        return trace, stats


@dataclass(frozen=True)
class SqlWorkload(WorkloadSpec):
    """A `.sql` file (`;`-separated statements) or a directory of `*.sql` files (natural
    file-name order), as one session without timing."""

    kind: ClassVar[str] = "sql"

    path: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise SpecError("path: must name a .sql file or directory, got ''", key="path")

    @property
    def source(self) -> str:
        return self.path

    def read(
        self, *, threads: int | None = None, progress: bool | None = None
    ) -> tuple[_core.Trace, _core.ParseStats | None]:
        return _core.parse_sql(Path(self.path)), None
