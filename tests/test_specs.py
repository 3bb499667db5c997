"""Typed, serializable specs: JSON and pickle round trips, stable keys, SpecError naming the
key, the lazy registries, one benchmark entry yielding a matching state and workload, and
`Workload.from_spec` rebuilding the same statements."""

from __future__ import annotations

import inspect
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

import dbgym
from dbgym import benchmarks
from dbgym.benchmarks import BenchmarkState, BenchmarkWorkload
from dbgym.benchmarks.tpch import DEFAULT_SEED
from dbgym.dbms.backend import BACKENDS, Backend, backend_class
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import BackendUnavailableError, InvalidArgumentError, SpecError
from dbgym.plans.catalog import PlanCatalog
from dbgym.registry import Registry
from dbgym.replayer.options import ReplayOptions
from dbgym.spec import FrozenDict, Spec
from dbgym.state.spec import DsnState, DumpState, StateSpec
from dbgym.workload.spec import LogWorkload, Sample, SqlWorkload, WorkloadSpec

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"
ROOT = Path(__file__).resolve().parent.parent

#: Python expressions building one spec of every kind (evaluated here and in a child).
SPEC_EXPRS: tuple[str, ...] = (
    "InstanceSpec()",
    "InstanceSpec(backend='docker', image='dbgym/postgres:15', cpus=1.5, memory='2g', "
    "port=5999, knobs={'work_mem': '64MB', 'jit': False, 'random_page_cost': 1.1})",
    "InstanceSpec(bin_dir='/usr/lib/postgresql/15/bin', knobs={'max_connections': 50})",
    "benchmarks.get('tpch').state(scale=0.1, seed=7)",
    "benchmarks.get('pgbench').state(scale=3)",
    "DumpState('/data/db.dump', 'custom')",
    "DumpState('/data/db.sql')",
    "DsnState('host=db.example port=5433 dbname=shop user=reader')",
    "LogWorkload('/logs/pg.csv', format='csvlog', lenient=True)",
    "LogWorkload('/logs/pg.log', log_line_prefix='%m [%p] ', sample=(Sample(100, 3),))",
    "SqlWorkload('/queries')",
    "benchmarks.get('tpch').workload(scale=0.1, streams=3, queries=[1, 6])",
    "benchmarks.get('pgbench').workload(script='tpcb-like', clients=4, rate=50.0)"
    ".sampled(10, 1).sampled(5, 2)",
    "ReplayOptions()",
    "ReplayOptions(speed=None, concurrency=8, statement_timeout=2.5, threads=2)",
    "ReplayOptions(speed=4, identity='logged')",
)

_NAMES: dict[str, Any] = {
    "InstanceSpec": InstanceSpec,
    "benchmarks": benchmarks,
    "DumpState": DumpState,
    "DsnState": DsnState,
    "LogWorkload": LogWorkload,
    "SqlWorkload": SqlWorkload,
    "Sample": Sample,
    "ReplayOptions": ReplayOptions,
}


def _specs() -> list[Spec]:
    return [eval(expr, dict(_NAMES)) for expr in SPEC_EXPRS]


def _family(spec: Spec) -> type[Spec]:
    for root in (StateSpec, WorkloadSpec):
        if isinstance(spec, root):
            return root
    return type(spec)


# --- round trips and keys ---------------------------------------------------------------


@pytest.mark.parametrize("expr", SPEC_EXPRS)
def test_json_and_pickle_round_trip(expr: str) -> None:
    spec: Spec = eval(expr, dict(_NAMES))
    text = spec.to_json()
    # the family root decodes the kind to the right class; the class itself decodes too
    back = _family(spec).from_json(text)
    assert type(back) is type(spec) and back == spec and back.key() == spec.key()
    assert type(spec).from_json(text) == spec
    assert back.to_json() == text, "canonical: decoding and encoding again is the same text"
    assert hash(back) == hash(spec)
    pickled = pickle.dumps(spec)
    assert pickle.loads(pickled) == spec
    assert len(pickled) < 1500, "a spec pickles small"
    data = json.loads(text)
    if spec.kind:
        assert data["kind"] == spec.kind


