"""TPC-H generation throughput: the Rust generator vs a plain Python generator, same run.

The baseline is the straightforward Python way to write lineitem COPY text: one
`random.Random`, the same value domains, comments sliced from a prebuilt text pool, f-strings
and one join. Both produce the lineitem table of the same scale factor; the Rust side is
timed end to end (all cores, as `load` uses it) and must be >= 10x faster.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable
from typing import Any

from benches.guard import record
from dbgym import _core

SCALE = 0.02
START = datetime.date(1992, 1, 1)
CURRENT = datetime.date(1995, 6, 17)
MODES = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"]
INSTRUCTIONS = ["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"]
WORDS = [
    "furiously",
    "regular",
    "deposits",
    "sleep",
    "carefully",
    "among",
    "the",
    "final",
    "ideas",
    "quickly",
    "bold",
]


def python_lineitem(scale: float, seed: int) -> bytes:
    """Plain Python lineitem generator (same domains and formulas as the Rust one)."""
    rng = random.Random(seed)
    pool_rng = random.Random(0)
    pool = " ".join(pool_rng.choice(WORDS) for _ in range(200_000))
    parts, suppliers = int(200_000 * scale), int(10_000 * scale)
    dates = [(START + datetime.timedelta(days=d)).isoformat() for d in range(2557)]
    current = (CURRENT - START).days
    out: list[str] = []
    for i in range(int(1_500_000 * scale)):
        key = (i // 8) * 32 + i % 8 + 1
        odate = rng.randint(0, 2405)
        for line in range(1, rng.randint(1, 7) + 1):
            pk = rng.randint(1, parts)
            sk = (pk + rng.randint(0, 3) * (suppliers // 4 + (pk - 1) // suppliers)) % suppliers + 1
            qty = rng.randint(1, 50)
            price = qty * (90000 + (pk // 10) % 20001 + 100 * (pk % 1000))
            ship = odate + rng.randint(1, 121)
            commit = odate + rng.randint(30, 90)
            receipt = ship + rng.randint(1, 30)
            flag = ("R" if rng.random() < 0.5 else "A") if receipt <= current else "N"
            status = "O" if ship > current else "F"
            n = rng.randint(10, 43)
            start = rng.randint(0, len(pool) - n)
            out.append(
                f"{key}\t{pk}\t{sk}\t{line}\t{qty}\t{price // 100}.{price % 100:02d}\t"
                f"0.{rng.randint(0, 10):02d}\t0.0{rng.randint(0, 8)}\t{flag}\t{status}\t"
                f"{dates[ship]}\t{dates[commit]}\t{dates[receipt]}\t"
                f"{rng.choice(INSTRUCTIONS)}\t{rng.choice(MODES)}\t{pool[start : start + n]}\n"
            )
    return "".join(out).encode()


def best_of(fn: Callable[[], bytes], rounds: int = 3) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        size = len(fn())
        best = min(best, time.perf_counter() - t0)
    return best, size


def test_lineitem_generation_vs_python(benchmark: Any) -> None:
    gen = _core.TpchGenerator(SCALE, 1)
    rust = benchmark.pedantic(lambda: gen.table("lineitem"), rounds=5, iterations=1)
    rust_s = benchmark.stats.stats.min
    py_s, py_bytes = best_of(lambda: python_lineitem(SCALE, 1), rounds=2)
    rows = rust.count(b"\n")
    benchmark.extra_info.update(
        rust_mb_s=round(len(rust) / rust_s / 1e6), python_mb_s=round(py_bytes / py_s / 1e6, 1)
    )
    print(
        f"\nlineitem SF {SCALE}: rust {len(rust) / rust_s / 1e6:.0f} MB/s "
        f"({rows / rust_s / 1e6:.2f} M rows/s), python {py_bytes / py_s / 1e6:.1f} MB/s, "
        f"ratio {py_s / rust_s:.1f}x"
    )
    assert abs(py_bytes - len(rust)) / len(rust) < 0.2, "both generate a comparable table"
    record(
        benchmark,
        label=f"lineitem SF {SCALE} vs plain Python",
        figure=len(rust) / rust_s / 1e6,
        baseline=py_bytes / py_s / 1e6,
        unit="MB/s",
        ratio=py_s / rust_s,
        bar=10,
        higher_is_better=True,
    )
