"""Parsing + templatizing a csvlog: the Rust reader against a plain Python baseline.

The log (~150 MB) is synthesized once per session in the layout of a real PostgreSQL 15
csvlog (benches/csvlog_synth.py; its shape is checked against rust/trace/testdata/pg15.csv).

Single core: CPU time of the calling process (`time.process_time`), so the figures hold on a
machine shared with other jobs; the Rust reader runs with threads=1 (no thread pool).
Required: >= 4x the baseline (csv module + one regex replacing literals), and >= 250 MB/s on a
machine where that baseline runs at its reference speed of 50 MB/s (the low end of what it does
here). CPU time still slows down when the other hyperthread of the core is busy or the clock
drops, for both sides alike, so the absolute floor is scaled by the baseline's measured speed
when that is below its reference (seen in CI: baseline 30 MB/s, Rust 207 MB/s, 6.9x).

Parallel: wall time of one parse on all cores against one parse on one thread (threads=1 is
the caller's thread alone: no pool, no reader thread, so it is the one-core figure). Rounds
interleave three runs so all see the same machine: one thread, all threads, and one
single-threaded parse per core at once (independent copies: what the cores deliver to this work
right now, the machine's own ceiling; it is below linear when the cores are shared with other
work or memory is the limit). Asserted: no duplicated work (median over rounds of parallel
CPU time / sequential CPU time < 2; re-parsing the log would be >= 2x; chunk splits are
verified, not re-parsed; idle it is 1.02-1.07, but CPU time itself inflates when this VM's
host is busy and both cores run, seen at 1.57 in CI); efficiency >= 0.85 (the parallel
parse of one log takes at most 1/0.85 of the per-log time of the independent copies); and,
when the ceiling shows the cores are there (>= 0.7x linear), a speedup >= 0.75x linear.
Figures are printed and stored in the benchmark's extra_info.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benches.csvlog_synth import write_csvlog
from benches.guard import Guard, record_all
from dbgym import _core

LOG_BYTES = 150_000_000
ROUNDS = 5
REAL_SAMPLE = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata" / "pg15.csv"

#: The baseline's templatizer: quoted strings, numbers, $n parameters.
LITERALS = re.compile(r"'(?:[^']|'')*'|-?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b|\$\d+")


#: Speed of the Python baseline (MB/s) at which the Rust reader must reach 250 MB/s.
BASELINE_REFERENCE_MB_S = 50.0


def python_baseline(path: Path) -> tuple[int, int, int]:
    """Plain Python: csv.reader + one regex. Returns (statements, templates, sessions)."""
    templates: dict[str, int] = {}
    sessions: dict[str, int] = {}
    statements: list[tuple[int, str, int, str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if row[11] != "LOG":
                continue
            msg = row[13]
            if msg.startswith("duration: "):
                _, sep, rest = msg.partition(" ms  ")
                if not sep:
                    continue
                msg = rest
            if msg.startswith("statement: "):
                sql = msg[11:]
            elif msg.startswith("execute ") and not msg.startswith("execute fetch from"):
                sql = msg.partition(": ")[2]
            else:
                continue
            template = LITERALS.sub("?", sql)
            tid = templates.setdefault(template, len(templates))
            sid = sessions.setdefault(row[5], len(sessions))
            statements.append((sid, row[0], tid, sql))
    return len(statements), len(templates), len(sessions)


@pytest.fixture(scope="session")
def csvlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("bench-parse") / "postgresql.csv"
    statements = write_csvlog(path, LOG_BYTES)
    # Same layout as the real server's csvlog.
    with REAL_SAMPLE.open(newline="") as f:
        real = list(csv.reader(f))
    with path.open(newline="") as f:
        synth = [row for _, row in zip(range(5000), csv.reader(f), strict=False)]
    assert {len(r) for r in synth} == {len(r) for r in real} == {26}
    assert {r[11] for r in synth} <= {r[11] for r in real}
    assert {r[23] for r in synth if r[1]} == {r[23] for r in real if r[1]} == {"client backend"}
    return path, statements


def _timed(clock: Callable[[], float], fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = clock()
    out = fn()
    return clock() - t0, out


@pytest.mark.benchmark(timer=time.process_time)  # CPU time of this process: one core's work
def test_parse_csvlog_single_core(benchmark: Any, csvlog: tuple[Path, int]) -> None:
    path, statements = csvlog
    size_mb = path.stat().st_size / 1e6

    base_s, (base_n, base_templates, base_sessions) = _timed(
        time.process_time, lambda: python_baseline(path)
    )
    assert base_n == statements

    def rust() -> _core.Trace:
        trace, _ = _core.parse_log_start(path, format="csvlog", threads=1).result()
        return trace

    trace = benchmark.pedantic(rust, rounds=3, iterations=1, warmup_rounds=0)
    rust_s = float(benchmark.stats.stats.min)
    assert len(trace) == statements
    assert len(trace.sessions()) == base_sessions

    rust_mb_s = size_mb / rust_s
    base_mb_s = size_mb / base_s
    ratio = base_s / rust_s
    benchmark.extra_info.update(
        log_mb=round(size_mb, 1),
        rust_mb_per_s=round(rust_mb_s, 1),
        python_mb_per_s=round(base_mb_s, 1),
        ratio=round(ratio, 2),
        rust_templates=len(trace.templates()),
        python_templates=base_templates,
    )
    print(
        f"\ncsvlog {size_mb:.0f} MB, one core (CPU time): rust {rust_mb_s:.0f} MB/s, "
        f"python baseline {base_mb_s:.0f} MB/s, ratio {ratio:.1f}x"
    )
    floor = 250 * min(1.0, base_mb_s / BASELINE_REFERENCE_MB_S)
    record_all(
        benchmark,
        Guard(
            label="one core: speed over the Python baseline",
            figure=rust_mb_s,
            baseline=base_mb_s,
            unit="MB/s",
            ratio=ratio,
            bar=4,
            higher_is_better=True,
        ),
        Guard(
            label=f"one core: MB/s (250 at a baseline of {BASELINE_REFERENCE_MB_S:.0f} MB/s, "
            "scaled down below that)",
            figure=rust_mb_s,
            baseline=base_mb_s,
            unit="MB/s",
            ratio=ratio,
            bar=floor,
            higher_is_better=True,
            on="figure",
        ),
    )


def _parse_wall(path: Path, threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, statements) of one parse."""
    w0, c0 = time.perf_counter(), time.process_time()
    trace, _ = _core.parse_log_start(path, format="csvlog", threads=threads).result()
    return time.perf_counter() - w0, time.process_time() - c0, len(trace)


