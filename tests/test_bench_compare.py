"""`dbgym bench` on real servers: a TPC-H (SF 0.01) comparison where an index is known to
help (the report says so, with the right sign and significance, and an identical
configuration is no significant difference), an A/A calibration of the false-positive
rate, the exit codes (compared, regression beyond --fail-if-slower, could not run),
Ctrl-C, --from-sim and the project row, the docker backend (and the backend as a
configuration dimension), the statement timeout, and a writing workload (restores, one
server, a replay-mode dimension, cold cache).

Figures are printed (`pytest -s`): speedups, overhead, the A/A false-positive rate."""

from __future__ import annotations

import base64
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from scipy.stats import binom

import dbgym
from dbgym.bench import BenchConfig, BenchSpec, compare
from dbgym.bench.config import IndexEntry, ReplayMode
from dbgym.bench.report import build, load_schema
from dbgym.bench.runner import Measurements, measure
from dbgym.benchmarks import get as get_benchmark
from dbgym.dbms import instance_registry
from dbgym.dbms.spec import InstanceSpec
from dbgym.project.manager import ProjectManager
from dbgym.project.records import StatusCode, StatusSubcode
from dbgym.workload.spec import SqlWorkload
from tests.instance_checks import leftovers

DBGYM = [sys.executable, "-m", "dbgym"]
TPCH = ["--benchmark", "tpch", "--scale", "0.01"]
LOOKUP = "select count(*) from lineitem where l_shipdate = date $1"
INDEX_YAML = "name: shipdate-index\nindexes:\n  - {table: lineitem, columns: [l_shipdate]}\n"


