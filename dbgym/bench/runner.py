"""The measurement loop of `dbgym bench`: servers, configurations, interleaved runs.

How a comparison runs (`measure(spec)`):

1. The workload is read (and sampled), every configuration's hints are resolved to the
   workload's template ids, and the workload is classified: does it write (a statement
   that is not a read)?
2. Servers. By default one server per distinct server-side configuration (backend,
   knobs, indexes), each launched from the same pristine database state (the state
   cache's copy, so each starts as a fresh restore of the same state), its knobs and
   indexes applied once. Configurations that differ only in hints or replay mode share a
   server (their template settings are client-side). With `one_server`, every
   configuration of a backend shares one server and each switch to another configuration
   restores the pristine snapshot (`DbSession.restore`) and applies the configuration.
3. Rounds: `warmup` rounds, then `repeat` measured rounds; each round runs every
   configuration once, in the given order (A B C A B C ...), so machine drift hits all
   alike. Before a run: a restore when the workload writes (of the configuration's own
   snapshot, taken right after its knobs and indexes were applied), and with a cold
   cache, a server restart and a drop of the OS page cache (`sync; echo 3 >
   /proc/sys/vm/drop_caches`, when permitted: the report says whether it was).
4. Each run is `DbSession.measure` (a replay with the per-statement timeout); its
   workload time is the replay's elapsed time, and the per-template time is the sum of
   the latencies of the template's successful statements.
5. Ctrl-C stops the loop: the replay in flight is cancelled, every server is stopped and
   removed, and what was measured is returned (`interrupted=True`).

Every phase is timed (`Measurements.timing`), so the report says what the comparison cost
on top of the replays themselves.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from dbgym.bench.config import BenchConfig
from dbgym.bench.spec import BenchSpec
from dbgym.errors import InstanceError, InvalidArgumentError, SpecError
from dbgym.types import SettingValue

if TYPE_CHECKING:
    from dbgym.dbms.instance import PostgresInstance
    from dbgym.dbms.spec import InstanceSpec
    from dbgym.session import DbSession
    from dbgym.workload.workload import Workload

#: The snapshot of a configured server a writing workload is restored to before each run.
CONFIGURED_SNAPSHOT = "bench-configured"
DROP_CACHES = "/proc/sys/vm/drop_caches"

#: on_progress(runs done, runs in total, what runs next)
OnProgress = Callable[[int, int, str], None]

_READ_START = re.compile(
    r"^\s*\(*\s*(select|with|values|table|show|explain|set|reset|begin|start|commit|end|"
    r"rollback|savepoint|release|discard|fetch|declare|close|move|listen|unlisten|"
    r"deallocate|prepare|execute)\b",
    re.I,
)
_WRITE_WORD = re.compile(
    r"\b(insert|update|delete|merge|truncate|create|drop|alter|copy|vacuum|analyze|cluster|"
    r"reindex|grant|revoke|refresh|comment|security|nextval|setval|lock|into|for\s+update|"
    r"for\s+no\s+key\s+update|for\s+share|for\s+key\s+share|notify|call|do)\b",
    re.I,
)


def writing_template(text: str) -> bool:
    """Whether a template may write: it does not start like a read, or names a writing
    word (INSERT, UPDATE, ..., SELECT INTO, FOR UPDATE, nextval). Errs on "writes"."""
    return not _READ_START.match(text) or bool(_WRITE_WORD.search(text))


@dataclass
class RunRecord:
    """One replay of the workload under one configuration."""

    config: int
    round: int
    warmup: bool
    #: the workload time (the replay's elapsed seconds); None when nothing was measured
    seconds: float | None
    #: wall-clock seconds of the measure call (connections included)
    wall_s: float
    status: str  # "ok" | "timeout" | "server_crashed" | "failed"
    detail: str = ""
    statements: int = 0
    succeeded: int = 0
    errors: int = 0
    timed_out: int = 0
    errors_by_sqlstate: dict[str, int] = field(default_factory=dict)
    #: seconds per template column (sum of latencies of the successful statements)
    template_s: np.ndarray[Any, np.dtype[np.float64]] | None = None
    started: str = ""

    @property
    def throughput(self) -> float | None:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.succeeded / self.seconds


@dataclass
class ServerInfo:
    """A server of the comparison: the configurations it ran, and its facts."""

    key: str
    instance: dict[str, Any]
    configs: list[int]
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measurements:
    """What `measure` collected: every run, the servers, timings and notes."""

    spec: BenchSpec
    started: str
    ended: str = ""
    templates: list[tuple[int, str, int]] = field(default_factory=list)
    statements: int = 0
    writes: bool = False
    writing_example: str | None = None
    restore_each_run: bool = False
    template_settings: list[dict[int, dict[str, SettingValue]]] = field(default_factory=list)
    servers: list[ServerInfo] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache_drop: str = "not needed (warm cache)"
    interrupted: bool = False


def resolve_hints(
    config: BenchConfig, workload: Workload, index: int
) -> dict[int, dict[str, SettingValue]]:
    """`config.hints` keyed by the workload's template ids (SpecError naming the key of a
    hint that matches no template)."""
    from dbgym import _core

    if not config.hints:
        return {}
    templates = workload.templates(include_unused=True)
    by_id = {t.id: t for t in templates}
    by_text = {t.text: t.id for t in templates}
    out: dict[int, dict[str, SettingValue]] = {}
    for key, settings in config.hints.items():
        tid: int | None = None
        if key.strip().isdigit():
            tid = int(key)
            if tid not in by_id:
                tid = None
        else:
            tid = by_text.get(key)
            if tid is None:
                with contextlib.suppress(Exception):
                    tid = by_text.get(_core.templatize(key)[0])
        if tid is None:
            raise SpecError(
                f"configs[{index}].hints: {key[:80]!r} (configuration {config.name!r}) is "
                f"neither a template id nor the text of a template of the workload (it has "
                f"{len(templates)} templates: `dbgym workload inspect` lists them)",
                key=f"configs[{index}].hints.{key[:80]}",
            )
        out.setdefault(tid, {}).update(dict(settings))
    return out


def drop_os_caches() -> str | None:
    """`sync; echo 3 > /proc/sys/vm/drop_caches`; None when done, else why not."""
    os.sync()
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Inside: Ctrl-C is noted, not raised (cleanup must finish). Main thread only."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum: int, _frame: object) -> None:
        caught.append(signum)

    signal.signal(signal.SIGINT, note)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


class _Server:
    """A live server of the comparison and what is applied on it now.

    The session is a `DbSession` on the instance (it owns it) when runs need restores:
    in one-server mode its pristine snapshot is the database state, otherwise the state
    with the configuration applied (each run of a writing workload restores it). When no
    run needs a restore, the session is a DbSession on the server's DSN (no snapshot is
    taken: launching from the state cache is the fresh copy of the pristine state), and
    the instance is driven directly for knobs and restarts.
    """

    def __init__(self, info: ServerInfo, instance_spec: InstanceSpec) -> None:
        self.info = info
        self.instance_spec = instance_spec
        self.instance: PostgresInstance | None = None
        self.session: DbSession | None = None
        self.server_part: str | None = None  # of the configuration applied (one_server)
        self.settings_of: int | None = None  # configuration whose hints are in force

    def launch(self, spec: BenchSpec, *, restores: bool, progress: bool | None) -> None:
        """Start the server holding the state, apply its configuration (unless one-server
        mode), open the session."""
        from dbgym.provenance import server_facts
        from dbgym.session import DbSession
        from dbgym.state.database_state import DatabaseState

        state = DatabaseState.from_spec(spec.state)
        self.instance = inst = state.launch(self.instance_spec, progress=progress)
        if spec.one_server:
            self.session = DbSession(inst, pristine="pristine", own=True)
        else:
            self.session = DbSession(inst.dsn, own=False)
            first = spec.configs[self.info.configs[0]]
            names = ", ".join(repr(spec.configs[i].name) for i in self.info.configs)
            try:
                self.apply_server_part(first)
            except InvalidArgumentError as e:  # the family (exit code) stays, with the name
                raise InvalidArgumentError(f"configuration {names}: {e}") from e
            except InstanceError as e:
                raise InstanceError(f"configuration {names}: {e}") from e
            self.server_part = first.server_part()
            if restores:
                self.session.close()
                self.session = None
                self.session = DbSession(inst, pristine=CONFIGURED_SNAPSHOT, own=True)
        self.info.facts = server_facts(self.session.connection(), inst)

    def apply_server_part(self, config: BenchConfig) -> None:
        """The knobs and indexes of `config` on the server."""
        session, inst = self.session, self.instance
        assert session is not None and inst is not None
        knobs = dict(config.knobs) if config.knobs else None
        if knobs and session.instance is None:  # a DSN session: knobs through the instance
            try:
                inst.apply_knobs(knobs)
            except psycopg.Error as e:
                raise InstanceError(f"applying the knobs of {config.name!r}: {e}") from e
            knobs = None
        if knobs or config.indexes:
            session.apply(knobs=knobs, indexes=config.index_specs() if config.indexes else None)

    def restart(self) -> None:
        """Restart the server (a cold cache) and reconnect the session."""
        assert self.instance is not None and self.session is not None
        self.instance.restart()
        self.session.connection()

    def recover(self, config: BenchConfig, one_server: bool) -> None:
        """After a crashed or failed run: the server back, with the configuration."""
        session, inst = self.session, self.instance
        assert session is not None and inst is not None
        if session.instance is not None:
            session.recover()
            if one_server:
                self.server_part = None  # the next run restores and applies
            else:
                session.restore()
            return
        if not inst.alive():
            inst.start()
        deadline = time.monotonic() + 30.0
        while True:
            try:
                session.connection().execute("SELECT 1")
                break
            except (InstanceError, psycopg.Error):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.apply_server_part(config)  # indexes and knobs are as a whole: idempotent

    def close(self) -> None:
        """Stop and remove the server (errors are not raised: cleanup goes on)."""
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
        if self.instance is not None and not self.instance.closed:
            with contextlib.suppress(Exception):
                self.instance.close()


def measure(
    spec: BenchSpec,
    *,
    progress: bool | None = False,
    on_progress: OnProgress | None = None,
) -> Measurements:
    """Run the comparison `spec` (see the module docstring); returns every run.

    progress: bars while the state is built (the first time) and servers start.
    on_progress(done, total, next): after every run (and once before the first).
    Raises the errors of the setup (a bad configuration: InvalidArgumentError; a server
    that does not start: InstanceError) after stopping what was started; KeyboardInterrupt
    during the setup is re-raised after that cleanup, during the runs it ends them and the
    measurements so far are returned with `interrupted` set.
    """
    from dbgym.workload.workload import Workload

    t_start = time.perf_counter()
    out = Measurements(spec=spec, started=datetime.now(timezone.utc).isoformat())
    timing = out.timing
    wspec = spec.workload.sampled(spec.sample, spec.seed) if spec.sample else spec.workload
    workload = Workload.from_spec(wspec)
    if len(workload) == 0:
        raise SpecError("workload: it has no statements", key="workload")
    out.statements = len(workload)
    out.templates = [(t.id, t.text, t.count) for t in workload.templates()]
    column = {tid: i for i, (tid, _, _) in enumerate(out.templates)}
    ncols = len(out.templates)
    out.template_settings = [resolve_hints(c, workload, i) for i, c in enumerate(spec.configs)]
    writing = next((t for _, t, _ in out.templates if writing_template(t)), None)
    out.writes = writing is not None
    out.writing_example = writing[:200] if writing is not None else None
    out.restore_each_run = spec.restore == "always" or (spec.restore == "auto" and out.writes)
    timing["workload_s"] = time.perf_counter() - t_start

    # -- servers ------------------------------------------------------------------------
    servers: dict[str, _Server] = {}
    server_of: list[_Server] = []
    for i, config in enumerate(spec.configs):
        inst = spec.instance_for(config, index=i)
        key = inst.to_json() + ("" if spec.one_server else "\0" + config.server_part())
        if key not in servers:
            name = f"server {len(servers) + 1} ({inst.backend})"
            servers[key] = _Server(ServerInfo(name, inst.to_dict(), []), inst)
        servers[key].info.configs.append(i)
        server_of.append(servers[key])
    out.servers = [s.info for s in servers.values()]

    def launch(server: _Server) -> None:
        server.launch(spec, restores=out.restore_each_run, progress=progress)

    live = list(servers.values())
    # Servers start in parallel (after the first, when it builds the state cache). With
    # warm-up rounds, only the first configuration's server is waited for: the others
    # go on starting during the first warm-up runs (which are not measured), and each
    # run waits for its server.
    pool = ThreadPoolExecutor(max_workers=min(4, len(live)))
    pending: dict[int, Future[None]] = {}

    def settle() -> None:
        """Wait for every launch still running (their errors are not raised here)."""
        for f in list(pending.values()):
            with contextlib.suppress(BaseException):
                f.result()
        pending.clear()
        pool.shutdown(wait=True)

    t0 = time.perf_counter()
    try:
        rest = live
        if not _state_cached(spec, live):
            launch(live[0])  # alone: it builds the state into the cache
            rest = live[1:]
        for server in rest:
            pending[id(server)] = pool.submit(launch, server)
        wait_for = list(pending) if spec.warmup == 0 else [id(live[0])]
        for ident in wait_for:
            if ident in pending:
                pending.pop(ident).result()
    except BaseException:
        with _sigint_deferred():
            settle()
            _close_all(live)
        raise
    timing["launch_s"] = time.perf_counter() - t0
    launch_wait_s = 0.0

    if spec.cache == "cold":
        why = drop_os_caches()
        out.cache_drop = "dropped before every run" if why is None else f"not permitted: {why}"
        if why is not None:
            out.notes.append(
                f"cold cache: the OS page cache could not be dropped ({why}; it needs root "
                "and a writable /proc/sys, which containers usually refuse): every run "
                "starts on a restarted server (empty shared buffers) but a warm OS page cache"
            )

    # -- rounds -------------------------------------------------------------------------
    rounds = spec.warmup + spec.repeat
    total = rounds * len(spec.configs)
    switch_s = replay_s = book_s = 0.0
    done = 0

    def label(r: int, i: int) -> str:
        kind = (
            f"warm-up {r + 1}/{spec.warmup}"
            if r < spec.warmup
            else f"run {r - spec.warmup + 1}/{spec.repeat}"
        )
        return f"{spec.configs[i].name}: {kind}"

    if on_progress is not None:
        on_progress(0, total, label(0, 0))
    can_drop = spec.cache == "cold" and out.cache_drop.startswith("dropped")
    try:
        for r in range(rounds):
            for i, config in enumerate(spec.configs):
                server = server_of[i]
                started_launch = pending.pop(id(server), None)
                if started_launch is not None:  # its server starts in the background
                    tw = time.perf_counter()
                    started_launch.result()
                    launch_wait_s += time.perf_counter() - tw
                session = server.session
                assert session is not None
                ts = time.perf_counter()
                restarted = False
                if spec.one_server:
                    part = config.server_part()
                    if out.restore_each_run or server.server_part != part:
                        session.restore()
                        server.apply_server_part(config)
                        server.server_part = part
                        restarted = True
                elif out.restore_each_run:
                    session.restore()
                    restarted = True
                if spec.cache == "cold":
                    if not restarted:
                        server.restart()
                    if can_drop:
                        drop_os_caches()
                if server.settings_of is None or (
                    out.template_settings[server.settings_of] != out.template_settings[i]
                ):
                    session.apply(template_settings=out.template_settings[i])
                server.settings_of = i
                mode = spec.replay_for(config)
                tm = time.perf_counter()
                switch_s += tm - ts
                started = datetime.now(timezone.utc).isoformat()
                try:
                    result, status = session.measure(
                        workload,
                        statement_timeout=spec.statement_timeout,
                        speed=mode.speed,
                        concurrency=mode.concurrency,
                        progress=False,
                    )
                finally:
                    replay_s += time.perf_counter() - tm
                tb = time.perf_counter()
                record = RunRecord(
                    config=i,
                    round=r,
                    warmup=r < spec.warmup,
                    seconds=None,
                    wall_s=tb - tm,
                    status=status.outcome.value,
                    detail=str(status) if not status.ok else "",
                    started=started,
                )
                if result is not None and status.outcome.value in ("ok", "timeout"):
                    ok = result.ok
                    record.seconds = result.elapsed_ns / 1e9
                    record.statements = int(result.ran.sum())
                    record.succeeded = int(ok.sum())
                    record.errors = record.statements - record.succeeded
                    record.timed_out = int((result.sqlstate == b"57014").sum())
                    if record.errors:
                        failed = result.sqlstate[result.ran & ~ok]
                        codes, counts = np.unique(failed, return_counts=True)
                        record.errors_by_sqlstate = {
                            c.decode("ascii", "replace"): int(n)
                            for c, n in zip(codes, counts, strict=True)
                        }
                    lat = (result.end_ns - result.start_ns)[ok] / 1e9
                    cols = np.array(
                        [column.get(int(t), -1) for t in result.template_id[ok]], dtype=np.int64
                    )
                    keep = cols >= 0
                    record.template_s = np.bincount(
                        cols[keep], weights=lat[keep], minlength=ncols
                    ).astype(np.float64)
                out.runs.append(record)
                if status.outcome.value in ("server_crashed", "failed"):
                    ts2 = time.perf_counter()
                    server.recover(config, spec.one_server)
                    switch_s += time.perf_counter() - ts2
                done += 1
                if on_progress is not None:
                    nxt = label(r + (i + 1) // len(spec.configs), (i + 1) % len(spec.configs))
                    on_progress(done, total, nxt if done < total else "done")
                book_s += time.perf_counter() - tb
    except KeyboardInterrupt:
        out.interrupted = True
    except BaseException:
        with _sigint_deferred():
            settle()
            _close_all(live)
        raise
    finally:
        timing["launch_wait_s"] = launch_wait_s
        timing["switch_s"] = switch_s
        timing["replay_s"] = replay_s
        timing["bookkeeping_s"] = book_s
    t0 = time.perf_counter()
    with _sigint_deferred() as caught:
        settle()
        _close_all(live)
    if caught:
        out.interrupted = True
    timing["close_s"] = time.perf_counter() - t0
    timing["measure_total_s"] = time.perf_counter() - t_start
    out.ended = datetime.now(timezone.utc).isoformat()
    return out


def _state_cached(spec: BenchSpec, servers: list[_Server]) -> bool:
    """Whether every server can start from the state cache (then they start in parallel;
    otherwise the first one builds the state alone)."""
    from dbgym.state.database_state import DatabaseState

    try:
        state = DatabaseState.from_spec(spec.state)
        for server in servers:
            major = server.instance_spec.server_major()
            if major is None or state.cached(major=major) is None:
                return False
    except Exception:  # the launch itself says what is wrong
        return False
    return True


def _close_all(servers: list[_Server]) -> None:
    """Stop and remove every server (in parallel; errors do not stop the others)."""
    if len(servers) == 1:
        servers[0].close()
        return
    with ThreadPoolExecutor(max_workers=min(4, len(servers))) as pool:
        list(pool.map(lambda server: server.close(), servers))


def finite(value: float | None) -> float | None:
    """`value`, or None when it is None, NaN or infinite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
