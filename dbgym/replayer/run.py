"""Replaying a workload against a PostgreSQL server (the engine is Rust: rust/replay/).

`replay(target, workload, speed=1.0)` replays every statement of the workload's trace with
one connection per logged session (or at most `concurrency` connections), keeping each
session's order, and returns a `ReplayResult`: per-statement numpy arrays (template id,
session, connection, scheduled/start/end times, SQLSTATE) and a `summary()`, whose
throughput and latencies count the statements that succeeded.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

import dbgym._core as _core
import dbgym.redact as redact
from dbgym.errors import (
    CONNECTION_LOST_SQLSTATES,
    LOGIN_REFUSED_SQLSTATES,
    InvalidArgumentError,
)
from dbgym.jobs import run_job
from dbgym.types import (
    SettingValue,
    Target,
    TemplateSettings,
    check_seconds,
    target_dsn,
    template_settings_text,
)
from dbgym.workload.workload import Workload

__all__ = [
    "Identity",
    "LatencyStats",
    "ReplayResult",
    "ReplaySummary",
    "SettingValue",
    "TemplateSettings",
    "replay",
]

Identity = Literal["dsn", "logged"]

#: The replay engine records 08P01 (protocol violation) for a statement the client
#: library refused (rust/replay/conn.rs CLIENT_ERROR): the connection was not lost.
_CLIENT_REFUSED = b"08P01"


def _starts_with(codes: npt.NDArray[np.bytes_], prefixes: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    hit = np.zeros(codes.shape, dtype=bool)
    for prefix in prefixes:
        hit |= np.char.startswith(codes, prefix.encode("ascii"))
    return hit


def _connection_lost(codes: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
    lost: npt.NDArray[np.bool_] = _starts_with(codes, CONNECTION_LOST_SQLSTATES) & (
        codes != _CLIENT_REFUSED
    )
    return lost


def _login_refused(codes: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
    return _starts_with(codes, LOGIN_REFUSED_SQLSTATES)


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
    """What a replay measured.

    Throughput, latencies and schedule lag count the statements that succeeded; a failed
    statement (an error, a statement timeout, a lost connection, a refused login) is
    counted in `errors` and `errors_by_sqlstate`, never as work done. `connection_lost`
    counts the statements that failed because the server went away (SQLSTATE class 08 but
    08P01, or 57P01..57P03), `login_refused` those of sessions whose login the server
    refused (class 28, 3D000); `server_gone` / `logins_failed` say whether there were any.
    `str()` prints all of it, with p50/p95/p99 of the most frequent templates.
    """

    #: statements that ran (succeeded or failed); `not_run` did not (cancelled replay)
    statements: int
    succeeded: int
    errors: int
    elapsed_s: float
    #: successful statements per second
    throughput: float
    #: latency of the successful statements
    latency: LatencyStats
    #: latency of the successful statements by template id (templates with none: absent)
    latency_by_template: dict[int, LatencyStats]
    #: start - scheduled of the successful statements (timed replays only)
    lag: LatencyStats | None
    errors_by_sqlstate: dict[str, int]
    connection_lost: int = 0
    login_refused: int = 0
    not_run: int = 0
    #: how many templates `str()` lists (most frequent first)
    top_templates: int = field(default=5, compare=False)

    @property
    def server_gone(self) -> bool:
        """Some statements failed because the server went away (crashed, was killed,
        shut down) or could not be reached."""
        return self.connection_lost > 0

    @property
    def logins_failed(self) -> bool:
        """The server refused the login of some sessions (password, pg_hba, database)."""
        return self.login_refused > 0

    def top(self, n: int) -> list[tuple[int, LatencyStats]]:
        """(template id, latency) of the `n` templates with the most successful
        statements (ties: the lower id first)."""
        ranked = sorted(self.latency_by_template.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return ranked[: max(n, 0)]

    def text(self, top: int | None = None) -> str:
        """The summary as lines of text; `top` templates (default `top_templates`) with
        their p50/p95/p99, most frequent first."""
        lines = [
            f"{self.statements} statements in {self.elapsed_s:.3f} s: {self.succeeded} "
            f"succeeded ({self.throughput:.1f}/s), {self.errors} failed"
            + (f", {self.not_run} did not run (cancelled)" if self.not_run else ""),
        ]
        lat = self.latency
        if lat.count:
            lines.append(
                f"latency ms of successful statements: p50 {lat.p50_ms:.3f}  "
                f"p95 {lat.p95_ms:.3f}  p99 {lat.p99_ms:.3f}  max {lat.max_ms:.3f}"
            )
        if self.lag is not None and self.lag.count:
            lines.append(
                f"schedule lag ms: p50 {self.lag.p50_ms:.3f}  p99 {self.lag.p99_ms:.3f}  "
                f"max {self.lag.max_ms:.3f}"
            )
        if self.errors_by_sqlstate:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors_by_sqlstate.items()))
            lines.append(f"errors by SQLSTATE: {codes}")
        if self.server_gone:
            lines.append(
                f"the server went away: {self.connection_lost} statements failed on a lost "
                "or refused connection (SQLSTATE 08xxx, 57P01..57P03)"
            )
        if self.logins_failed:
            lines.append(
                f"logins failed: the server refused the login of sessions with "
                f"{self.login_refused} statements (SQLSTATE 28xxx, 3D000)"
            )
        if self.statements and not self.succeeded:
            lines.append("no statement succeeded")
        ranked = self.top(self.top_templates if top is None else top)
        if ranked:
            lines.append(f"top {len(ranked)} templates (latency ms):")
            for tid, st in ranked:
                lines.append(
                    f"  template {tid}: {st.count} ok  p50 {st.p50_ms:.3f}  "
                    f"p95 {st.p95_ms:.3f}  p99 {st.p99_ms:.3f}"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


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
        """Statements that ran and succeeded."""
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

    def summary(self, top_templates: int = 5) -> ReplaySummary:
        """Counts, throughput and latencies of the successful statements, failures by
        SQLSTATE (and whether the server went away or refused logins); `str()` of it
        lists the `top_templates` most frequent templates."""
        ran = self.ran
        ok = self.ok
        lat = (self.end_ns - self.start_ns)[ok]
        tids = self.template_id[ok]
        by_template: dict[int, LatencyStats] = {}
        if tids.size:
            order = np.argsort(tids, kind="stable")
            sorted_ids = tids[order]
            ids, first = np.unique(sorted_ids, return_index=True)
            for tid, group in zip(ids, np.split(lat[order], first[1:]), strict=True):
                by_template[int(tid)] = LatencyStats.of_ns(group)
        failed = self.sqlstate[ran & ~ok]
        codes, counts = np.unique(failed, return_counts=True)
        errors = {c.decode("ascii"): int(n) for c, n in zip(codes, counts, strict=True)}
        elapsed_s = self.elapsed_ns / 1e9
        succeeded = int(ok.sum())
        lag = None
        if self.speed is not None:
            lag = LatencyStats.of_ns((self.start_ns - self.scheduled_ns)[ok])
        return ReplaySummary(
            statements=int(ran.sum()),
            succeeded=succeeded,
            errors=int(failed.size),
            elapsed_s=elapsed_s,
            throughput=succeeded / elapsed_s if elapsed_s > 0 else 0.0,
            latency=LatencyStats.of_ns(lat),
            latency_by_template=by_template,
            lag=lag,
            errors_by_sqlstate=errors,
            connection_lost=int(_connection_lost(failed).sum()),
            login_refused=int(_login_refused(failed).sum()),
            not_run=int((~ran).sum()),
            top_templates=top_templates,
        )


def _as_trace(workload: object) -> _core.Trace:
    if isinstance(workload, _core.Trace):
        return workload
    if isinstance(workload, Workload):
        return workload.trace
    raise InvalidArgumentError(
        f"replay needs a dbgym.Workload or a dbgym._core.Trace, got {type(workload).__name__}"
    )


def _is_workload(value: object) -> bool:
    return isinstance(value, Workload | _core.Trace)


def _timeout_ms(statement_timeout: float | None) -> int | None:
    seconds = check_seconds("statement_timeout", statement_timeout)
    return None if seconds is None else max(1, round(seconds * 1000))


@redact.scrubs("target")  # no error shows the DSN's password
def replay(
    target: Target,
    workload: Workload | _core.Trace,
    *,
    speed: float | None = 1.0,
    concurrency: int | None = None,
    statement_timeout: float | None = None,
    template_settings: TemplateSettings | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    identity: Identity = "dsn",
    timeout: float | None = None,
) -> ReplayResult:
    """Replays `workload` (a dbgym.Workload or dbgym._core.Trace) against `target` (a
    PostgresInstance, a DbSession, anything with a `.dsn`, or a DSN string).

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

    A statement that fails (an error, a lost connection, a refused login) is recorded with
    its SQLSTATE and the replay goes on; `result.summary()` counts only successful
    statements as work and says when the server went away or logins failed.

    The old order `replay(workload, target)` still works for one release, with a
    DeprecationWarning. Ctrl-C cancels the statements in flight, closes the connections
    and re-raises.
    """
    if _is_workload(target) and not _is_workload(workload):
        warnings.warn(
            "replay(workload, target) is deprecated; pass the target first: "
            "replay(target, workload, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        target, workload = workload, target  # type: ignore[assignment]
    trace = _as_trace(workload)
    dsn = target_dsn(target)
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise InvalidArgumentError(f"speed must be a positive number or None, got {speed}")
    if concurrency is not None and concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be at least 1 or None, got {concurrency}")
    check_seconds("timeout", timeout)
    handle = _core.replay_start(
        trace,
        dsn,
        speed=speed,
        concurrency=concurrency,
        statement_timeout_ms=_timeout_ms(statement_timeout),
        template_settings=template_settings_text(template_settings) or None,
        threads=threads,
        identity=identity,
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    # Ctrl-C (or any error) cancels the replay and waits until it stopped, then re-raises
    run_job(handle, title="replay", progress=progress, deadline=deadline)
    if not handle.wait(0.0):  # the deadline passed
        handle.cancel()  # in-flight statements are cancelled; result() waits for the end
    raw = handle.result()
    return ReplayResult(
        template_id=raw.template_id,
        session=raw.session,
        connection=raw.connection,
        scheduled_ns=raw.scheduled_ns,
        start_ns=raw.start_ns,
        end_ns=raw.end_ns,
        sqlstate=raw.sqlstate,
        executed=raw.executed,
        elapsed_ns=raw.elapsed_ns,
        cancelled=raw.cancelled,
        speed=speed,
        concurrency=concurrency,
    )
