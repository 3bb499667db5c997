"""Pickling `dbgym._core.Trace`: its compact binary form (Trace.to_bytes / from_bytes) round
trips every statement, and a 100 MB log's trace reaches a spawned worker process without
being parsed again, smaller than the log and much faster than parsing it."""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benches.csvlog_synth import write_csvlog
from dbgym import _core
from dbgym.errors import InvalidArgumentError

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


def _assert_same(a: _core.Trace, b: _core.Trace) -> None:
    assert len(a) == len(b)
    assert a.templates() == b.templates()
    assert a.sessions() == b.sessions()
    for i in range(len(a)):
        assert a.statement(i) == b.statement(i), i
    for column in ("template_ids", "session_ids", "timestamps_us", "durations_us"):
        np.testing.assert_array_equal(getattr(a, column)(), getattr(b, column)())
    assert a.to_bytes() == b.to_bytes()


def _traces() -> list[_core.Trace]:
    logs = [
        _core.parse_log_start(DATA / name).result()[0]
        for name in ("pg15.csv", "pg15.json", "pg15.log")
    ]
    built = _core.trace_from_statements(
        ["s1", "s2", "s1", "s3"],
        [0, 10, -20, 2**40],
        ["SELECT 'ünïcode ✓'", "SELECT $1, $2", "", "INSERT INTO t VALUES ($1)"],
        [[], ["a b", None], [], [""]],
    )
    empty = _core.trace_from_statements([], [], [])
    return [*logs, built, _core.tpch_trace(0.01, 7, streams=2), empty]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_round_trip_keeps_every_statement(protocol: int) -> None:
    for trace in _traces():
        back = pickle.loads(pickle.dumps(trace, protocol=protocol))
        assert isinstance(back, _core.Trace)
        _assert_same(trace, back)
        _assert_same(trace, _core.Trace.from_bytes(trace.to_bytes()))
    # the parameters and durations survive, not only the texts
    built = _traces()[3]
    back = pickle.loads(pickle.dumps(built, protocol=protocol))
    assert back.statement(1) == _core.Statement(1, 10, 1, "SELECT $1, $2", ["a b", None], None)
    assert back.statement(3).params == [""]
    assert back.statement(0).duration_us is None and back.statement(0).sql.startswith("SELECT")


def test_bytes_that_are_no_trace_are_an_invalid_argument() -> None:
    good = _traces()[0].to_bytes()
    for data in (b"nonsense", good[: len(good) // 2], good + b"\0", b"DBGYMTR0" + good[8:]):
        with pytest.raises(InvalidArgumentError, match="not an encoded dbgym trace"):
            _core.Trace.from_bytes(data)


def _best_of(runs: int, f: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        result = None  # free the previous result outside the timed part
        start = time.perf_counter()
        result = f()
        best = min(best, time.perf_counter() - start)
    return best, result


def _worker(conn: Connection, expected_len: int, samples: dict[int, _core.Statement]) -> None:
    """In the spawned child: receive the trace, check it, report back."""
    start = time.perf_counter()
    trace = conn.recv()  # unpickled here: Trace.from_bytes, no parsing
    took = time.perf_counter() - start
    ok = isinstance(trace, _core.Trace) and len(trace) == expected_len
    ok = ok and all(trace.statement(i) == s for i, s in samples.items())
    conn.send((ok, len(trace), took))
    conn.close()


def test_a_100mb_log_reaches_a_spawned_worker_without_reparsing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    log = tmp_path_factory.mktemp("big") / "synth.csv"
    statements = write_csvlog(log, 100 << 20)
    log_bytes = log.stat().st_size
    assert log_bytes >= 100 << 20

    parse_s, (trace, _) = _best_of(2, lambda: _core.parse_log_start(log).result())
    assert len(trace) == statements
    data = pickle.dumps(trace, protocol=pickle.HIGHEST_PROTOCOL)
    unpickle_s, back = _best_of(3, lambda: pickle.loads(data))
    assert len(back) == len(trace)
    del back

    # compact: the pickle holds texts and columns, not the log's prefixes and noise
    assert len(data) < log_bytes / 3, (len(data), log_bytes)
    # and it is read much faster than the log is parsed (both on this machine, now)
    assert unpickle_s * 3 < parse_s, (unpickle_s, parse_s)

    n = len(trace)
    picks = [0, 1, n // 3, n // 2, n - 2, n - 1]
    samples = {i: trace.statement(i) for i in picks}
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, n, samples))
    proc.start()
    try:
        parent.send(trace)
        assert parent.poll(120), "the worker did not answer"
        ok, got_len, child_unpickle_s = parent.recv()
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert got_len == n
    assert ok, "the worker's trace differs from the parent's"
    print(
        f"\nlog {log_bytes / 1e6:.1f} MB, {n} statements: parse {parse_s * 1e3:.0f} ms; "
        f"pickle {len(data) / 1e6:.1f} MB, unpickle {unpickle_s * 1e3:.1f} ms "
        f"(child {child_unpickle_s * 1e3:.1f} ms incl. transfer)"
    )


def test_statement_is_a_typed_value() -> None:
    trace = _traces()[3]
    st = trace.statement(-3)
    assert (st.session, st.timestamp_us, st.template_id) == (1, 10, 1)
    assert (st.sql, st.params, st.duration_us) == ("SELECT $1, $2", ["a b", None], None)
    assert st == trace.statement(1)
    assert st != trace.statement(0)
    assert pickle.loads(pickle.dumps(st)) == st
    assert "SELECT $1, $2" in repr(st)
    with pytest.raises(AttributeError):
        st.sql = "x"  # type: ignore[misc]
