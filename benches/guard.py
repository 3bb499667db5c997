"""A bench's guarded figures: recorded in the benchmark's extra_info, then asserted.

Every bench measures its own baseline in the same run and ends with `record(...)` (or
`record_all(...)` when it guards several figures). Each guard lands in
`benchmark.extra_info["guards"]` (so pytest-benchmark's `--benchmark-json` carries it and
`dbgym bench --self` shows it as one row of its table) *before* anything is asserted, so a
failing bench still reports every figure it measured. Fields of one guard:

- `label`: what is guarded ("speedup over plain Python");
- `figure`: the measurement of dbgym's own code, in `unit`;
- `baseline`: what it is measured against in the same run, in `unit` (None: nothing timed);
- `unit`: of figure and baseline ("s", "ms", "MB/s", "tps", ...);
- `ratio`: figure against baseline as the bench states it (a speedup, a slowdown, ...);
- `on`: "ratio" or "figure": which of the two the bar applies to;
- `bar`: the threshold (None: reported, not asserted);
- `higher_is_better`: the guarded value passes when >= bar (else when <= bar);
- `passed`: the outcome (None when not asserted).

Recording costs a few dict writes after the timed work: nothing a bench's timing sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pytest_benchmark.fixture import BenchmarkFixture


@dataclass(frozen=True)
class Guard:
    label: str
    figure: float
    baseline: float | None
    unit: str
    ratio: float | None
    bar: float | None
    higher_is_better: bool
    on: Literal["ratio", "figure"] = "ratio"
    #: Added to the assertion message when the guard fails (the rounds, the context).
    detail: str = ""

    def __post_init__(self) -> None:
        if self.on not in ("ratio", "figure"):
            raise ValueError(f"Guard.on must be 'ratio' or 'figure', got {self.on!r}")
        if self.bar is not None and self.on == "ratio" and self.ratio is None:
            raise ValueError(f"guard {self.label!r}: a bar on the ratio needs a ratio")

    @property
    def value(self) -> float | None:
        """The value the bar applies to."""
        return self.ratio if self.on == "ratio" else self.figure

    @property
    def passed(self) -> bool | None:
        if self.bar is None:
            return None
        value = self.value
        if value is None:  # refused in __post_init__
            raise ValueError(f"guard {self.label!r} has a bar but no {self.on}")
        return value >= self.bar if self.higher_is_better else value <= self.bar

    def describe_bar(self) -> str:
        """ "ratio >= 10" / "figure <= 0.5 s" (empty when not asserted)."""
        if self.bar is None:
            return ""
        unit = "x" if self.on == "ratio" else f" {self.unit}"
        sign = ">=" if self.higher_is_better else "<="
        return f"{self.on} {sign} {self.bar:g}{unit}".rstrip()

    def failure(self) -> str:
        unit = "x" if self.on == "ratio" else f" {self.unit}"
        text = f"{self.label}: {self.on} {self.value:.4g}{unit}".rstrip()
        text += f", bar: {self.describe_bar()}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("detail")
        d["passed"] = self.passed
        return d


def record_all(benchmark: BenchmarkFixture, *guards: Guard) -> None:
    """Record every guard in `benchmark.extra_info["guards"]`, then assert them all (one
    AssertionError naming each failing guard)."""
    stored: list[dict[str, Any]] = benchmark.extra_info.setdefault("guards", [])
    stored.extend(g.to_dict() for g in guards)
    failed = [g.failure() for g in guards if g.passed is False]
    if failed:
        raise AssertionError("; ".join(failed))


def record(
    benchmark: BenchmarkFixture,
    *,
    label: str,
    figure: float,
    baseline: float | None,
    unit: str,
    ratio: float | None,
    bar: float | None,
    higher_is_better: bool,
    on: Literal["ratio", "figure"] = "ratio",
    detail: str = "",
) -> None:
    """One guard: record it, then assert it."""
    record_all(
        benchmark,
        Guard(
            label=label,
            figure=figure,
            baseline=baseline,
            unit=unit,
            ratio=ratio,
            bar=bar,
            higher_is_better=higher_is_better,
            on=on,
            detail=detail,
        ),
    )
