"""Replaying a workload against a PostgreSQL server (the engine is Rust: rust/replay/).

`replay(w, inst_or_dsn, speed=1.0)` replays every statement of the workload's trace with
one connection per logged session (or at most `concurrency` connections), keeping each
session's order, and returns a `ReplayResult`: per-statement numpy arrays (template id,
session, connection, scheduled/start/end times, SQLSTATE) and a `summary()`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

import dbgym._core as _core
from dbgym.errors import WorkloadError

SettingValue = str | int | float | bool
TemplateSettings = Mapping[int, Mapping[str, SettingValue]]
Identity = Literal["dsn", "logged"]


class _HasDsn(Protocol):
    @property
    def dsn(self) -> str: ...


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of a set of durations, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @staticmethod
    def of_ns(values: npt.NDArray[np.int64]) -> LatencyStats:
        if values.size == 0:
            return LatencyStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        ms = values.astype(np.float64) / 1e6
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return LatencyStats(
            int(values.size), float(p50), float(p90), float(p95), float(p99), float(ms.max())
        )


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay measured. Latencies cover every statement that ran (failed ones too:
    a statement cancelled by statement_timeout took that long)."""

    statements: int
    errors: int
    elapsed_s: float
    throughput: float
    latency: LatencyStats
    latency_by_template: dict[int, LatencyStats]
    lag: LatencyStats | None
    errors_by_sqlstate: dict[str, int]

    def __str__(self) -> str:
        lines = [
            f"{self.statements} statements in {self.elapsed_s:.3f} s "
            f"({self.throughput:.1f}/s), {self.errors} errors",
            f"latency ms: p50 {self.latency.p50_ms:.3f}  p99 {self.latency.p99_ms:.3f}  "
            f"max {self.latency.max_ms:.3f}",
        ]
        if self.lag is not None:
            lines.append(
                f"schedule lag ms: p50 {self.lag.p50_ms:.3f}  p99 {self.lag.p99_ms:.3f}  "
                f"max {self.lag.max_ms:.3f}"
            )
        if self.errors_by_sqlstate:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors_by_sqlstate.items()))
            lines.append(f"errors by SQLSTATE: {codes}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """Per-statement results, indexed like the trace's statements.

    Times are nanoseconds since the replay clock started (after the initial connections
    were opened); -1 for statements that did not run (cancelled replay). `scheduled_ns` is
    the deadline of a timed replay, or the unscaled trace offset when `speed` is None.
    `sqlstate` is b"" on success.
    """

    template_id: npt.NDArray[np.uint32]
    session: npt.NDArray[np.uint32]
    connection: npt.NDArray[np.int32]
    scheduled_ns: npt.NDArray[np.int64]
    start_ns: npt.NDArray[np.int64]
    end_ns: npt.NDArray[np.int64]
    sqlstate: npt.NDArray[np.bytes_]
    executed: int
    elapsed_ns: int
    cancelled: bool
    speed: float | None
    concurrency: int | None

    def __len__(self) -> int:
        return int(self.start_ns.size)

    @property
    def ran(self) -> npt.NDArray[np.bool_]:
        """Statements that ran (successfully or not)."""
        return self.start_ns >= 0

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        ok: npt.NDArray[np.bool_] = self.ran & (self.sqlstate == b"")
        return ok

    @property
    def latency_ns(self) -> npt.NDArray[np.int64]:
        """end - start; -1 where the statement did not run."""
        return np.where(self.ran, self.end_ns - self.start_ns, -1)

    @property
    def lag_ns(self) -> npt.NDArray[np.int64]:
        """start - scheduled (timed replays only; -1 where the statement did not run)."""
        return np.where(self.ran, self.start_ns - self.scheduled_ns, -1)

    def summary(self) -> ReplaySummary:
        ran = self.ran
        lat = (self.end_ns - self.start_ns)[ran]
        tids = self.template_id[ran]
        by_template: dict[int, LatencyStats] = {}
        if tids.size:
            order = np.argsort(tids, kind="stable")
            sorted_ids = tids[order]
            ids, first = np.unique(sorted_ids, return_index=True)
            for tid, group in zip(ids, np.split(lat[order], first[1:]), strict=True):
                by_template[int(tid)] = LatencyStats.of_ns(group)
        failed = self.sqlstate[ran & (self.sqlstate != b"")]
        codes, counts = np.unique(failed, return_counts=True)
        errors = {c.decode("ascii"): int(n) for c, n in zip(codes, counts, strict=True)}
        elapsed_s = self.elapsed_ns / 1e9
        lag = None
        if self.speed is not None:
            lag = LatencyStats.of_ns((self.start_ns - self.scheduled_ns)[ran])
        return ReplaySummary(
            statements=int(ran.sum()),
            errors=int(failed.size),
            elapsed_s=elapsed_s,
            throughput=float(ran.sum()) / elapsed_s if elapsed_s > 0 else 0.0,
            latency=LatencyStats.of_ns(lat),
            latency_by_template=by_template,
            lag=lag,
            errors_by_sqlstate=errors,
        )


def _as_trace(workload: object) -> _core.Trace:
    if isinstance(workload, _core.Trace):
        return workload
    for attr in ("trace", "_trace"):
        inner = getattr(workload, attr, None)
        if isinstance(inner, _core.Trace):
            return inner
    raise WorkloadError(
        f"replay needs a dbgym.Workload or a dbgym._core.Trace, got {type(workload).__name__}"
    )


def _as_dsn(target: str | _HasDsn) -> str:
    if isinstance(target, str):
        return target
    dsn = getattr(target, "dsn", None)
    if isinstance(dsn, str):
        return dsn
    raise WorkloadError(
        f"replay target must be a DSN string or a PostgresInstance, got {type(target).__name__}"
    )


def _setting_text(template_id: int, name: str, value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float | str):
        return str(value)
    raise WorkloadError(
        f"template_settings[{template_id}][{name!r}]: value must be str, int, float or bool, "
        f"got {type(value).__name__}"
    )


def _settings_arg(settings: TemplateSettings | None) -> dict[int, dict[str, str]] | None:
    if not settings:
        return None
    out: dict[int, dict[str, str]] = {}
    for tid, kv in settings.items():
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise WorkloadError(f"template_settings: key {tid!r} is not a template id")
        out[tid] = {str(k): _setting_text(tid, str(k), v) for k, v in kv.items()}
    return out


def _timeout_ms(statement_timeout: float | None) -> int | None:
    if statement_timeout is None:
        return None
    if not (math.isfinite(statement_timeout) and statement_timeout > 0):
        raise WorkloadError(
            f"statement_timeout must be a positive number of seconds, got {statement_timeout}"
        )
    return max(1, round(statement_timeout * 1000))


def _step(deadline: float | None) -> float:
    """How long to wait for the handle next: 0.1 s, or less before the deadline."""
    if deadline is None:
        return 0.1
    return max(0.0, min(0.1, deadline - time.monotonic()))


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait(handle: _core.ReplayHandle, show_progress: bool, deadline: float | None) -> None:
    """Until the replay ends, or the deadline passes (then the caller cancels it)."""
    if not show_progress:
        while not handle.wait(_step(deadline)):
            if _past(deadline):
                return
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("replay", total=handle.total)
        while not handle.wait(_step(deadline)):
            bar.update(task, completed=handle.done())
            if _past(deadline):
                break
        bar.update(task, completed=handle.done())


def replay(
    workload: object,
    inst_or_dsn: str | _HasDsn,
    speed: float | None = 1.0,
    concurrency: int | None = None,
    statement_timeout: float | None = None,
    template_settings: TemplateSettings | None = None,
    *,
    progress: bool | None = None,
    threads: int | None = None,
    identity: Identity = "dsn",
    timeout: float | None = None,
) -> ReplayResult:
    """Replays `workload` (a dbgym.Workload or dbgym._core.Trace) against a server.

    speed: 1.0 = the logged timing (absolute deadlines), 2.0 = twice as fast, None = as
        fast as possible.
    concurrency: None = one connection per logged session; k = at most k connections,
        sessions multiplexed onto them between transactions (a session keeps its
        connection while inside a transaction block).
    statement_timeout: seconds, SET on every connection (a timed-out statement: 57014).
    template_settings: {template_id: {"enable_hashjoin": "off"}}, applied with SET LOCAL
        to that template's statements only.
    progress: show a progress bar (default: when stderr is a terminal).
    threads: connection threads, each with its own single-threaded runtime, connections
        dealt out round-robin (default: one per connection, at most max(8, cores)).
    identity: "dsn" = every session logs in with the DSN's user and database; "logged" =
        each session with its logged user and database (the DSN's where the log has none)
        and the DSN's password and other settings, so a log spanning several databases
        replays into each; needs concurrency=None. A login the server refuses is recorded
        as that session's statements' SQLSTATE (e.g. 3D000, 28P01), and the replay goes on.
    timeout: seconds for the whole replay (None = no limit); when they pass, the replay is
        cancelled as by Ctrl-C and what ran is returned (`result.cancelled` is True).

    Ctrl-C cancels the statements in flight, closes the connections and re-raises.
    """
    trace = _as_trace(workload)
    dsn = _as_dsn(inst_or_dsn)
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise WorkloadError(f"speed must be a positive number or None, got {speed}")
    if concurrency is not None and concurrency < 1:
        raise WorkloadError(f"concurrency must be at least 1 or None, got {concurrency}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise WorkloadError(f"timeout must be a positive number of seconds, got {timeout}")
    handle = _core.replay_start(
        trace,
        dsn,
        speed=speed,
        concurrency=concurrency,
        statement_timeout_ms=_timeout_ms(statement_timeout),
        template_settings=_settings_arg(template_settings),
        threads=threads,
        identity=identity,
    )
    show = sys.stderr.isatty() if progress is None else progress
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _wait(handle, show, deadline)
        if _past(deadline) and not handle.wait(0.0):
            handle.cancel()  # in-flight statements are cancelled; result() waits for the end
    except BaseException:
        handle.cancel()
        deadline = time.monotonic() + 30.0
        while not handle.wait(0.2) and time.monotonic() < deadline:
            pass
        raise
    raw: dict[str, Any] = handle.result()
    return ReplayResult(
        template_id=raw["template_id"],
        session=raw["session"],
        connection=raw["connection"],
        scheduled_ns=raw["scheduled_ns"],
        start_ns=raw["start_ns"],
        end_ns=raw["end_ns"],
        sqlstate=raw["sqlstate"],
        executed=int(raw["executed"]),
        elapsed_ns=int(raw["elapsed_ns"]),
        cancelled=bool(raw["cancelled"]),
        speed=speed,
        concurrency=concurrency,
    )
