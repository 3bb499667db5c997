"""`dbgym bench` without servers: configuration files (YAML, JSON, TOML: one schema, errors
naming the bad field), BenchSpec, the statistics (Mann-Whitney U against scipy, Holm,
the bootstrap interval, outlier notes), the read/write classification of templates, and
the command's caller errors (exit 2, before any server starts)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from typer.testing import CliRunner

from dbgym.bench import stats
from dbgym.bench.config import BenchConfig, IndexEntry, ReplayMode, load_config
from dbgym.bench.runner import writing_template
from dbgym.bench.spec import BenchSpec, load_spec
from dbgym.cli import app
from dbgym.errors import SpecError
from dbgym.workload.spec import SqlWorkload

YAML = """\
name: tuned
description: more memory, an index, a hint
knobs:
  work_mem: 64MB
  enable_seqscan: off
indexes:
  - {table: lineitem, columns: [l_shipdate]}
  - {table: orders, columns: [o_custkey, o_orderdate], using: btree}
hints:
  3: {enable_hashjoin: off}
  "select count(*) from lineitem where l_shipdate = date $1": {enable_seqscan: off}
backend: docker
replay: {speed: null, concurrency: 4}
"""
JSON = {
    "name": "tuned",
    "description": "more memory, an index, a hint",
    "knobs": {"work_mem": "64MB", "enable_seqscan": False},
    "indexes": [
        {"table": "lineitem", "columns": ["l_shipdate"]},
        {"table": "orders", "columns": ["o_custkey", "o_orderdate"], "using": "btree"},
    ],
    "hints": {
        "3": {"enable_hashjoin": False},
        "select count(*) from lineitem where l_shipdate = date $1": {"enable_seqscan": False},
    },
    "backend": "docker",
    "replay": {"speed": None, "concurrency": 4},
}
TOML = """\
name = "tuned"
description = "more memory, an index, a hint"
backend = "docker"
indexes = [
  {table = "lineitem", columns = ["l_shipdate"]},
  {table = "orders", columns = ["o_custkey", "o_orderdate"], using = "btree"},
]
replay = {concurrency = 4}

[knobs]
work_mem = "64MB"
enable_seqscan = false