def test_key_order_is_stable_and_canonical() -> None:
    a = InstanceSpec(knobs={"b": 1, "a": "x", "c": True}, cpus=2, backend="docker")
    b = InstanceSpec(backend="docker", cpus=2.0, knobs={"c": True, "a": "x", "b": 1})
    assert a == b and a.to_json() == b.to_json() and a.key() == b.key()
    assert list(a.knobs) == ["a", "b", "c"]
    data = json.loads(a.to_json())
    assert list(data) == sorted(data) and list(data["knobs"]) == ["a", "b", "c"]
    assert " " not in a.to_json()
    # benchmark defaults are filled in: however the parameters are spelled, one key
    tpch = benchmarks.get("tpch")
    assert tpch.state(scale=1).key() == tpch.state(seed=DEFAULT_SEED, keys=True).key()
    assert tpch.state(scale=1).key() != tpch.state(scale=2).key()
    assert json.loads(a.to_json(indent=2)) == data
    # a JSON text with its keys in another order decodes to the same spec
    shuffled = json.dumps(dict(reversed(list(data.items()))))
    assert InstanceSpec.from_json(shuffled).key() == a.key()


def test_keys_are_stable_across_processes() -> None:
    here = {expr: spec.key() for expr, spec in zip(SPEC_EXPRS, _specs(), strict=True)}
    assert len(set(here.values())) == len(SPEC_EXPRS), "different specs, different keys"
    code = (
        "import json, sys\n"
        "from dbgym import benchmarks\n"
        "from dbgym.dbms.spec import InstanceSpec\n"
        "from dbgym.replayer.options import ReplayOptions\n"
        "from dbgym.state.spec import DsnState, DumpState\n"
        "from dbgym.workload.spec import LogWorkload, Sample, SqlWorkload\n"
        "exprs = json.loads(sys.stdin.read())\n"
        "print(json.dumps({e: eval(e).key() for e in exprs}))\n"
    )
    for hashseed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(list(SPEC_EXPRS)),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hashseed},
        )
        assert json.loads(out.stdout) == here


def _child_keys(specs: list[Spec]) -> list[tuple[str, str]]:
    return [(type(s).__name__, s.key()) for s in specs]


def test_specs_cross_a_spawned_process() -> None:
    """What AsyncVectorEnv does under spawn: specs pickled to a fresh interpreter."""
    specs = _specs()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_child_keys, (specs,))
    assert got == [(type(s).__name__, s.key()) for s in specs]


def test_plan_catalog_pickles_through_its_json() -> None:
    cat = PlanCatalog(["orders", "lineitem"], ["orders_pkey"], ["orders.o_orderkey"])
    blob = pickle.dumps(cat)
    back = pickle.loads(blob)
    assert back == cat and back.relations == cat.relations and back.columns == cat.columns
    assert b"dbgym.plan_catalog" in blob, "the pickle holds the JSON form"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.apply(repr, (cat,)) == repr(cat)