def _independent_wall(path: Path, copies: int) -> float:
    """Wall time of `copies` single-threaded parses of the log at once (GIL released)."""
    with ThreadPoolExecutor(copies) as pool:
        w0 = time.perf_counter()
        counts = list(pool.map(lambda _: _parse_wall(path, 1)[2], range(copies)))
        wall = time.perf_counter() - w0
    assert len(set(counts)) == 1
    return wall


def test_parse_csvlog_parallel_speedup(benchmark: Any, csvlog: tuple[Path, int]) -> None:
    path, statements = csvlog
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.fail("the parallel bench needs at least 2 cores")

    seq: list[tuple[float, float, int]] = []
    par: list[tuple[float, float, int]] = []
    indep: list[float] = []
    for _ in range(ROUNDS):  # interleaved, so all three see the same machine
        seq.append(_parse_wall(path, 1))
        indep.append(_independent_wall(path, cores))
        par.append(_parse_wall(path, cores))
    assert {r[2] for r in seq + par} == {statements}

    speedups = [s[0] / p[0] for s, p in zip(seq, par, strict=True)]
    ceilings = [cores * s[0] / i for s, i in zip(seq, indep, strict=True)]
    efficiencies = [i / (cores * p[0]) for i, p in zip(indep, par, strict=True)]
    speedup = statistics.median(speedups)
    ceiling = statistics.median(ceilings)
    efficiency = statistics.median(efficiencies)
    work_ratios = [p[1] / s[1] for s, p in zip(seq, par, strict=True)]
    work_ratio = statistics.median(work_ratios)

    benchmark.pedantic(
        lambda: _core.parse_log_start(path, format="csvlog", threads=cores).result(), rounds=1
    )
    load = os.getloadavg()[0]
    benchmark.extra_info.update(
        cores=cores,
        wall_1_s=[round(r[0], 3) for r in seq],
        wall_n_s=[round(r[0], 3) for r in par],
        independent_s=[round(w, 3) for w in indep],
        speedup=round(speedup, 2),
        machine_ceiling=round(ceiling, 2),
        efficiency=round(efficiency, 2),
        work_ratio=round(work_ratio, 2),
        load_avg=round(load, 1),
    )
    print(
        f"\ncsvlog parallel, medians of {ROUNDS} rounds: {cores} threads "
        f"{statistics.median(r[0] for r in par):.3f} s vs 1 thread "
        f"{statistics.median(r[0] for r in seq):.3f} s -> speedup {speedup:.2f}x; "
        f"{cores} independent 1-thread parses at once gain {ceiling:.2f}x (the machine's "
        f"ceiling now), efficiency {efficiency:.2f}; CPU work ratio {work_ratio:.2f}; "
        f"load average {load:.1f}"
    )
    wall_1 = statistics.median(r[0] for r in seq)
    wall_n = statistics.median(r[0] for r in par)
    cores_there = ceiling >= 0.7 * cores  # else the speedup is reported, not asserted
    record_all(
        benchmark,
        Guard(
            label=f"{cores} threads: CPU work / one thread's (re-parsing would be 2)",
            figure=statistics.median(p[1] for p in par),
            baseline=statistics.median(s[1] for s in seq),
            unit="s",
            ratio=work_ratio,
            bar=2,
            higher_is_better=False,
            detail=f"rounds {[round(w, 2) for w in work_ratios]}",
        ),
        Guard(
            label=f"{cores} threads: efficiency (vs {cores} independent 1-thread parses)",
            figure=wall_n,
            baseline=statistics.median(indep) / cores,
            unit="s",
            ratio=efficiency,
            bar=0.85,
            higher_is_better=True,
            detail=f"speedups {speedups}, ceilings {ceilings}",
        ),
        Guard(
            label=f"{cores} threads: speedup over 1 thread (machine ceiling {ceiling:.2f}x)",
            figure=wall_n,
            baseline=wall_1,
            unit="s",
            ratio=speedup,
            bar=0.75 * cores if cores_there else None,
            higher_is_better=True,
            detail=f"speedups {speedups}",
        ),
    )