[hints]
"3" = {enable_hashjoin = false}
"select count(*) from lineitem where l_shipdate = date $1" = {enable_seqscan = false}
"""


def test_the_three_formats_load_the_same_configuration(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(YAML)
    (tmp_path / "c.json").write_text(json.dumps(JSON))
    (tmp_path / "c.toml").write_text(TOML)
    configs = [load_config(tmp_path / f"c.{ext}") for ext in ("yaml", "json", "toml")]
    assert configs[0] == configs[1] == configs[2]
    c = configs[0]
    assert dict(c.knobs) == {"work_mem": "64MB", "enable_seqscan": False}
    assert c.indexes[1] == IndexEntry("orders", ("o_custkey", "o_orderdate"), "btree")
    assert c.replay == ReplayMode(speed=None, concurrency=4)
    assert set(c.hints) == {"3", "select count(*) from lineitem where l_shipdate = date $1"}
    assert "work_mem=64MB" in c.summary() and "backend docker" in c.summary()
    # the schema round-trips, and from_dict takes YAML's integer template ids too
    assert BenchConfig.from_dict(c.to_dict()) == c
    assert BenchConfig.from_dict({"name": "h", "hints": {3: {"enable_hashjoin": False}}}).hints[
        "3"
    ] == {"enable_hashjoin": False}
    # a file without a description says where it came from
    (tmp_path / "d.yaml").write_text("name: plain\n")
    assert load_config(tmp_path / "d.yaml").description == "from d.yaml"


@pytest.mark.parametrize(
    ("file", "text", "key", "words"),
    [
        ("a.yaml", "knobs: {work_mem: 64MB}\n", "name", "missing key 'name'"),
        ("b.yaml", "name: b\nknobs:\n  work_mem: [1, 2]\n", "knobs.work_mem", "expected"),
        ("c.yaml", "name: c\nindex: []\n", "index", "did you mean 'indexes'"),
        ("d.json", '{"name": "d", "indexes": [{"table": "t"}]}', "indexes[0].columns", "missing"),
        ("e.toml", 'name = "e"\n[[indexes]]\ntable = "t"\ncolumns = ["a b"]\n',
         "indexes[0].columns", "column names"),
        ("f.yaml", "name: f\nindexes: [{table: t, columns: [a]}, {table: t, columns: [a]}]\n",
         "indexes[1]", "listed twice"),
        ("g.yaml", "name: g\nhints: {'3': {enable_hashjoin: [off]}}\n", "hints.3.enable_hashjoin",
         "expected"),
        ("h.yaml", "name: h\nbackend: kubernetes\n", "backend", "backend"),
        ("i.yaml", "name: i\nreplay: {concurrency: 0}\n", "replay.concurrency", "at least 1"),
        ("j.yaml", "name: ''\n", "name", "empty"),
        ("k.yaml", "- name: k\n", None, "must be an object"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_file_and_the_field(
    tmp_path: Path, file: str, text: str, key: str | None, words: str
) -> None:
    path = tmp_path / file
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_config(path)
    assert info.value.key == key
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("name: x\n  bad: : yaml\n")
    with pytest.raises(SpecError, match=r"x.yaml: not valid YAML at line 2"):
        load_config(tmp_path / "x.yaml")
    (tmp_path / "x.json").write_text('{"name": "x",}')
    with pytest.raises(SpecError, match=r"x.json: not valid JSON at line 1"):
        load_config(tmp_path / "x.json")
    (tmp_path / "x.toml").write_text("name = \n")
    with pytest.raises(SpecError, match=r"x.toml: not valid TOML"):
        load_config(tmp_path / "x.toml")
    (tmp_path / "x.ini").write_text("name=x\n")
    with pytest.raises(SpecError, match=r"unknown format '.ini'"):
        load_config(tmp_path / "x.ini")
    with pytest.raises(SpecError, match=r"nope.yaml: cannot be read"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match=r"^simulation abc: unknown key 'nob'") as info:
        BenchConfig.from_dict({"name": "s", "nob": {}}, where="simulation abc")
    assert info.value.key == "nob"


def _spec(**kw: Any) -> BenchSpec:
    from dbgym.benchmarks import get

    state = get("tpch").state(scale=0.01)
    return BenchSpec(
        state=state,
        workload=SqlWorkload("/tmp/q"),
        configs=kw.pop("configs", (BenchConfig.default(), BenchConfig(name="b"))),
        **kw,
    )


def test_bench_spec_round_trips_and_refuses_bad_values(tmp_path: Path) -> None:
    spec = _spec(repeat=7, cache="cold", statement_timeout=2.5, fail_if_slower=10)
    assert BenchSpec.from_json(spec.to_json()) == spec
    (tmp_path / "spec.json").write_text(spec.to_json())
    assert load_spec(tmp_path / "spec.json") == spec
    # a report's file holds its spec: --spec takes it too
    report = {"kind": "dbgym-bench", "spec": spec.to_dict()}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert load_spec(tmp_path / "report.json") == spec
    bad: list[tuple[dict[str, object], str]] = [
        ({"configs": ()}, "configs"),
        ({"configs": (BenchConfig(name="a"), BenchConfig(name="a"))}, "configs[1].name"),
        ({"repeat": 0}, "repeat"),
        ({"warmup": -1}, "warmup"),
        ({"cache": "lukewarm"}, "cache"),
        ({"restore": "sometimes"}, "restore"),
        ({"alpha": 0.7}, "alpha"),
        ({"bootstrap": 10}, "bootstrap"),
        ({"statement_timeout": 0.0}, "statement_timeout"),
        ({"fail_if_slower": -5.0}, "fail_if_slower"),
        ({"sample": 0}, "sample"),
    ]
    for kw, key in bad:
        with pytest.raises(SpecError) as info:
            _spec(**kw)
        assert info.value.key == key, (kw, info.value)
    # a configuration on the local backend cannot take a docker memory limit
    from dbgym.dbms.spec import InstanceSpec

    with pytest.raises(SpecError) as info:
        _spec(
            instance=InstanceSpec(backend="docker", memory="1g"),
            configs=(BenchConfig(name="a"), BenchConfig(name="l", backend="local")),
        )
    assert info.value.key == "configs[1].backend"


def test_mann_whitney_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    for n, m in [(1, 1), (3, 3), (4, 6), (10, 10), (20, 25), (40, 40)]:
        a, b = rng.lognormal(0, 0.3, n), rng.lognormal(0.2, 0.3, m)
        assert stats.mann_whitney_p(a, b) == pytest.approx(
            mannwhitneyu(a, b, method="exact").pvalue, rel=1e-9
        )
    tied_a = np.round(rng.normal(0, 1, 30), 1)
    tied_b = np.round(rng.normal(0.4, 1, 30), 1)
    assert stats.mann_whitney_p(tied_a, tied_b) == pytest.approx(
        mannwhitneyu(tied_a, tied_b, method="asymptotic").pvalue, rel=1e-9
    )
    big_a, big_b = rng.normal(0, 1, 60), rng.normal(0.3, 1, 60)
    assert stats.mann_whitney_p(big_a, big_b) == pytest.approx(
        mannwhitneyu(big_a, big_b, method="asymptotic").pvalue, rel=1e-9
    )
    assert stats.mann_whitney_p([], [1.0]) == 1.0
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    assert stats.min_p_value(10, 10) == pytest.approx(2 / math.comb(20, 10))


def test_holm_and_the_bootstrap_interval() -> None:
    # Holm: sorted p * (k - rank), made monotone, capped at 1
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    rng = np.random.default_rng(1)
    base = rng.normal(2.0, 0.05, 12)
    fast = rng.normal(1.0, 0.03, 12)
    low, high = stats.bootstrap_ratio_ci(base, fast, alpha=0.05, resamples=2000, rng=rng)
    assert 1.8 < low < stats.speedup(base, fast) < high < 2.2
    same_low, same_high = stats.bootstrap_ratio_ci(
        base, rng.permutation(base), alpha=0.05, resamples=2000, rng=rng
    )
    assert same_low <= 1 <= same_high
    assert stats.geometric_mean([2.0, 8.0, math.nan, 0.0]) == pytest.approx(4.0)
    outliers, notes = stats.outlier_notes([3.0, 1.0, 1.01, 0.99, 1.02, 1.0, 0.98, 1.0])
    assert outliers == [0]
    assert any("outliers" in n for n in notes) and any("first measured run" in n for n in notes)
    assert any("unstable" in n for n in notes)


@pytest.mark.parametrize(
    ("text", "writes"),
    [
        ("select count(*) from lineitem where l_shipdate = date $1", False),
        ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", False),
        ("with x as (select 1) select * from x", False),
        ("(select 1) union (select 2)", False),
        ("begin", False),
        ("select * from orders for update", True),
        ("select * into t from orders", True),
        ("select nextval($1)", True),
        ("update pgbench_accounts set abalance = abalance + $1 where aid = $2", True),
        ("insert into t values ($1)", True),
        ("with d as (delete from t returning *) select * from d", True),
        ("create index on t (a)", True),
        ("vacuum t", True),
        ("select updated_at, created from t", False),
    ],
)
def test_templates_that_may_write(text: str, writes: bool) -> None:
    assert writing_template(text) is writes


def test_cli_caller_errors_exit_2_before_any_server(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "q.sql").write_text("SELECT 1;\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nknobs: {work_mem: [1]}\n")
    hint = "name: hint\nhints: {'select 42 from nowhere': {enable_seqscan: off}}\n"
    (tmp_path / "hint.yaml").write_text(hint)
    base = ["bench", "--benchmark", "tpch", "--scale", "0.01", "--sql", str(tmp_path / "q.sql")]
    cases = [
        (base, "give the configurations to compare"),
        ([*base, "--config", str(tmp_path / "bad.yaml")], "bad.yaml: knobs.work_mem: expected"),
        ([*base, "--default", "--cache", "tepid"], "cache: expected one of 'warm', 'cold'"),
        ([*base, "--default", "--repeat", "0"], "repeat: must be at least 1"),
        ([*base, "--default", "--select", "x"], "--select/-k goes with --self"),
        (["bench", "--default", "--sql", str(tmp_path / "q.sql")], "say what to tune on"),
        (
            [*base, "--default", "--config", str(tmp_path / "hint.yaml")],
            "is neither a template id nor the text of a template of the workload",
        ),
    ]
    for args, words in cases:
        out = runner.invoke(app, args)
        assert out.exit_code == 2, (args, out.output)
        assert "error: " in out.output and words in out.output, (args, out.output)