def _write_sql(folder: Path, lookups: int, revenue: int = 0, orders: int = 0) -> Path:
    """Lookups by l_shipdate (an index makes them ~50x faster), and queries no index
    helps (a scan of lineitem for revenue, a scan of orders)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(15721)
    days = [f"1995-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(lookups)]
    (folder / "1_lookups.sql").write_text(
        "".join(f"SELECT count(*) FROM lineitem WHERE l_shipdate = date '{d}';\n" for d in days)
    )
    if revenue:
        (folder / "2_revenue.sql").write_text(
            "".join(
                "SELECT sum(l_extendedprice * l_discount) FROM lineitem WHERE l_quantity < "
                f"{rng.randint(10, 40)};\n"
                for _ in range(revenue)
            )
        )
    if orders:
        (folder / "3_orders.sql").write_text(
            "".join(
                f"SELECT count(*) FROM orders WHERE o_totalprice > {rng.randint(1000, 400000)};\n"
                for _ in range(orders)
            )
        )
    return folder


@pytest.fixture(scope="module")
def tpch_cached() -> None:
    """The TPC-H SF 0.01 state in the state cache (built once), so that the timed runs
    below launch their servers from it."""
    state = dbgym.DatabaseState.from_spec(get_benchmark("tpch").state(scale=0.01))
    if state.cached() is None:
        state.launch().close()


@pytest.fixture
def configs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "index.yaml").write_text(INDEX_YAML)
    (tmp_path / "same.json").write_text('{"name": "default-again"}')
    return {"index": tmp_path / "index.yaml", "same": tmp_path / "same.json"}


def _leftovers_of(pid: int) -> list[dict[str, Any]]:
    return [e for _, e in instance_registry.read_entries() if e.get("owner_pid") == pid]


def test_an_index_the_workload_needs_is_faster_and_an_identical_config_is_not(
    tpch_cached: None, configs: dict[str, Path], tmp_path: Path
) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=100, revenue=40, orders=20)
    out = {k: tmp_path / f"report.{k}" for k in ("json", "csv", "png", "html")}
    # alpha 0.01: the identical pair is a false positive with probability ~0.6% here
    # instead of ~3% (the A/A calibration below measures the default settings)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--default",
         "--config", str(configs["index"]), "--config", str(configs["same"]),
         "--repeat", "12", "--alpha", "0.01",
         "--json", str(out["json"]), "--csv", str(out["csv"]),
         "--png", str(out["png"]), "--html", str(out["html"])],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out["json"].read_text())
    jsonschema.validate(report, load_schema())
    default, index, same = report["configurations"]
    assert [c["name"] for c in (default, index, same)] == [
        "default",
        "shipdate-index",
        "default-again",
    ]
    assert default["verdict"] == "baseline" and default["speedup"] == 1.0
    # the index: faster, significantly, with the interval above 1
    assert index["speedup"] > 1.5 and index["ci_low"] > 1, index
    assert index["significant"] is True and index["verdict"] == "faster"
    assert index["p_value"] < 0.01 and index["runs"] == 12
    assert index["top_speedups"][0]["text"] == LOOKUP
    assert index["top_speedups"][0]["speedup"] > 10
    assert index["geomean_template_speedup"] > 1.5 and index["templates_compared"] == 3
    # the identical configuration: no significant difference, the interval holds 1
    assert same["significant"] is False and same["verdict"] == "no significant difference"
    assert same["ci_low"] <= 1 <= same["ci_high"]
    assert 0.7 < same["speedup"] < 1.4
    # the terminal table says it, the method is named
    assert "shipdate-index" in proc.stdout and "faster" in proc.stdout
    assert "no significant difference" in proc.stdout and "Holm" in proc.stdout
    # metadata: versions, machine, server, knobs
    meta = report["metadata"]
    assert meta["host"]["cpu_count"] and meta["host"]["dbgym_version"]
    servers = {s["name"]: s for s in meta["servers"]}
    assert len(servers) == 2  # default and default-again share one: same server part
    for server in servers.values():
        assert server["version"].startswith("PostgreSQL") and server["backend"] == "local"
    assert report["workload"]["writes"] is False and report["workload"]["statements"] == 160
    # CSV, PNG, HTML
    rows = list(csv.DictReader(out["csv"].open()))
    assert [r["name"] for r in rows] == ["default", "shipdate-index", "default-again"]
    assert rows[1]["verdict"] == "faster" and float(rows[1]["speedup"]) > 1.5
    png = out["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(out["png"]).shape
    assert width > 1000 and height > 300
    page = out["html"].read_text()
    assert "data:image/png;base64," in page and "shipdate-index" in page and "Holm" in page
    inline = page.split("data:image/png;base64,", 1)[1].split("'", 1)[0]
    assert base64.b64decode(inline).startswith(b"\x89PNG") and "<script" not in page
    # the run is recorded in the project ($DBGYM_PROJECT_DIR of the test)
    project = ProjectManager(os.environ["DBGYM_PROJECT_DIR"], reconcile=False)
    (row,) = project.records.bench_runs()
    assert row["report"]["configurations"][1]["verdict"] == "faster"
    (call,) = project.records.api_calls("cli.bench")
    assert call["code"] == 0 and call["details"]["bench_run_id"] == row["id"]
    # overhead: everything the comparison does besides replaying (servers from the
    # pristine state, applying the index, bookkeeping, statistics, stopping the servers)
    timing = report["timing"]
    replay = timing["replay_s"]
    process_pct = 100 * (wall - replay) / replay
    print(
        f"\nindex: {index['speedup']:.1f}x [{index['ci_low']:.1f}, {index['ci_high']:.1f}] "
        f"p={index['p_value']:.2g}; identical: {same['speedup']:.3f}x "
        f"[{same['ci_low']:.3f}, {same['ci_high']:.3f}] p={same['p_value']:.2g}\n"
        f"replays {replay:.1f} s; compare() total {timing['total_s']:.1f} s: overhead "
        f"{timing['overhead_s']:.2f} s = {timing['overhead_pct']:.1f}% (launch "
        f"{timing['launch_s']:.2f} s, close {timing['close_s']:.2f} s, stats "
        f"{timing['stats_s']:.3f} s); whole process {wall:.1f} s = {process_pct:.1f}% over "
        "the replays (with interpreter start-up, imports and the PNG/HTML)"
    )
    assert timing["overhead_pct"] <= 5.0, timing


def _chunk(m: Measurements, first_round: int, rounds: int) -> Measurements:
    """The measurements of `rounds` consecutive measured rounds: one small comparison."""
    spec = m.spec.replace(repeat=rounds, warmup=0)
    runs = [
        replace(r, round=r.round - first_round, warmup=False)
        for r in m.runs
        if first_round <= r.round < first_round + rounds
    ]
    return replace(m, spec=spec, runs=runs)


def test_aa_calibration_false_positive_rate_at_the_default_settings(
    tpch_cached: None, tmp_path: Path
) -> None:
    """Identical configurations, 100 comparisons at the default settings (10 runs each,
    alpha 0.05, 2000 bootstrap resamples): at most 5% may come out significant. The
    runs are real: one long interleaved sequence of a tiny workload, cut into 100
    consecutive comparisons of 10 rounds (after one warm-up round)."""
    sql = tmp_path / "tiny.sql"
    sql.write_text("SELECT count(*) FROM nation;\n")
    comparisons = 100
    defaults = BenchSpec(
        state=get_benchmark("tpch").state(scale=0.01),
        workload=SqlWorkload(str(sql)),
        configs=(BenchConfig(name="A"), BenchConfig(name="A-again")),
    )
    spec = defaults.replace(repeat=comparisons * defaults.repeat)
    t0 = time.perf_counter()
    m = measure(spec)
    host = {"dbgym_version": "calibration", "cpu_model": "", "cpu_count": 0}
    significant = 0
    for k in range(comparisons):
        chunk = _chunk(m, defaults.warmup + k * defaults.repeat, defaults.repeat)
        report = build(chunk, host=host)
        same = report.configurations[1]
        assert same.runs == defaults.repeat and report.spec.alpha == 0.05
        significant += same.significant
    rate = significant / comparisons
    # a procedure whose true rate is 5% exceeds 9 of 100 with probability 2.8%
    tail = float(binom.sf(significant - 1, comparisons, 0.05))
    print(
        f"\nA/A calibration: {significant} of {comparisons} comparisons significant "
        f"(false-positive rate {rate:.0%}; P(>= that many | 5%) = {tail:.2f}); "
        f"{len(m.runs)} runs in {time.perf_counter() - t0:.1f} s"
    )
    assert significant <= 9, f"false-positive rate {rate:.0%} is above 5% (p = {tail:.3f})"


def test_a_regression_beyond_the_threshold_exits_4(
    tpch_cached: None, configs: dict[str, Path], tmp_path: Path
) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=12)
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--config", str(configs["index"]),
         "--config", str(configs["same"]), "--repeat", "6", "--fail-if-slower", "10",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "default-again: significantly slower than shipdate-index by more than 10%" in (
        proc.stderr
    )
    report = json.loads(out.read_text())
    assert report["regressions"] == ["default-again"]
    slow = report["configurations"][1]
    assert slow["verdict"] == "slower" and slow["regression"] is True
    assert slow["speedup"] < 0.5 and slow["slowdown_pct"] > 100 and slow["ci_high"] < 1
    assert "regression" in proc.stdout


def test_a_server_that_cannot_run_exits_3(tpch_cached: None, tmp_path: Path) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=2)
    (tmp_path / "huge.yaml").write_text("name: huge\nknobs: {shared_buffers: 3TB}\n")
    proc = subprocess.Popen(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--default",
         "--config", str(tmp_path / "huge.yaml"), "--repeat", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=600)
    print("\n" + stderr.splitlines()[0])
    assert proc.returncode == 3, stdout + stderr
    assert stderr.startswith("error: configuration 'huge': ") and "shared" in stderr.lower()
    assert not _leftovers_of(proc.pid)  # both servers stopped and removed


def test_ctrl_c_stops_cleanly_and_reports_what_was_measured(
    tpch_cached: None, configs: dict[str, Path], tmp_path: Path
) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=10)
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--default",
         "--config", str(configs["index"]), "--repeat", "1000", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    servers: list[dict[str, Any]] = []
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # one line per finished round (not a terminal)
            line = proc.stderr.readline()
            lines.append(line)
            if "round 3/" in line or not line:
                break
        servers = _leftovers_of(proc.pid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(lines) + stderr
    assert proc.returncode == 130, stdout + stderr
    assert "error: interrupted" in stderr and "(interrupted)" in stdout
    assert len(servers) == 2, servers
    left = [what for fields in servers for what in leftovers(fields)]
    assert left == [], left
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and report["notes"][0].startswith("interrupted")
    runs = [c["runs"] for c in report["configurations"]]
    assert min(runs) >= 2 and max(runs) < 1000, runs
    assert report["configurations"][1]["speedup"] > 1


def test_from_sim_takes_the_best_configuration_of_a_recorded_simulation(
    tpch_cached: None, tmp_path: Path
) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=10)
    project_dir = tmp_path / "project"
    project = ProjectManager(project_dir, reconcile=False)
    records = project.records
    sim_id = records.create_simulation(
        name="tuning run",
        sim_key="dbgym-run",
        config=None,
        start_kwargs=None,
        sim_type_name="RunSimulation",
        sim_module_name="dbgym.runner.simulation",
    )
    best = {
        "name": "best of run (step 7)",
        "knobs": {"random_page_cost": 1.1},
        "indexes": [{"table": "lineitem", "columns": ["l_shipdate"], "using": "btree"}],
        "hints": {LOOKUP: {"enable_seqscan": False}},
    }
    records.set_result(sim_id, {"best_bench_config": best, "baseline": 1.0})
    records.finish(sim_id, status=(StatusCode.SUCCESS, StatusSubcode.NONE, "done", None))
    empty = records.create_simulation(
        name="nothing found", sim_key="dbgym-run", config=None, start_kwargs=None,
        sim_type_name="RunSimulation", sim_module_name="dbgym.runner.simulation",
    )  # fmt: skip
    out = tmp_path / "sim.json"
    proc = subprocess.run(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--default", "--from-sim", sim_id[:8],
         "--project-dir", str(project_dir), "--repeat", "5", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    cfg = report["configurations"][1]
    assert cfg["name"] == "best of run (step 7)"
    assert cfg["description"] == f"best configuration of simulation {sim_id}"
    assert cfg["config"]["knobs"] == {"random_page_cost": 1.1}
    assert cfg["verdict"] == "faster" and cfg["speedup"] > 2
    (server,) = [s for s in report["metadata"]["servers"] if cfg["name"] in s["configurations"]]
    assert server["knobs_in_force"] == {"random_page_cost": "1.1"}
    (row,) = ProjectManager(project_dir, reconcile=False).records.bench_runs()
    assert row["report"]["configurations"][1]["name"] == cfg["name"]
    # a simulation without a best configuration, a bad one: caller errors
    bad = subprocess.run(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--from-sim", empty,
         "--project-dir", str(project_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "recorded no best configuration" in bad.stderr, bad.stderr
    records.set_result(empty, {"best_bench_config": {"name": "x", "knobs": {"work_mem": [1]}}})
    bad = subprocess.run(
        [*DBGYM, "bench", *TPCH, "--sql", str(sql), "--from-sim", empty,
         "--project-dir", str(project_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert f"simulation {empty} (best_bench_config): knobs.work_mem" in bad.stderr


@pytest.fixture
def docker_or_skip() -> Iterator[None]:
    from tests.conftest import docker_unavailable_reason

    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    yield


def test_the_same_comparison_on_the_docker_backend_and_the_backend_as_a_dimension(
    tpch_cached: None, docker_or_skip: None, tmp_path: Path
) -> None:
    sql = _write_sql(tmp_path / "sql", lookups=20)
    index = BenchConfig(name="shipdate-index", indexes=(IndexEntry("lineitem", ("l_shipdate",)),))
    local = BenchConfig(name="local-default", backend="local")  # the backend as a dimension
    spec = BenchSpec(
        state=get_benchmark("tpch").state(scale=0.01),
        workload=SqlWorkload(str(sql)),
        configs=(BenchConfig.default(), index, local),
        instance=InstanceSpec(backend="docker"),
        repeat=6,
    )
    report = compare(spec, progress=False)
    jsonschema.validate(report.to_dict(), load_schema())
    faster = report.config("shipdate-index")
    assert faster.backend == "docker" and faster.significant and faster.verdict == "faster"
    assert faster.speedup is not None and faster.speedup > 2 and (faster.ci_low or 0) > 1
    assert report.config("local-default").backend == "local"
    assert report.config("local-default").runs == 6
    servers = {s["configurations"][0]: s for s in report.metadata["servers"]}
    assert servers["default"]["backend"] == servers["shipdate-index"]["backend"] == "docker"
    assert servers["default"]["image_id"].startswith("sha256:")
    assert servers["local-default"]["backend"] == "local"
    assert len(servers["local-default"]["server_binary_sha256"]) == 64
    print(
        f"\ndocker: index {faster.speedup:.1f}x [{faster.ci_low:.1f}, {faster.ci_high:.1f}], "
        f"overhead {report.timing['overhead_pct']:.0f}% of {report.timing['replay_s']:.1f} s"
    )


def test_statement_timeout_marks_runs_of_a_single_configuration(
    tpch_cached: None, tmp_path: Path
) -> None:
    sql = tmp_path / "slow.sql"
    sql.write_text("SELECT pg_sleep(0.3);\nSELECT 1;\n")
    spec = BenchSpec(
        state=get_benchmark("tpch").state(scale=0.01),
        workload=SqlWorkload(str(sql)),
        configs=(BenchConfig.default(),),
        repeat=2,
        warmup=0,
        statement_timeout=0.05,
    )
    report = compare(spec, progress=False)
    (only,) = report.configurations
    assert only.verdict == "baseline" and only.runs == 2 and only.timed_out_runs == 2
    assert only.errors_by_sqlstate == {"57014": 2}
    assert only.median_s is not None and only.median_s < 0.3
    assert any("lower bounds" in n for n in only.notes)
    jsonschema.validate(report.to_dict(), load_schema())


def test_a_writing_workload_on_one_server_with_a_replay_mode_dimension_and_cold_cache() -> None:
    """pgbench's tpcb-like script writes: every run starts from a restore; one server
    for both configurations (one_server), which differ in the replay mode only; cold
    cache: the server restarts (by the restore) and the OS page cache is dropped if
    permitted, and the report says which."""
    entry = get_benchmark("pgbench")
    workload = entry.workload(scale=1, transactions=40, clients=4, script="tpcb-like")
    spec = BenchSpec(
        state=entry.state(scale=1),
        workload=workload,
        configs=(
            BenchConfig(name="4 connections"),
            BenchConfig(name="1 connection", replay=ReplayMode(concurrency=1)),
        ),
        repeat=3,
        warmup=0,
        cache="cold",
        one_server=True,
    )
    report = compare(spec, progress=False)
    assert report.workload["writes"] is True and report.workload["restore_each_run"] is True
    (server,) = report.metadata["servers"]
    assert server["configurations"] == ["4 connections", "1 connection"]
    cache = report.metadata["cache"]["os_page_cache"]
    assert cache == "dropped before every run" or cache.startswith("not permitted: ")
    if cache.startswith("not permitted"):
        assert any("could not be dropped" in n for n in report.notes)
    for c in report.configurations:
        assert c.runs == 3 and c.throughput_per_s is not None and c.throughput_per_s > 0
        assert not c.errors_by_sqlstate, c.errors_by_sqlstate  # every run on a fresh state
    assert report.config("1 connection").replay == {"speed": None, "concurrency": 1}
    assert "restore" in report.method["servers"]
    print(
        f"\npgbench: {[round(c.throughput_per_s or 0) for c in report.configurations]} "
        f"statements/s; OS page cache: {cache}"
    )
