"""`dbgym bench --self` (dbgym.bench.selfbench): the project's own benches in one table.

The main test slows a hot path down on purpose (the test-only switch DBGYM_TEST_SLOWDOWN,
dbgym/_slowdown.py, here on featurize()) and shows that its bench fails and the table says
FAIL for it (run_self), then that the same bench passes without the switch (`dbgym bench
--self`). Only that one bench runs
(`select`), twice (~25 s each: a server to capture plans, the plain-Python baseline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from rich.console import Console

from benches.guard import Guard, record, record_all
from dbgym.bench import selfbench
from dbgym.bench.selfbench import BenchResult, SelfBenchReport
from dbgym.errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parent.parent
FEATURIZE = "featurize and qppnet"  # one bench: featurize, QPPNet encoding
SLOWDOWN_S = 0.2  # per featurize() call; the bench's call takes ~60 ms here


def featurize_bench(report: dict[str, Any]) -> dict[str, Any]:
    (bench,) = report["benches"]
    assert bench["nodeid"] == (
        "benches/bench_featurize.py::test_featurize_vs_python_and_parse_floor[qppnet]"
    )
    return bench  # type: ignore[no-any-return]


def test_a_slowed_hot_path_fails_its_bench_and_passes_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. with the switch: featurize() sleeps SLOWDOWN_S per call -> the bench fails
    monkeypatch.setenv("DBGYM_TEST_SLOWDOWN", f"featurize={SLOWDOWN_S}")
    console = Console(record=True, width=200)
    slow_json = tmp_path / "slow.json"
    code = selfbench.run_self(json_out=slow_json, select=FEATURIZE, console=console)
    shown = console.export_text()
    assert code == selfbench.EXIT_BENCH_FAILED, shown
    slow = json.loads(slow_json.read_text())
    assert slow["schema_version"] == selfbench.SCHEMA_VERSION
    assert slow["passed"] is False and slow["pytest_exit_code"] == 1
    assert slow["counts"] == {"passed": 0, "failed": 1, "error": 0, "skipped": 0}
    bench = featurize_bench(slow)
    assert bench["outcome"] == "failed"
    guards = {g["label"]: g for g in bench["guards"]}
    assert set(guards) == {
        "qppnet: speedup over plain Python",
        "qppnet: time / the parse-only floor",
    }
    floor = guards["qppnet: time / the parse-only floor"]
    # the featurizer's time includes the sleep; the parse-only floor does not
    assert floor["figure"] >= SLOWDOWN_S * 1000
    assert floor["passed"] is False and floor["ratio"] > floor["bar"] == 2
    assert "time / the parse-only floor: ratio" in bench["message"]
    # the table: the failing guard's row says FAIL, with its figures; the assertion below
    row = next(line for line in shown.splitlines() if "parse-only floor" in line)
    assert "FAIL" in row and f"{floor['ratio']:.2f}x" in row and "<= 2x" in row
    assert "featurize::featurize_vs_python_and_parse_floor[qppnet]" in shown
    assert "FAIL benches/bench_featurize.py::test_featurize_vs_python_and_parse_floor" in shown
    assert "1 bench: 0 passed, 1 failed" in shown

    # 2. without it (through the command, `dbgym bench --self`): the same bench passes
    monkeypatch.delenv("DBGYM_TEST_SLOWDOWN")
    fast_json = tmp_path / "fast.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dbgym", "bench", "--self", "-k", FEATURIZE, "--json", fast_json],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fast = json.loads(fast_json.read_text())
    assert fast["passed"] is True and fast["counts"]["passed"] == 1
    bench = featurize_bench(fast)
    assert bench["outcome"] == "passed" and bench["message"] is None
    assert all(g["passed"] for g in bench["guards"])
    fast_floor = next(g for g in bench["guards"] if "parse-only floor" in g["label"])
    # the slowdown is what failed it: the slowed figure is the sleep above this one
    assert floor["figure"] - fast_floor["figure"] >= 0.9 * SLOWDOWN_S * 1000
    assert fast_floor["ratio"] <= 2
    assert bench["stats"]["rounds"] == 5 and bench["stats"]["min"] > 0
    assert fast["host"]["cpu_count"] >= 1 and "machine_info" in fast["pytest_benchmark"]
    row = next(line for line in proc.stdout.splitlines() if "parse-only floor" in line)
    assert "pass" in row and "FAIL" not in proc.stdout


def test_select_matching_no_bench_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"no bench .* matches -k 'no_such_bench_xyz'"):
        selfbench.run_self(json_out=None, select="no_such_bench_xyz", console=Console())
    # the script form maps it to the command's exit code for an invalid argument
    proc = subprocess.run(
        [sys.executable, "-m", "dbgym.bench.selfbench", "-k", "no_such_bench_xyz"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: no bench under" in proc.stderr and "'no_such_bench_xyz'" in proc.stderr


def test_pytest_that_cannot_run_is_an_error(tmp_path: Path) -> None:
    benches = tmp_path / "benches"
    benches.mkdir()
    (benches / "test_broken.py").write_text("def test_x(:\n")  # a collection error
    with pytest.raises(selfbench.SelfBenchError, match="could not run the benches"):
        selfbench.run_benches(benches=benches, console=Console(quiet=True))


def test_slowdown_switch_refuses_a_malformed_value() -> None:
    code = "from dbgym._slowdown import pause; pause('featurize')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "DBGYM_TEST_SLOWDOWN": "featurize=fast"},
    )
    assert out.returncode != 0
    assert "DBGYM_TEST_SLOWDOWN: 'featurize=fast' is not name=seconds" in out.stderr


def test_guards_are_recorded_before_they_are_asserted(benchmark: BenchmarkFixture) -> None:
    benchmark.pedantic(lambda: None, rounds=1)  # type: ignore[no-untyped-call]
    record(
        benchmark,
        label="fast enough",
        figure=0.2,
        baseline=1.0,
        unit="s",
        ratio=5.0,
        bar=4,
        higher_is_better=True,
    )
    with pytest.raises(AssertionError) as failed:
        record_all(
            benchmark,
            Guard("too slow", 0.6, 0.4, "s", 1.5, 0.5, False, on="figure", detail="rounds [..]"),
            Guard("reported", 0.9, None, "", None, None, True, on="figure"),
        )
    assert str(failed.value) == "too slow: figure 0.6 s, bar: figure <= 0.5 s (rounds [..])"
    stored = benchmark.extra_info["guards"]
    assert [(g["label"], g["passed"]) for g in stored] == [
        ("fast enough", True),
        ("too slow", False),
        ("reported", None),
    ]
    assert stored[0] == {
        "label": "fast enough",
        "figure": 0.2,
        "baseline": 1.0,
        "unit": "s",
        "ratio": 5.0,
        "bar": 4,
        "higher_is_better": True,
        "on": "ratio",
        "passed": True,
    }
    json.dumps(stored)  # serializable as pytest-benchmark writes it
    with pytest.raises(ValueError, match="a bar on the ratio needs a ratio"):
        Guard("x", 1.0, None, "s", None, 2.0, True)


def test_table_rows_for_each_outcome() -> None:
    guard = Guard("speedup", 10.0, 100.0, "ms", 10.0, 4, True).to_dict()
    report = SelfBenchReport(
        started="",
        ended="",
        duration_s=1.0,
        select=None,
        command=[],
        pytest_exit_code=1,
        benches=[
            BenchResult("benches/bench_a.py::test_ok[x]", "passed", None, 1.0, [guard]),
            BenchResult(
                "benches/bench_b.py::test_after",
                "failed",
                "AssertionError: rows differ\nassert 1 == 2",
                1.0,
                [guard],
            ),
            BenchResult("benches/bench_c.py::test_docker", "skipped", "no engine here", 0.1),
            BenchResult("benches/bench_d.py::test_setup", "error", "ConnectError: refused", 0.1),
        ],
        host={},
        pytest_benchmark={},
    )
    console = Console(record=True, width=200)
    selfbench.render(report, console)
    lines = console.export_text().splitlines()

    def row(text: str) -> str:
        return next(line for line in lines if text in line)

    assert "a::ok[x]" in row("a::ok[x]") and "pass" in row("a::ok[x]")  # not rich markup
    assert "10.0 ms" in row("a::ok[x]") and "100 ms" in row("a::ok[x]")
    assert ">= 4x" in row("a::ok[x]") and "10.0x" in row("a::ok[x]")
    assert "FAIL" in row("AssertionError: rows differ")  # failed after its guard passed
    assert "skip" in row("no engine here") and "ERROR" in row("ConnectError: refused")
    assert "4 benches: 1 passed, 1 failed, 1 errors, 1 skipped" in "\n".join(lines)
    assert report.passed is False
    assert report.to_dict()["benches"][0]["name"] == "a::ok[x]"


def test_junit_keys_match_pytest_benchmark_names() -> None:
    assert selfbench._key("benches/bench_featurize.py::test_f[qppnet]") == (
        "benches.bench_featurize",
        "test_f[qppnet]",
    )
    assert selfbench._key("benches/bench_x.py::test_y[0.1-a::b]") == (
        "benches.bench_x",
        "test_y[0.1-a::b]",
    )
    assert selfbench.benches_dir() == ROOT / "benches"