# --- SpecError names the key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "text", "key", "message"),
    [
        (
            InstanceSpec,
            '{"backnd": "local"}',
            "backnd",
            "unknown key 'backnd'.*did you mean 'backend'",
        ),
        (
            InstanceSpec,
            '{"backend": "dokcer"}',
            "backend",
            "unknown backend 'dokcer'; did you mean",
        ),
        (InstanceSpec, '{"port": "5432"}', "port", "port: expected an integer or null, got '5432'"),
        (InstanceSpec, '{"port": 70000}', "port", "port: must be in 1..65535"),
        (InstanceSpec, '{"cpus": true}', "cpus", "cpus: expected a number or null, got True"),
        (InstanceSpec, '{"cpus": -1}', "cpus", "cpus: must be a positive number"),
        (InstanceSpec, '{"knobs": {"work_mem": [1]}}', "knobs.work_mem", "knobs.work_mem:"),
        (InstanceSpec, '{"knobs": []}', "knobs", "knobs: expected an object"),
        (InstanceSpec, '{"kind": "replay"}', "kind", "InstanceSpec has kind 'instance'"),
        (InstanceSpec, "[1, 2]", None, "must be a JSON object"),
        (InstanceSpec, "{not json", None, "not JSON"),
        (StateSpec, '{"benchmark": "tpch"}', "kind", "StateSpec needs a 'kind'"),
        (StateSpec, '{"kind": "bench"}', "kind", "unknown state kind 'bench'; did you mean"),
        (StateSpec, '{"kind": "benchmark"}', "benchmark", "missing key 'benchmark'"),
        (
            StateSpec,
            '{"kind": "benchmark", "benchmark": "tpcc"}',
            "benchmark",
            "unknown benchmark 'tpcc'; did you mean 'tpch'",
        ),
        (
            StateSpec,
            '{"kind": "benchmark", "benchmark": "tpch", "params": {"scale": 0}}',
            "params.scale",
            r"scale must be in \[0.001, ",
        ),
        (
            StateSpec,
            '{"kind": "benchmark", "benchmark": "tpch", "params": {"streams": 2}}',
            "params.streams",
            "streams: a workload parameter of tpch, not a state one",
        ),
        (
            StateSpec,
            '{"kind": "benchmark", "benchmark": "pgbench", "params": {"scael": 2}}',
            "params.scael",
            "unknown parameter 'scael' of benchmark 'pgbench'; did you mean 'scale'",
        ),
        (StateSpec, '{"kind": "dump", "path": "/x", "format": "zip"}', "format", "format:"),
        (StateSpec, '{"kind": "dsn", "dsn": "host=h password=hunter2"}', "dsn", "PGPASSFILE"),
        (StateSpec, '{"kind": "dsn", "dsn": "host=h =x"}', "dsn", "not a libpq connection"),
        (WorkloadSpec, '{"kind": "log", "path": "/l", "format": "xml"}', "format", "'csvlog'"),
        (WorkloadSpec, '{"kind": "log", "path": "/l", "lenient": "yes"}', "lenient", "true"),
        (
            WorkloadSpec,
            '{"kind": "sql", "path": "/q", "sample": [{"n": -1}]}',
            "sample[0].n",
            ">= 0",
        ),
        (WorkloadSpec, '{"kind": "sql", "path": "/q", "sample": [{"m": 1}]}', "sample[0].m", "'m'"),
        (WorkloadSpec, '{"kind": "sql", "path": "/q", "sample": {"n": 1}}', "sample", "a list"),
        (
            WorkloadSpec,
            '{"kind": "benchmark", "benchmark": "pgbench", "params": {"script": "tpcb"}}',
            "params.script",
            "unknown pgbench script 'tpcb'; did you mean 'tpcb-like'",
        ),
        (
            WorkloadSpec,
            '{"kind": "benchmark", "benchmark": "tpch", "params": {"queries": [1, 23]}}',
            "params.queries",
            r"queries\[1\]: must be an integer in 1..22",
        ),
        (ReplayOptions, '{"speed": 0}', "speed", "speed: must be a positive number or None"),
        (ReplayOptions, '{"speed": "fast"}', "speed", "speed: expected a number or null"),
        (ReplayOptions, '{"identity": "user"}', "identity", "one of 'dsn', 'logged'"),
        (ReplayOptions, '{"statement_timeout": -1}', "statement_timeout", "positive seconds"),
        (
            ReplayOptions,
            '{"identity": "logged", "concurrency": 4}',
            "concurrency",
            "use concurrency=None",
        ),
        (ReplayOptions, '{"threads": 0}', "threads", "threads: must be at least 1"),
    ],
)
def test_bad_input_raises_spec_error_naming_the_key(
    cls: type[Spec], text: str, key: str | None, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        cls.from_json(text)
    assert info.value.key == key
    assert isinstance(info.value, InvalidArgumentError) and isinstance(info.value, ValueError)
    assert "hunter2" not in str(info.value)


def test_constructors_validate_like_from_json() -> None:
    with pytest.raises(SpecError) as info:
        InstanceSpec(knobs={"": 1})
    assert info.value.key == "knobs"
    with pytest.raises(SpecError) as info:
        ReplayOptions(speed=float("nan"))
    assert info.value.key == "speed"
    with pytest.raises(SpecError) as info:
        InstanceSpec().replace(port=0)
    assert info.value.key == "port"
    with pytest.raises(SpecError) as info:
        benchmarks.get("tpch").specs(scale=0.1, sede=1)
    assert info.value.key == "sede" and "did you mean 'seed'" in str(info.value)
    # frozen: a spec cannot change under a key computed from it
    spec = InstanceSpec(knobs={"work_mem": "4MB"})
    with pytest.raises(AttributeError):
        spec.port = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.knobs["work_mem"] = "8MB"  # type: ignore[index]


def test_a_password_never_reaches_json_key_or_repr() -> None:
    secret = "s3cr3t-pw"
    with pytest.raises(SpecError) as info:
        DsnState(f"postgresql://u:{secret}@db:5432/shop")
    assert secret not in str(info.value) and info.value.key == "dsn"
    state = dbgym.DatabaseState.from_dsn(f"postgresql://u:{secret}@db:5432/shop")
    assert isinstance(state.spec, DsnState)
    for text in (state.spec.to_json(), state.spec.key(), repr(state.spec), repr(state)):
        assert secret not in text
    assert "password=***" in repr(state)
    assert DsnState.from_json(state.spec.to_json()) == state.spec
    assert pickle.dumps(state.spec).find(secret.encode()) == -1


# --- registries -------------------------------------------------------------------------


def test_registries_are_lazy_and_suggest_names() -> None:
    code = (
        "import sys\n"
        "from dbgym.dbms.backend import BACKENDS, backend_class\n"
        "import dbgym.state.spec, dbgym.workload.spec\n"
        "assert 'dbgym.dbms.docker_backend' not in sys.modules\n"
        "assert 'dbgym.benchmarks.tpch' not in sys.modules\n"
        "assert sorted(BACKENDS) == ['docker', 'local'] and 'docker' in BACKENDS\n"
        "assert 'dbgym.dbms.docker_backend' not in sys.modules\n"
        "backend_class('docker')\n"
        "assert 'dbgym.dbms.docker_backend' in sys.modules\n"
        "from dbgym.state.spec import StateSpec\n"
        'StateSpec.from_json(\'{"kind": "benchmark", "benchmark": "tpch"}\')\n'
        "assert 'dbgym.benchmarks.tpch' in sys.modules\n"
        "assert 'dbgym.benchmarks.pgbench' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "ok"
    with pytest.raises(
        InvalidArgumentError, match=r"unknown backend 'dockr'; did you mean 'docker'"
    ):
        backend_class("dockr")
    assert issubclass(backend_class("local"), Backend)
    with pytest.raises(InvalidArgumentError, match=r"choose one of: pgbench, tpch"):
        benchmarks.get("ycsb")


def test_a_registry_takes_new_entries_and_checks_them() -> None:
    reg: Registry[type[Backend]] = Registry(
        "backend",
        {"local": "dbgym.dbms.local:LocalBackend"},
        accepts=lambda o: isinstance(o, type) and issubclass(o, Backend),
        unavailable=BackendUnavailableError,
    )
    reg.register("missing", "dbgym.no_such_module:Backend")
    with pytest.raises(BackendUnavailableError, match=r"cannot import dbgym\.no_such_module"):
        reg.get("missing")
    reg.register("wrong", "dbgym.dbms.spec:InstanceSpec")
    with pytest.raises(TypeError, match="is not a backend"):
        reg.get("wrong")
    with pytest.raises(InvalidArgumentError, match="'module:attr'"):
        reg.register("bad", "dbgym.dbms.local.LocalBackend")
    with pytest.raises(InvalidArgumentError, match="already registered"):
        reg.register("local", "dbgym.dbms.docker_backend:DockerBackend")
    reg.register("same", "dbgym.dbms.local:LocalBackend")
    assert reg.get("same") is reg.get("local") is backend_class("local")
    assert reg.names() == ("local", "missing", "same", "wrong") and len(BACKENDS) == 2


def test_replay_options_are_replay_keywords() -> None:
    opts = ReplayOptions(speed=None, concurrency=2, statement_timeout=1.5)
    params = inspect.signature(dbgym.replay).parameters
    assert set(opts.replay_kwargs()) <= set(params)
    assert opts.replay_kwargs()["statement_timeout"] == 1.5


def test_frozen_dict_is_an_immutable_sorted_mapping() -> None:
    d = FrozenDict({"b": 2, "a": 1})
    assert list(d) == ["a", "b"] and d == {"a": 1, "b": 2} and len(d) == 2
    assert hash(d) == hash(FrozenDict({"a": 1, "b": 2}))
    assert pickle.loads(pickle.dumps(d)) == d


# --- workloads rebuilt from their specs -------------------------------------------------


def _statements(w: dbgym.Workload) -> list[tuple[int, int, str, tuple[str | None, ...]]]:
    return [
        (st.session, st.template_id, st.sql, st.params)
        for st in (w.statement(i) for i in range(len(w)))
    ]


def _rebuilt(w: dbgym.Workload) -> dbgym.Workload:
    assert w.spec is not None
    spec = WorkloadSpec.from_json(w.spec.to_json())
    return dbgym.Workload.from_spec(pickle.loads(pickle.dumps(spec)))


def test_from_spec_rebuilds_the_same_statements(tmp_path: Path) -> None:
    (tmp_path / "1.sql").write_text("select 1;\nselect * from t where a = 5;\n")
    (tmp_path / "2.sql").write_text("select * from t where a = 7")
    log = dbgym.Workload.from_log(DATA / "pg15.csv")
    stderr = dbgym.Workload.from_log(DATA / "pg15.log", lenient=True)
    sql = dbgym.Workload.from_sql(tmp_path)
    tpch = dbgym.Workload.benchmark("tpch", scale=0.1, seed=9, streams=2)
    pgb = dbgym.Workload.benchmark("pgbench", script="tpcb-like", clients=3, transactions=4)
    sampled = log.sample(20, seed=5)
    twice = tpch.sample(30, seed=1).sample(10, seed=2)
    cases = {
        "log": log,
        "stderr": stderr,
        "sql": sql,
        "tpch": tpch,
        "pgbench": pgb,
        "sampled": sampled,
        "twice": twice,
    }
    for name, w in cases.items():
        again = _rebuilt(w)
        assert len(again) == len(w) > 0, name
        assert _statements(again) == _statements(w), name
        assert again.spec == w.spec and again.source == w.source, name
    assert isinstance(log.spec, LogWorkload) and log.spec.path == str(DATA / "pg15.csv")
    assert sampled.spec is not None and sampled.spec.sample == (Sample(20, 5),)
    assert twice.spec is not None and [s.n for s in twice.spec.sample] == [30, 10]
    assert len(sampled) == 20 and _statements(sampled) != _statements(log.sample(20, seed=6))
    assert tpch.source == "benchmark:tpch" and log.source == str(DATA / "pg15.csv")
    assert log.subset([0, 1]).spec is None, "a list of indices is not a source"
    assert log.subset([0, 1]).source == log.source


# --- one benchmark entry, a matching state and workload ---------------------------------


def test_pgbench_entry_gives_matching_specs() -> None:
    state, workload = benchmarks.get("pgbench").specs(scale=3, clients=2, transactions=5)
    assert isinstance(state, BenchmarkState) and isinstance(workload, BenchmarkWorkload)
    assert dict(state.params) == {"scale": 3}
    assert workload.params["scale"] == 3 and workload.params["clients"] == 2
    assert len(dbgym.Workload.from_spec(workload)) == 10
    assert state == dbgym.DatabaseState.benchmark("pgbench", scale=3).spec


def test_tpch_entry_gives_a_state_and_workload_that_match(tmp_path: Path) -> None:
    state_spec, workload_spec = benchmarks.get("tpch").specs(
        scale=0.01, seed=11, streams=2, queries=[1, 3, 6, 14], keys=False
    )
    assert state_spec.params["scale"] == workload_spec.params["scale"] == 0.01
    assert state_spec.params["seed"] == workload_spec.params["seed"] == 11
    assert state_spec.params["keys"] is False and workload_spec.params["streams"] == 2
    state = dbgym.DatabaseState.from_spec(
        StateSpec.from_json(state_spec.to_json()), cache_dir=tmp_path
    )
    workload = dbgym.Workload.from_spec(workload_spec)
    assert len(workload) == 8 and len(workload.sessions) == 2
    instance = InstanceSpec(knobs={"work_mem": "8MB"})
    with state.launch(instance, progress=False) as inst, psycopg.connect(inst.dsn) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
        pks = conn.execute(
            "SELECT count(*) FROM pg_constraint "
            "WHERE contype = 'p' AND connamespace = 'public'::regnamespace"
        ).fetchone()
        assert pks == (0,), "keys=False reached the state"
        rows = {}
        for i in range(len(workload)):
            st = workload.statement(i)
            rows[st.template_id + 1] = len(conn.execute(st.sql).fetchall())
    assert rows[1] == 4, "Q1 groups the generated lineitems by (returnflag, linestatus)"
    assert rows[6] == 1 and rows[14] == 1
    entry = state.cached()
    assert entry is not None and entry.meta["spec"] == state_spec.to_dict()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"cpus": 2}, "cpus"), ({"memory": "1g"}, "memory"), ({"cpus": 1, "memory": 2**30}, "cpus")],
)
def test_local_instance_spec_refuses_resource_limits(kwargs: dict[str, Any], key: str) -> None:
    # the local backend cannot enforce them: refused when the spec is made (also from JSON),
    # before anything is launched, with the key named; the docker backend takes them
    with pytest.raises(SpecError, match=f"^{key}: the local backend cannot enforce") as caught:
        InstanceSpec(backend="local", **kwargs)
    assert caught.value.key == key and "backend='docker'" in str(caught.value)
    with pytest.raises(SpecError) as from_json:
        InstanceSpec.from_json(json.dumps({"backend": "local", **kwargs}))
    assert from_json.value.key == key
    docker = InstanceSpec(backend="docker", **kwargs)
    assert InstanceSpec.from_json(docker.to_json()) == docker
    assert InstanceSpec(backend="local").cpus is None
