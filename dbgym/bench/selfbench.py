"""`dbgym bench --self`: the project's own benches (benches/) in one table.

Runs `python -m pytest benches --benchmark-only` in a child process (optionally `-k
SELECT`), with pytest-benchmark's JSON (`--benchmark-json`) and a JUnit XML report, and
prints one row per guarded figure: bench, what is guarded, figure, baseline, ratio, bar,
pass/FAIL. The figures come from `benchmark.extra_info["guards"]`, which every bench fills
through benches/guard.py before it asserts, so a failing bench still shows what it measured;
the outcome and the assertion message of every bench come from the JUnit report (a bench
that failed before recording anything gets one row carrying its assertion).

Also a script: `python -m dbgym.bench.selfbench [-k EXPR] [--json OUT]`.

Exit code (`run_self`): 0 when every bench passed (skipped ones, e.g. docker without an
engine, are shown and do not fail the run), `EXIT_BENCH_FAILED` (4, RegressionError's code)
when one failed or errored. When pytest could not run the benches at all (no benches/ next
to the package, a collection error, an internal or usage error, or no report written)
`SelfBenchError` is raised (the CLI's exit 1); a `select` that matches no bench is an
InvalidArgumentError (2).

JSON output (`json_out`; SCHEMA_VERSION 1), one object:

- `schema_version` (int), `kind` ("dbgym-selfbench");
- `started`, `ended` (ISO 8601 UTC), `duration_s` (float);
- `select` (str | null): the `-k` expression; `command` (list of str): the pytest command;
- `pytest_exit_code` (int); `passed` (bool): no bench failed or errored;
- `counts`: {"passed", "failed", "error", "skipped"} -> number of benches;
- `benches`: one object per bench (pytest test), in run order:
  - `nodeid` ("benches/bench_tpch.py::test_..."), `name` (short: "tpch::..."),
  - `outcome`: "passed" | "failed" | "error" | "skipped",
  - `message` (str | null): the assertion / error / skip reason,
  - `seconds` (float): the test's wall time, setup included,
  - `guards`: list of {`label`, `figure`, `baseline`, `unit`, `ratio`, `bar`, `on`
    ("ratio" | "figure": what the bar applies to), `higher_is_better`, `passed` (bool, or
    null when reported without a bar)}; figure and baseline are in `unit`, the ratio is a
    plain factor;
  - `stats` (object | null): pytest-benchmark's timing of the measured call, seconds:
    `min`, `median`, `max`, `mean`, `stddev`, `rounds`;
  - `extra_info` (object): the bench's other extra_info keys;
- `host`: dbgym.provenance.host_facts() (versions, commit, CPU, cores, memory);
- `pytest_benchmark`: its `machine_info`, `commit_info` and `version`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dbgym.errors import DbgymError, InvalidArgumentError, RegressionError, exit_code

SCHEMA_VERSION = 1
#: a bench failed: the exit code of RegressionError (4), as for `--fail-if-slower`
EXIT_BENCH_FAILED = exit_code(RegressionError(""))
#: pytest's exit codes that mean the run itself went wrong (not a bench)
_PYTEST_INTERRUPTED, _PYTEST_INTERNAL, _PYTEST_USAGE, _PYTEST_NO_TESTS = 2, 3, 4, 5

Outcome = Literal["passed", "failed", "error", "skipped"]


class SelfBenchError(DbgymError):
    """pytest could not run the project's benches (not: a bench failed)."""


@dataclass(frozen=True)
class BenchResult:
    """One bench (one pytest test) of a --self run."""

    nodeid: str
    outcome: Outcome
    message: str | None
    seconds: float
    guards: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, float] | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """ "tpch::lineitem_generation_vs_python" for benches/bench_tpch.py::test_..."""
        path, _, test = self.nodeid.partition("::")
        module = Path(path).stem.removeprefix("bench_")
        return f"{module}::{test.removeprefix('test_')}"

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    def to_dict(self) -> dict[str, Any]:
        return {"nodeid": self.nodeid, "name": self.name} | {
            k: v for k, v in asdict(self).items() if k != "nodeid"
        }


@dataclass(frozen=True)
class SelfBenchReport:
    started: str
    ended: str
    duration_s: float
    select: str | None
    command: list[str]
    pytest_exit_code: int
    benches: list[BenchResult]
    host: dict[str, Any]
    pytest_benchmark: dict[str, Any]

    @property
    def passed(self) -> bool:
        return not any(b.failed for b in self.benches)

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for b in self.benches:
            out[b.outcome] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "dbgym-selfbench",
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "select": self.select,
            "command": self.command,
            "pytest_exit_code": self.pytest_exit_code,
            "passed": self.passed,
            "counts": self.counts,
            "benches": [b.to_dict() for b in self.benches],
            "host": self.host,
            "pytest_benchmark": self.pytest_benchmark,
        }


