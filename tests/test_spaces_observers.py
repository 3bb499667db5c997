"""Metrics and knob-state observations on real servers."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from dbgym import PostgresInstance
from dbgym.errors import ObservationError
from dbgym.observe import KnobStateObserver, MetricsObserver
from tests.plan_corpus import corpus_server


@pytest.fixture(scope="module")
def plain() -> Iterator[PostgresInstance]:
    """A server without pg_stat_statements, whose knobs these tests may change."""
    with PostgresInstance.launch() as inst:
        yield inst


def _wait_for(observer: MetricsObserver, name: str, at_least: float) -> dict[str, float]:
    """Accumulate deltas until counter `name` grew by `at_least` (stats are flushed lazily)."""
    total = dict.fromkeys(observer.names, 0.0)
    deadline = time.monotonic() + 10
    while True:
        obs = observer.observe()
        assert observer.space.contains(obs)
        for k, v in observer.as_dict(obs).items():
            total[k] += v
        if total[name] >= at_least or time.monotonic() > deadline:
            return total
        time.sleep(0.2)


def test_metrics_deltas_with_pg_stat_statements() -> None:
    inst = corpus_server()
    with inst.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with MetricsObserver(inst) as obs:
        assert obs.has_pg_stat_statements
        names = set(obs.names)
        for needed in [
            "pg_stat_database.xact_commit", "pg_stat_database.tup_inserted",
            "pg_stat_database.blks_hit", "pg_stat_bgwriter.buffers_alloc",
            "pg_stat_statements.calls", "pg_stat_statements.total_exec_time",
            "pg_stat_statements.rows",
        ]:  # fmt: skip
            assert needed in names, needed
        assert not any(n.startswith("pg_stat_statements.mean_") for n in names)
        assert "pg_stat_database.numbackends" not in names
        assert obs.space.shape == (len(obs.names),)
        first = obs.reset()
        assert obs.space.contains(first) and not first.any()
        with inst.connect(autocommit=True) as work:
            work.execute("CREATE TABLE metrics_probe (x int)")
            for _ in range(25):
                work.execute("INSERT INTO metrics_probe SELECT generate_series(1, 40)")
        # (dropping the table before the stats are flushed would discard its counts)
        total = _wait_for(obs, "pg_stat_database.tup_inserted", 1000)
        with inst.connect(autocommit=True) as conn:
            conn.execute("DROP TABLE metrics_probe")
        assert total["pg_stat_database.tup_inserted"] >= 1000
        assert total["pg_stat_database.xact_commit"] >= 26
        assert total["pg_stat_statements.calls"] >= 26
        assert total["pg_stat_statements.rows"] >= 1000
        with inst.connect(autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        key = (
            "pg_stat_checkpointer.num_requested"
            if obs.server_version_num >= 170000
            else "pg_stat_bgwriter.checkpoints_req"
        )
        assert _wait_for(obs, key, 1)[key] >= 1


def test_metrics_without_pg_stat_statements(plain: PostgresInstance) -> None:
    with MetricsObserver(plain.dsn) as obs:
        assert not obs.has_pg_stat_statements
        assert not any(n.startswith("pg_stat_statements.") for n in obs.names)
        o = obs.observe()
        assert obs.space.contains(o) and o.dtype == np.float64
        assert obs.space.sample().shape == o.shape


def test_knob_state_normalizes_current_values(plain: PostgresInstance) -> None:
    knobs = ["work_mem", "enable_hashjoin", "jit_above_cost", "checkpoint_completion_target",
             "default_statistics_target", "wal_compression"]  # fmt: skip
    plain.apply_knobs({"work_mem": "64MB", "enable_hashjoin": "off",
                       "checkpoint_completion_target": 0.5})  # fmt: skip
    with KnobStateObserver(plain, knobs) as obs:
        state = obs.observe()
        assert obs.space.contains(state) and state.dtype == np.float32
        got = dict(zip(obs.names, state.tolist(), strict=True))
        spec = plain.knob_catalog["work_mem"]
        assert spec.min_val is not None and spec.max_val is not None
        expected = math.log1p(65536 - spec.min_val) / math.log1p(spec.max_val - spec.min_val)
        assert got["work_mem"] == pytest.approx(expected, rel=1e-6)
        assert got["enable_hashjoin"] == 0.0
        assert got["checkpoint_completion_target"] == pytest.approx(0.5)  # linear on [0, 1]
        scales = {s.name: s for s in obs.scales}
        assert scales["work_mem"].log and not scales["checkpoint_completion_target"].log
        enumvals = plain.knob_catalog["wal_compression"].enumvals
        assert got["wal_compression"] == pytest.approx(
            [v.lower() for v in enumvals].index(plain.settings()["wal_compression"].lower())
            / (len(enumvals) - 1)
        )
        assert obs.space.contains(obs.space.sample())
    plain.apply_knobs({"work_mem": "4MB", "enable_hashjoin": "on"})
    with KnobStateObserver(plain, ["work_mem"], ranges={"work_mem": (1024, 1024 * 1024)}) as obs:
        (value,) = obs.observe().tolist()
        assert value == pytest.approx(math.log1p(4096 - 1024) / math.log1p(1024 * 1024 - 1024))


def test_knob_state_refuses_what_it_cannot_normalize(plain: PostgresInstance) -> None:
    with pytest.raises(ObservationError, match="search_path is a string setting"):
        KnobStateObserver(plain, ["search_path"])
    with pytest.raises(ObservationError, match="unknown knob"):
        KnobStateObserver(plain, ["work_mem", "no_such_knob"])
    with pytest.raises(ObservationError, match="ranges given for knobs not observed"):
        KnobStateObserver(plain, ["work_mem"], ranges={"shared_buffers": (1, 2)})


def test_observers_on_their_own_across_a_restart(plain: PostgresInstance) -> None:
    """Without a session: a restart ends the observers' connections; they reconnect on
    the next observe, the metrics one from a new baseline (zeros, never a delta that spans
    the restart), the knob-state one showing the value the restarted server uses."""
    with MetricsObserver(plain) as metrics, KnobStateObserver(plain, ["shared_buffers"]) as knobs:
        metrics.observe()
        before = knobs.observe()
        plain.apply_knobs({"shared_buffers": "32MB"})  # a postmaster knob: restart
        try:
            assert not metrics.observe().any() and metrics.reconnects == 1
            after = knobs.observe()
            assert after[0] < before[0]
            assert after[0] == pytest.approx(knobs.normalize({"shared_buffers": "4096"})[0])
            with plain.connect(autocommit=True) as conn:
                conn.execute("SELECT 1")
            delta = metrics.observe()  # counting again from the reconnect
            assert (delta >= 0).all() and metrics.as_dict(delta)[
                "pg_stat_database.xact_commit"
            ] < 50
        finally:
            plain.apply_knobs({"shared_buffers": "128MB"})
