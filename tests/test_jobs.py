"""One mechanism for long-running Rust work (dbgym/jobs.py, rust/python/job.rs): a parse, a
TPC-H load and a replay are each a handle that reports progress, waits without the GIL,
cancels, and hands over its result once; run_job drives all three."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dbgym
from dbgym import _core
from dbgym.benchmarks import tpch
from dbgym.errors import ConnectError, InvalidArgumentError, WorkloadError
from dbgym.jobs import run_job

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


@pytest.fixture(scope="module")
def inst() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


def _empty_tpch_database(inst: dbgym.PostgresInstance, name: str) -> str:
    with inst.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = inst.dsn.replace("/postgres", f"/{name}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tpch.TABLES:
            conn.execute(tpch.SCHEMA[table])
    return dsn


def test_a_parse_job_hands_over_its_result_once() -> None:
    job = _core.parse_log_start(DATA / "pg15.csv")
    assert job.kind == "parse"
    trace, stats = run_job(job, title="reading", progress=False).result()
    assert len(trace) > 0 and stats.bytes == (DATA / "pg15.csv").stat().st_size
    ((item, done, total),) = job.progress()
    assert (item, done, total) == ("pg15.csv", stats.bytes, stats.bytes)
    with pytest.raises(InvalidArgumentError, match="already taken"):
        job.result()


def test_a_failing_job_raises_its_own_error_class(tmp_path: Path) -> None:
    job = _core.parse_log_start(tmp_path / "missing.csv")
    assert run_job(job, title="reading", progress=False).done
    with pytest.raises(dbgym.errors.TraceParseError, match=r"missing\.csv"):
        job.result()
    load = _core.TpchGenerator(0.001, 1).load_start("host=127.0.0.1 port=1 user=u dbname=d")
    with pytest.raises(ConnectError):
        load.result()


def test_a_load_job_reports_rows_per_table_and_cancels(inst: dbgym.PostgresInstance) -> None:
    gen = _core.TpchGenerator(0.05, 1)
    totals = gen.rows()
    dsn = _empty_tpch_database(inst, "jobs_load")
    job = gen.load_start(dsn, workers=1)
    assert job.kind == "load" and not job.wait(0.0)
    rows = {item: (done, total) for item, done, total in job.progress()}
    assert set(rows) == set(tpch.TABLES)
    assert all(total == totals[t] for t, (_, total) in rows.items())
    # cancel mid-load: the COPYs are aborted and the connections closed
    deadline = time.monotonic() + 30
    while sum(done for done, _ in rows.values()) == 0 and time.monotonic() < deadline:
        job.wait(0.02)
        rows = {item: (done, total) for item, done, total in job.progress()}
    assert not job.done, "the load finished before it could be cancelled"
    job.cancel()
    assert job.wait(20.0)
    with pytest.raises(WorkloadError):
        job.result()
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'jobs_load' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        assert row == (0,)


def test_a_replay_handle_answers_as_a_job(inst: dbgym.PostgresInstance) -> None:
    w = dbgym.Workload.benchmark("pgbench", script="select-only", transactions=1)
    with inst.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pgbench_accounts (aid int, abalance int)")
    handle = _core.replay_start(w.trace, inst.dsn, speed=None)
    run_job(handle, title="replay", progress=False)
    assert handle.progress() == [("statements", len(w), len(w))]
    assert handle.result().executed == len(w)