def benches_dir() -> Path:
    """benches/ of the source checkout dbgym runs from (it is not part of the package)."""
    import dbgym

    root = Path(dbgym.__file__).resolve().parent.parent
    path = root / "benches"
    if not (path / "guard.py").is_file():
        raise SelfBenchError(
            f"no benches at {path}: `dbgym bench --self` runs the benches of a source "
            "checkout of dbgym (installed with `pip install -e .`)"
        )
    return path


# -- reading the reports -------------------------------------------------------------------


def _key(nodeid: str) -> tuple[str, str]:
    """(JUnit classname, test name) of a pytest node id, as pytest's junitxml makes them."""
    address, bracket, params = nodeid.partition("[")
    names = address.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


#: JUnit elements of a test case's outcome, the one that wins first
_JUNIT_TAGS: tuple[tuple[str, Outcome], ...] = (
    ("failure", "failed"),
    ("error", "error"),
    ("skipped", "skipped"),
)


def _junit_cases(path: Path) -> list[tuple[tuple[str, str], Outcome, str | None, float]]:
    """(key, outcome, message, seconds) of every test case, in report order."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise SelfBenchError(f"pytest wrote no readable JUnit report at {path}: {e}") from e
    out: list[tuple[tuple[str, str], Outcome, str | None, float]] = []
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        outcome: Outcome = "passed"
        message: str | None = None
        # a failing call outranks a teardown error, which outranks a skip
        for tag, kind in _JUNIT_TAGS:
            node = case.find(tag)
            if node is not None:
                outcome = kind
                message = (node.get("message") or node.text or "").strip() or None
                break
        out.append((key, outcome, message, float(case.get("time", "0") or 0)))
    return out


def _benchmark_json(path: Path) -> dict[str, Any]:
    if not path.is_file():  # pytest-benchmark writes it only when a benchmark ran
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SelfBenchError(f"unreadable pytest-benchmark JSON at {path}: {e}") from e
    return data


def collect(junit_xml: Path, benchmark_json: Path) -> tuple[list[BenchResult], dict[str, Any]]:
    """The benches of one run: outcomes from the JUnit report, figures from the benchmark
    JSON (a bench whose measured call raised is in the JUnit report only)."""
    data = _benchmark_json(benchmark_json)
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for b in data.get("benchmarks", []):
        by_key[_key(b["fullname"])] = b
    results = []
    for key, outcome, message, seconds in _junit_cases(junit_xml):
        bench = by_key.get(key, {})
        extra = dict(bench.get("extra_info", {}))
        guards = extra.pop("guards", [])
        stats = bench.get("stats")
        nodeid = key[0].replace(".", "/") + ".py::" + key[1]
        if bench:
            nodeid = bench["fullname"]
        results.append(
            BenchResult(
                nodeid=nodeid,
                outcome=outcome,
                message=message,
                seconds=seconds,
                guards=guards,
                stats=None
                if stats is None
                else {
                    k: stats[k]
                    for k in ("min", "median", "max", "mean", "stddev", "rounds")
                    if k in stats
                },
                extra_info=extra,
            )
        )
    meta: dict[str, Any] = {
        k: data[k] for k in ("machine_info", "commit_info", "version") if k in data
    }
    return results, meta


# -- the table -----------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _with_unit(v: float | None, unit: str) -> str:
    text = _num(v)
    return f"{text} {unit}" if v is not None and unit else text


def _bar(g: dict[str, Any]) -> str:
    if g.get("bar") is None:
        return "(reported)"
    sign = ">=" if g.get("higher_is_better", True) else "<="
    unit = "x" if g.get("on") == "ratio" else g.get("unit", "")
    bar = float(g["bar"])
    value = str(int(bar)) if bar.is_integer() else _num(bar)
    return f"{sign} {value}x" if unit == "x" else f"{sign} {value} {unit}".rstrip()


_STYLE = {"pass": "green", "FAIL": "bold red", "ERROR": "bold red", "skip": "yellow"}


def _result(text: str) -> Text:
    return Text(text, style=_STYLE.get(text, "dim"))


def _first_line(message: str | None) -> str:
    return (message or "").strip().splitlines()[0] if message and message.strip() else ""


def render(report: SelfBenchReport, console: Console) -> None:
    """The one table, then the assertion of every failing bench."""
    table = Table(title="dbgym's own benches (figure vs a baseline timed in the same run)")
    for name in ("Bench", "Guarded figure", "Figure", "Baseline", "Ratio", "Bar", "Result"):
        right = name in ("Figure", "Baseline", "Ratio", "Bar")
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    status = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}

    def row(bench: str, label: str, *figures: str, result: str) -> None:
        # Text cells: names like test_x[qppnet] are not rich markup
        table.add_row(*(Text(c) for c in (bench, label, *figures)), _result(result))

    for b in report.benches:
        guard_failed = False
        for i, g in enumerate(b.guards):
            passed = g.get("passed")
            guard_failed |= passed is False
            unit = str(g.get("unit", ""))
            row(
                b.name if i == 0 else "",
                str(g.get("label", "")),
                _with_unit(g.get("figure"), unit),
                _with_unit(g.get("baseline"), unit),
                "-" if g.get("ratio") is None else f"{_num(g['ratio'])}x",
                _bar(g),
                result="info" if passed is None else "pass" if passed else "FAIL",
            )
        if not b.guards:
            note = _first_line(b.message) or "(no guard recorded)"
            row(b.name, note, "-", "-", "-", "-", result=status[b.outcome])
        elif b.failed and not guard_failed:  # failed or errored after its guards passed
            row("", _first_line(b.message), "", "", "", "", result=status[b.outcome])
    console.print(table)
    c = report.counts
    summary = (
        f"{len(report.benches)} bench{'es' if len(report.benches) != 1 else ''}: "
        f"{c['passed']} passed, {c['failed']} failed, "
        f"{c['error']} errors, {c['skipped']} skipped in {report.duration_s:.0f} s"
    )
    console.print(summary, style="green" if report.passed else "bold red")
    for b in report.benches:
        if b.failed:
            console.print(
                Text.assemble((status[b.outcome], "bold red"), f" {b.nodeid}: {b.message or ''}")
            )


# -- running -------------------------------------------------------------------------------


def _run_pytest(command: list[str], cwd: Path, console: Console) -> tuple[int, str]:
    """Run pytest, showing which bench runs; returns (exit code, its output)."""
    lines: list[str] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    done = 0
    try:
        with console.status("running the benches...") as status:
            for line in proc.stdout:
                lines.append(line)
                # -v: "benches/bench_x.py::test_y PASSED [ 50%]" once a bench is done
                if "::" in line and any(
                    w in line for w in (" PASSED", " FAILED", " ERROR", " SKIPPED")
                ):
                    done += 1
                    last = line.split(" [")[0].strip()
                    status.update(f"benches done: {done}; last: {last}")
                    if not console.is_terminal:  # a log: one line per bench instead
                        console.print(Text(last))
            code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)  # pytest stops cleanly (fixtures close servers)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return code, "".join(lines)


def run_benches(
    *,
    select: str | None = None,
    console: Console | None = None,
    benches: Path | None = None,
    pytest_args: Sequence[str] = (),
) -> SelfBenchReport:
    """Run the benches (all, or those `-k select` picks) and collect their figures."""
    from dbgym.provenance import host_facts

    console = console or Console()
    path = benches or benches_dir()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbgym-selfbench-") as tmp:
        bench_json, junit = Path(tmp) / "benchmark.json", Path(tmp) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(path),
            "--benchmark-only",
            f"--benchmark-json={bench_json}",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            "-v",
            "-p",
            "no:cacheprovider",
            *(["-k", select] if select else []),
            *pytest_args,
        ]
        code, output = _run_pytest(command, path.parent, console)
        if code == _PYTEST_NO_TESTS:
            raise InvalidArgumentError(f"no bench under {path} matches -k {select!r}")
        if code in (_PYTEST_INTERRUPTED, _PYTEST_INTERNAL, _PYTEST_USAGE) or not junit.exists():
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise SelfBenchError(f"pytest could not run the benches (exit code {code}):\n{tail}")
        results, meta = collect(junit, bench_json)
    return SelfBenchReport(
        started=started.isoformat(),
        ended=datetime.now(timezone.utc).isoformat(),
        duration_s=round(time.perf_counter() - t0, 3),
        select=select,
        command=command,
        pytest_exit_code=code,
        benches=results,
        host=host_facts(),
        pytest_benchmark=meta,
    )


def run_self(*, json_out: Path | None, select: str | None, console: Console) -> int:
    """`dbgym bench --self`: run the benches, print the table, write `json_out` (the
    fields in the module docstring). Returns 0 when all passed, EXIT_BENCH_FAILED when one
    failed; raises SelfBenchError when pytest could not run them."""
    report = run_benches(select=select, console=console)
    render(report, console)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(Text(f"JSON written to {json_out}"))
    return 0 if report.passed else EXIT_BENCH_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dbgym.bench.selfbench [-k EXPR] [--json OUT]` (same as `dbgym bench
    --self`); errors print `error: ...` and exit with the CLI's codes."""
    parser = argparse.ArgumentParser(
        prog="python -m dbgym.bench.selfbench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("-k", "--select", help="pytest -k expression picking benches")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    console = Console()
    try:
        return run_self(json_out=args.json, select=args.select, console=console)
    except (DbgymError, KeyboardInterrupt) as e:
        text = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e)
        print("error: " + text.replace("\n", "\n  "), file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
