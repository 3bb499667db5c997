"""Replay engine vs pgbench on the same instance, in the same run.

1. Throughput: replaying select-only pgbench statements (8 sessions, as fast as possible)
   reaches >= 90% of what `pgbench -S -M <protocol> -c 8 -j 8 -t N` reports (its tps without
   connection time) for the simple and the extended protocol, where N is the number of
   transactions each replayed session holds: both run the same fixed work, so both pay for
   the clients that finish last (a `-T` run keeps every client busy to the end, which no
   fixed trace can). Each replay round is paired with one pgbench run right beside it, the
   pairs in the order P R, R P, P R, R P, ..., so both see the same machine (its speed drifts
   by up to 1.5x from one minute to the next), a drift favours neither side, and every run
   counts in one pair only; the median of the pairs' ratios is asserted. The replay prepares
   each statement once per connection, so for the extended protocol `pgbench -M prepared` is
   reported too (not asserted; run after each pair).
2. Timing: at the original rate (speed=1.0) of a trace the server can sustain (Poisson
   arrivals), the p99 schedule lag (start - deadline) is <= 1 ms: the median over rounds of
   each round's p99. `pgbench -R` at the same rate, in the same run, is printed beside it as
   what the machine allows (its own p99 schedule lag); rounds alternate replay and pgbench.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import dbgym
from benches.guard import record
from dbgym.benchmarks import pgbench

CLIENTS = 8
# Rounds per protocol: the simple protocol's margin over the bar is the thinner one (medians
# 0.93 to 1.00 of pgbench here), so it gets more rounds for a steadier median.
ROUNDS = {"simple": 24, "extended": 12}
SECONDS = 1
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)


@pytest.fixture(scope="module")
def instance() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        pgbench.load(inst.dsn, 1, bin_dir=inst.bin_dir)
        yield inst


def pgbench_tps(inst: dbgym.PostgresInstance, mode: str, transactions: int | None = None) -> float:
    """pgbench's tps over `transactions` per client, or over SECONDS when None."""
    assert inst.bin_dir is not None
    clients = ["-c", str(CLIENTS), "-j", str(CLIENTS)]
    work = ["-T", str(SECONDS)] if transactions is None else ["-t", str(transactions)]
    out = subprocess.run(
        [
            str(inst.bin_dir / "pgbench"),
            "-n",
            "-S",
            "-M",
            mode,
            *clients,
            *work,
            inst.dsn,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = _TPS.search(out)
    assert m, out
    return float(m[1])


def pgbench_p99_lag_ms(inst: dbgym.PostgresInstance, rate: float, clients: int) -> float:
    """p99 of the schedule lag pgbench itself logs with --rate (per-transaction log)."""
    assert inst.bin_dir is not None
    with tempfile.TemporaryDirectory() as d:
        args = ["-n", "-S", "-M", "prepared", "-R", str(rate), "-c", str(clients)]
        args += ["-j", str(clients), "-T", "2", "-l", f"--log-prefix={d}/log", inst.dsn]
        subprocess.run(
            [str(inst.bin_dir / "pgbench"), *args],
            check=True,
            capture_output=True,
        )
        # Columns: client, transaction, latency, script, epoch, us, schedule lag (us).
        lags = [
            int(line.split()[6])
            for f in Path(d).glob("log*")
            for line in f.read_text().splitlines()
        ]
    return float(np.percentile(np.array(lags) / 1000.0, 99))


@dataclass
class Rounds:
    pgbench: list[float] = field(default_factory=list)
    prepared: list[float] = field(default_factory=list)
    replay: list[float] = field(default_factory=list)


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_replay_throughput_vs_pgbench(
    benchmark: BenchmarkFixture, instance: dbgym.PostgresInstance, protocol: str
) -> None:
    warm = pgbench_tps(instance, protocol)
    # About SECONDS of work per replay round at pgbench's rate.
    per_client = max(500, int(warm * SECONDS / CLIENTS))
    w = dbgym.Workload.benchmark(
        "pgbench",
        script="select-only",
        clients=CLIENTS,
        transactions=per_client,
        protocol=protocol,
        seed=7,
    )
    rounds = Rounds()

    def pgbench_run() -> None:
        rounds.pgbench.append(pgbench_tps(instance, protocol, per_client))

    def pair_done() -> None:
        if protocol == "extended":
            rounds.prepared.append(pgbench_tps(instance, "prepared", per_client))

    def setup() -> None:
        # Round i: even rounds run pgbench first (P R); odd ones after the replay (R P),
        # i.e. in the next round's setup.
        i = len(rounds.replay)
        if i % 2 == 0:
            if i > 0:
                pgbench_run()
                pair_done()
            pgbench_run()
        else:
            pair_done()

    def run() -> None:
        r = dbgym.replay(instance.dsn, w, speed=None, progress=False)
        s = r.summary()
        assert s.errors == 0 and s.statements == len(w)
        rounds.replay.append(s.throughput)

    n_rounds = ROUNDS[protocol]
    assert n_rounds % 2 == 0, "rounds come in P R, R P pairs"
    benchmark.pedantic(run, setup=setup, rounds=n_rounds, iterations=1)  # type: ignore[no-untyped-call]
    pgbench_run()  # the last round's pgbench run, after its replay
    pair_done()
    pg, rp = statistics.median(rounds.pgbench), statistics.median(rounds.replay)
    ratios = [r / p for p, r in zip(rounds.pgbench, rounds.replay, strict=True)]
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(
        pgbench_tps=rounds.pgbench, replay_tps=rounds.replay, ratios=ratios, median_ratio=ratio
    )
    line = (
        f"\n{protocol}: pgbench {pg:.0f} tps, replay {rp:.0f} tps (medians), median ratio "
        f"{ratio:.2f} over rounds {[round(r, 2) for r in ratios]}"
    )
    if rounds.prepared:
        prep = statistics.median(rounds.prepared)
        benchmark.extra_info.update(pgbench_prepared_tps=rounds.prepared)
        line += f" (pgbench -M prepared {prep:.0f} tps, ratio {rp / prep:.2f})"
    print(line)
    record(
        benchmark,
        label=f"{protocol} protocol, {CLIENTS} sessions: throughput vs pgbench -M {protocol}",
        figure=rp,
        baseline=pg,
        unit="tps",
        ratio=ratio,  # the median of the pairs' ratios
        bar=0.9,
        higher_is_better=True,
        detail=f"replay {rounds.replay} vs pgbench -M {protocol} {rounds.pgbench}",
    )


def test_replay_lag_at_original_rate(
    benchmark: BenchmarkFixture, instance: dbgym.PostgresInstance
) -> None:
    rate = 1000.0  # statements/s over 4 sessions: a fraction of what the server sustains
    w = dbgym.Workload.benchmark(
        "pgbench",
        script="select-only",
        clients=4,
        transactions=750,
        protocol="extended",
        rate=rate,
        seed=3,
    )
    lags: list[float] = []

    def run() -> None:
        r = dbgym.replay(instance.dsn, w, speed=1.0, progress=False)
        s = r.summary()
        assert s.errors == 0 and s.lag is not None
        lags.append(s.lag.p99_ms)

    references: list[float] = []

    def setup() -> None:
        references.append(pgbench_p99_lag_ms(instance, rate, 4))

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)  # type: ignore[no-untyped-call]
    ours, theirs = statistics.median(lags), statistics.median(references)
    benchmark.extra_info.update(p99_lag_ms=lags, pgbench_rate_p99_lag_ms=references)
    print(
        f"\np99 schedule lag at {rate:.0f}/s, median of rounds: replay {ours:.3f} ms {lags}, "
        f"pgbench -R {theirs:.3f} ms {references}"
    )
    record(
        benchmark,
        label=f"p99 schedule lag at {rate:.0f} statements/s (baseline: pgbench -R)",
        figure=ours,
        baseline=theirs,
        unit="ms",
        ratio=ours / theirs if theirs > 0 else None,
        bar=1.0,
        higher_is_better=False,
        on="figure",
        detail=f"replay p99 lag {lags} ms; pgbench -R p99 lag {references} ms",
    )
