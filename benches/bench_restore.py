"""Restore-to-ready of a ~200 MB data directory after writes.

Targets (issue 2): <= 0.5 s median on the local backend; docker no worse than 2x local.
Baseline timed in the same run: the plain full-copy restore (stop, rm -rf the data
directory, cp -a the snapshot back, start).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dbgym
from benches.guard import Guard, record, record_all
from dbgym.dbms.doctor import backend_report

ROWS = 1_200_000  # ~160 MB table + ~26 MB index: a ~200 MB data directory
ROUNDS = 5
BASELINE_ROUNDS = 3
LOCAL_MEDIANS: dict[str, float] = {}  # local median, for the docker comparison


def build(inst: dbgym.PostgresInstance) -> None:
    with inst.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))"
        )
        conn.execute(
            f"INSERT INTO accounts SELECT g, g / 100000, 0, '' FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("CREATE TABLE history (aid int, delta int, mtime timestamptz)")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def writes(inst: dbgym.PostgresInstance) -> None:
    """Updates spread over the whole table, inserts, and a checkpoint so they hit the
    files; then os.sync() so every round starts without a backlog of dirty pages (the
    previous round's, or the baseline's 200 MB copies) being written back under it."""
    with inst.connect(autocommit=True) as conn:
        conn.execute("UPDATE accounts SET abalance = abalance + 1 WHERE aid % 500 = 0")
        conn.execute("INSERT INTO history SELECT g, 1, now() FROM generate_series(1, 10000) g")
        conn.execute("CHECKPOINT")
    os.sync()


def snapshot_mb(inst: dbgym.PostgresInstance, name: str) -> float:
    """Size of the data directory a restore brings back (the snapshot's)."""
    root = inst.workdir / "snapshots" / name / "data"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


def full_copy_restore(inst: dbgym.PostgresInstance, name: str) -> None:
    """The baseline: stop, rm -rf, cp -a, start (same stop mode and readiness test)."""
    inst.stop("immediate")
    shutil.rmtree(inst.datadir)
    snapshot = inst.workdir / "snapshots" / name / "data"
    subprocess.run(["cp", "-a", str(snapshot), str(inst.datadir)], check=True)
    inst.start()


def timed_restores(inst: dbgym.PostgresInstance, restore: Any, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        writes(inst)
        t = time.perf_counter()
        restore()
        times.append(time.perf_counter() - t)
    return times


def check_state(inst: dbgym.PostgresInstance) -> None:
    with inst.connect() as conn:
        row = conn.execute("SELECT count(*), sum(abalance) FROM accounts").fetchone()
        hist = conn.execute("SELECT count(*) FROM history").fetchone()
    assert row == (ROWS, 0) and hist == (0,), (row, hist)


@pytest.fixture(scope="module")
def local_instance() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch(backend="local") as inst:
        build(inst)
        inst.snapshot("bench")
        yield inst


def test_restore_local(benchmark: Any, local_instance: dbgym.PostgresInstance) -> None:
    inst = local_instance
    size = snapshot_mb(inst, "bench")
    assert size > 180, f"data directory is only {size:.0f} MB"
    inst.restore("bench")  # warm-up: page cache and the snapshot's manifest
    baseline = timed_restores(inst, lambda: full_copy_restore(inst, "bench"), BASELINE_ROUNDS)
    check_state(inst)
    benchmark.pedantic(
        inst.restore, args=("bench",), setup=lambda: writes(inst), rounds=ROUNDS, iterations=1
    )
    check_state(inst)
    median = benchmark.stats.stats.median
    base_median = statistics.median(baseline)
    LOCAL_MEDIANS["local"] = median
    benchmark.extra_info.update(
        datadir_mb=round(size),
        baseline_full_copy_median_s=round(base_median, 4),
        speedup_vs_full_copy=round(base_median / median, 2),
    )
    print(
        f"\nlocal restore-to-ready of a {size:.0f} MB data dir after writes: median "
        f"{median:.3f}s; full-copy baseline {base_median:.3f}s ({base_median / median:.1f}x)"
    )
    record_all(
        benchmark,
        Guard(
            label=f"local restore-to-ready, {size:.0f} MB data dir after writes",
            figure=median,
            baseline=base_median,
            unit="s",
            ratio=base_median / median,
            bar=0.5,
            higher_is_better=False,
            on="figure",
        ),
        Guard(
            label="local restore: speedup over a full copy (stop, rm, cp -a, start)",
            figure=median,
            baseline=base_median,
            unit="s",
            ratio=base_median / median,
            bar=1.0,
            higher_is_better=True,
        ),
    )


def test_restore_docker(benchmark: Any) -> None:
    report = backend_report("docker")
    if not report.usable:  # no engine or no image here (.ci/setup builds the image)
        pytest.skip("; ".join(report.problems))
    local = LOCAL_MEDIANS.get("local")
    if local is None:  # run alone (-k docker): measure local here, same session
        with dbgym.PostgresInstance.launch(backend="local") as inst:
            build(inst)
            inst.snapshot("bench")
            inst.restore("bench")
            local = statistics.median(timed_restores(inst, lambda: inst.restore("bench"), ROUNDS))
    with dbgym.PostgresInstance.launch(backend="docker") as inst:
        build(inst)
        inst.snapshot("bench")
        inst.restore("bench")
        benchmark.pedantic(
            inst.restore, args=("bench",), setup=lambda: writes(inst), rounds=ROUNDS, iterations=1
        )
        check_state(inst)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(local_median_s=round(local, 4), ratio=round(median / local, 2))
    print(f"\ndocker restore median {median:.3f}s vs local {local:.3f}s ({median / local:.2f}x)")
    record(
        benchmark,
        label="docker restore-to-ready vs local",
        figure=median,
        baseline=local,
        unit="s",
        ratio=median / local,
        bar=2.0,
        higher_is_better=False,
    )
