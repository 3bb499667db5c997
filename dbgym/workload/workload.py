"""`Workload`: a workload trace (statements, sessions, templates) held by the Rust core.

Sources: PostgreSQL server logs (`from_log`: stderr, csvlog, jsonlog), SQL files or
directories (`from_sql`), built-in benchmarks (`benchmark`), or any `WorkloadSpec`
(`from_spec`). `spec` says where a workload came from (source and samples drawn), so
`Workload.from_spec(w.spec)` rebuilds the same statements. Per-statement data is exposed
as numpy arrays (`template_ids()`, `session_ids()`, `timestamps_us()`, `durations_us()`);
`trace` is the `dbgym._core.Trace` that `dbgym.replay` consumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np
import numpy.typing as npt

import dbgym._core as _core
from dbgym.benchmarks import get as get_benchmark
from dbgym.errors import TraceParseError, WorkloadError
from dbgym.workload.spec import LogFormat, LogWorkload, SqlWorkload, WorkloadSpec

LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)


@dataclass(frozen=True)
class TemplateInfo:
    """A statement template: the statement with its constants as `$1, $2, ...`.

    A list of constants only after IN or ARRAY is one placeholder (`in ($1 /*, ... */)`),
    so from the first such list on, `$k` is no longer the k-th of the statement's constants.
    """

    id: int
    text: str
    count: int


@dataclass(frozen=True)
class SessionInfo:
    """A client session of the trace (a logged backend connection)."""

    index: int
    id: str
    user: str
    database: str


@dataclass(frozen=True)
class StatementInfo:
    """One statement: its text as executed (`$n` placeholders for the extended protocol, with
    the values in `params`), when it started, and its logged duration if any."""

    index: int
    session: int
    timestamp_us: int
    template_id: int
    sql: str
    params: tuple[str | None, ...]
    duration_us: int | None


class Workload:
    """A sequence of statements grouped in sessions, each with a template id."""

    def __init__(
        self,
        trace: _core.Trace,
        *,
        spec: WorkloadSpec | None = None,
        stats: _core.ParseStats | None = None,
        source: str | None = None,
    ) -> None:
        if not isinstance(trace, _core.Trace):
            raise WorkloadError(f"Workload needs a dbgym._core.Trace, got {type(trace).__name__}")
        if spec is not None and not isinstance(spec, WorkloadSpec):
            raise WorkloadError(f"spec must be a WorkloadSpec, got {type(spec).__name__}")
        self._trace = trace
        self._spec = spec
        self._source = source
        #: What reading the log saw (format, bytes, records, skipped lines); None otherwise.
        self.stats = stats

    @property
    def spec(self) -> WorkloadSpec | None:
        """Where this workload came from (source and samples), as a serializable spec;
        None for a workload built from a trace by hand or by `subset`."""
        return self._spec

    @property
    def source(self) -> str | None:
        """The source's path, or "benchmark:<name>" (derived from `spec`; kept for one
        release, use `spec`)."""
        return self._spec.source if self._spec is not None else self._source

    # -- sources ----------------------------------------------------------------------
    @classmethod
    def from_spec(
        cls, spec: WorkloadSpec, *, threads: int | None = None, progress: bool | None = None
    ) -> Workload:
        """The workload `spec` describes: its source read again and its samples drawn again
        (same seeds, same statements). threads/progress: as for `from_log`."""
        if not isinstance(spec, WorkloadSpec):
            raise WorkloadError(f"from_spec needs a WorkloadSpec, got {type(spec).__name__}")
        if threads is not None and threads < 1:
            raise WorkloadError(f"threads must be at least 1, got {threads}")
        trace, stats = spec.trace(threads=threads, progress=progress)
        return cls(trace, spec=spec, stats=stats)

    @classmethod
    def from_log(
        cls,
        path: str | os.PathLike[str],
        format: str | None = None,
        log_line_prefix: str | None = None,
        lenient: bool = False,
        threads: int | None = None,
        progress: bool | None = None,
    ) -> Workload:
        """Read a PostgreSQL server log.

        format: "stderr", "csvlog" or "jsonlog"; detected from the content when None.
        log_line_prefix: the server's setting, for stderr logs (detected when None among
            common prefixes: PostgreSQL's and Debian's defaults, pgBadger's...).
        lenient: skip malformed lines and count them (`skipped_lines`) instead of raising
            TraceParseError. threads: parser threads (None = all cores).
        progress: show a progress bar (None = only for logs of 64 MiB or more).
        """
        if format is not None and format not in LOG_FORMATS:
            raise TraceParseError(f"unknown log format {format!r}: use one of {LOG_FORMATS}")
        spec = LogWorkload(
            str(Path(path).absolute()),
            format=cast("LogFormat | None", format),  # checked against LOG_FORMATS above
            log_line_prefix=log_line_prefix,
            lenient=lenient,
        )
        return cls.from_spec(spec, threads=threads, progress=progress)

    @classmethod
    def from_sql(cls, path: str | os.PathLike[str]) -> Workload:
        """Read a `.sql` file (`;`-separated statements) or a directory of `*.sql` files
        (natural file-name order), as one session without timing."""
        return cls.from_spec(SqlWorkload(str(Path(path).absolute())))

    @classmethod
    def benchmark(cls, name: str, **kw: Any) -> Workload:
        """A built-in benchmark's workload with its workload parameters: "tpch" (scale,
        seed, streams, ...) or "pgbench" (script, scale, clients, transactions, protocol,
        ...); see `dbgym.benchmarks.get(name).params`."""
        return cls.from_spec(get_benchmark(name).workload(**kw))

    # -- contents ---------------------------------------------------------------------
    @property
    def trace(self) -> _core.Trace:
        """The Rust trace (what `dbgym.replay` runs)."""
        return self._trace

    @property
    def skipped_lines(self) -> int:
        """Malformed lines skipped while reading (lenient mode); 0 otherwise."""
        return self.stats.skipped_lines if self.stats is not None else 0

    def __len__(self) -> int:
        return len(self._trace)

    def __repr__(self) -> str:
        src = f" from {self.source}" if self.source else ""
        return (
            f"Workload({len(self)} statements, {len(self.sessions)} sessions, "
            f"{len(self.templates())} templates{src})"
        )

    def templates(self, include_unused: bool = False) -> list[TemplateInfo]:
        """Templates by id with their statement counts. A sample keeps the ids of the
        workload it came from; templates it no longer uses are left out unless asked."""
        return [
            TemplateInfo(tid, text, count)
            for tid, text, count in self._trace.templates()
            if count > 0 or include_unused
        ]

    def top_templates(self, k: int = 10) -> list[TemplateInfo]:
        """The `k` most frequent templates (ties: lower id first)."""
        return sorted(self.templates(), key=lambda t: (-t.count, t.id))[:k]

    @cached_property
    def sessions(self) -> list[SessionInfo]:
        """Sessions by index (the values of `session_ids()`)."""
        return [
            SessionInfo(i, sid, user, db)
            for i, (sid, user, db) in enumerate(self._trace.sessions())
        ]

    def statement(self, i: int) -> StatementInfo:
        st = self._trace.statement(i)
        index = i if i >= 0 else i + len(self)
        return StatementInfo(
            index,
            st.session,
            st.timestamp_us,
            st.template_id,
            st.sql,
            tuple(st.params),
            st.duration_us,
        )

    def constants(self, i: int) -> list[str]:
        """Constants of statement `i` as written (`$n` for extended-protocol parameters)."""
        return self._trace.constants(i)

    def template_ids(self) -> npt.NDArray[np.uint32]:
        return self._trace.template_ids()

    def session_ids(self) -> npt.NDArray[np.uint32]:
        return self._trace.session_ids()

    def timestamps_us(self) -> npt.NDArray[np.int64]:
        """Start times (microseconds since the epoch for logs; 0-based for generated traces)."""
        return self._trace.timestamps_us()

    def durations_us(self) -> npt.NDArray[np.int64]:
        """Logged durations in microseconds; -1 where the log had none."""
        return self._trace.durations_us()

    # -- subsets ----------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> Workload:
        """`n` statements drawn without replacement, reproducibly for a `seed`, kept in
        trace order (each session keeps its order). Template and session ids are kept."""
        if n < 0:
            raise WorkloadError(f"sample size must be >= 0, got {n}")
        if seed < 0:
            raise WorkloadError(f"seed must be >= 0, got {seed}")
        spec = self._spec.sampled(n, seed) if self._spec is not None else None
        return Workload(
            self._trace.sample(n, seed), spec=spec, stats=self.stats, source=self._source
        )

    def subset(self, indices: npt.ArrayLike) -> Workload:
        """The statements at `indices`, in that order (ids kept). A subset has no `spec`
        (a list of indices is not a source); its `source` is kept."""
        idx = np.asarray(indices, dtype=np.int64).ravel()
        return Workload(self._trace.subset(idx.tolist()), stats=self.stats, source=self.source)
