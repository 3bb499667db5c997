"""DatabaseState on real servers: pgbench, the state cache, dumps and live copies."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import dbgym
from dbgym.benchmarks import pgbench, tpch
from dbgym.dbms.client_tools import conninfo_and_env, find_client
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import InvalidArgumentError, SpecError, WorkloadError
from dbgym.state.cache import StateCache
from tests.db_checks import checksums, counts, new_database


def test_pgbench_state_loads() -> None:
    with dbgym.PostgresInstance.launch() as inst:
        report = dbgym.DatabaseState.benchmark("pgbench", scale=2).load_into(inst)
        expect = {
            "pgbench_accounts": 200_000,
            "pgbench_branches": 2,
            "pgbench_tellers": 20,
            "pgbench_history": 0,
        }
        assert report.rows == expect
        assert counts(inst.dsn, list(expect)) == expect
        # the select-only workload's statements run on it
        t = pgbench.trace("select-only", scale=2, clients=1, transactions=3)
        assert len(t) == 3
        with inst.connect() as conn:
            aid = conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = 200000")
            assert aid.fetchone() == (0,)


def test_cache_hit_is_much_faster_and_identical(tmp_path: Path) -> None:
    state = dbgym.DatabaseState.benchmark("tpch", scale=0.05, seed=3, cache_dir=tmp_path)
    assert state.cached() is None
    t0 = time.perf_counter()
    first = state.launch(InstanceSpec(knobs={"work_mem": "7MB"}), progress=False)
    build = time.perf_counter() - t0
    try:
        built = checksums(first.dsn, list(tpch.TABLES))
        assert first.settings()["work_mem"] == str(7 * 1024)
    finally:
        first.close()
    entry = state.cached(first.server_version_num)
    assert entry is not None and entry.meta["params"]["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [entry.path.name], "no temp dirs left"
    t0 = time.perf_counter()
    with state.launch(progress=False) as second:
        hit = time.perf_counter() - t0
        assert checksums(second.dsn, list(tpch.TABLES)) == built
        assert second.settings()["work_mem"] == "4096", "build-time knobs are not cached"
    print(f"tpch SF 0.05: build+launch {build:.2f} s, cache hit launch {hit:.2f} s")
    assert hit < build / 2


def test_cache_writes_are_atomic_and_clean_up(tmp_path: Path) -> None:
    cache = StateCache(tmp_path)

    def broken(dest: Path) -> None:
        dest.mkdir()
        (dest / "PG_VERSION").write_text("15\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.store("x-1-pg150000", {"server_version_num": 150000}, broken)
    assert list(tmp_path.iterdir()) == [], "an interrupted write leaves nothing"
    stale = tmp_path / ".y-1-pg150000.tmp-999999999-abcd"
    stale.mkdir()
    (tmp_path / f".z-1-pg150000.tmp-{os.getpid()}-beef").mkdir()
    removed = cache.clean_stale()
    assert removed == [stale], "only dead writers' temp dirs are removed"


def _pg_dump(dsn: str, dest: Path, fmt: str) -> None:
    conninfo, env = conninfo_and_env(dsn)
    subprocess.run(
        [str(find_client("pg_dump")), f"-F{fmt}", "-f", str(dest), "-d", conninfo],
        check=True,
        env=env,
        capture_output=True,
    )


def test_from_dump_and_from_dsn_round_trip(tmp_path: Path) -> None:
    with dbgym.PostgresInstance.launch() as src:
        tpch.load(src.dsn, 0.01, 5)
        expect = checksums(src.dsn, list(tpch.TABLES))
        _pg_dump(src.dsn, tmp_path / "db.dump", "c")
        _pg_dump(src.dsn, tmp_path / "db.sql", "p")
        live = dbgym.DatabaseState.from_dsn(src.dsn)
        assert "***" in repr(live) and src.dsn.split(":")[2].split("@")[0] not in repr(live)
        with dbgym.PostgresInstance.launch() as dst:
            for db, state in (
                ("from_custom", dbgym.DatabaseState.from_dump(tmp_path / "db.dump")),
                ("from_plain", dbgym.DatabaseState.from_dump(tmp_path / "db.sql")),
                ("from_live", live),
            ):
                dsn = new_database(dst, db)
                state.load_into(dsn, progress=False)
                assert checksums(dsn, list(tpch.TABLES)) == expect, db
                with psycopg.connect(dsn) as conn:
                    fks = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
                    assert fks.fetchone() == (8,)


def test_dump_states_are_cached_by_content(tmp_path: Path) -> None:
    dump = tmp_path / "small.sql"
    dump.write_text(
        "CREATE TABLE t (x int PRIMARY KEY);\nINSERT INTO t SELECT generate_series(1, 500);\n"
    )
    state = dbgym.DatabaseState.from_dump(dump, cache_dir=tmp_path / "cache")
    with (
        pytest.warns(DeprecationWarning, match=r"InstanceSpec\(knobs=\.\.\.\)"),
        state.launch(progress=False, knobs={"work_mem": "5MB"}) as first,
    ):
        version = first.server_version_num
        assert first.settings()["work_mem"] == str(5 * 1024), "old keywords still work"
    entry = state.cached(version)
    assert entry is not None and entry.meta["kind"] == "dump"
    with state.launch(progress=False) as again:
        assert counts(again.dsn, ["t"]) == {"t": 500}
    dump.write_text("CREATE TABLE t (x int);\n")
    assert dbgym.DatabaseState.from_dump(dump, cache_dir=tmp_path / "cache").cached(version) is None


def test_bad_states_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="does not exist"):
        dbgym.DatabaseState.from_dump(tmp_path / "missing.dump")
    (tmp_path / "x.sql.gz").write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(WorkloadError, match="gzip"):
        dbgym.DatabaseState.from_dump(tmp_path / "x.sql.gz")
    with pytest.raises(InvalidArgumentError, match="unknown benchmark 'tpcc'"):
        dbgym.DatabaseState.benchmark("tpcc")
    with pytest.raises(SpecError, match="scale must be in") as info:
        dbgym.DatabaseState.benchmark("tpch", scale=0)
    assert info.value.key == "scale"
    with pytest.raises(SpecError, match="positive integer"):
        dbgym.DatabaseState.benchmark("pgbench", scale=0.5)
    with pytest.raises(SpecError, match="seed: a workload parameter of pgbench, not a state one"):
        dbgym.DatabaseState.benchmark("pgbench", seed=3)
    with pytest.raises(InvalidArgumentError, match="init_from"):
        dbgym.DatabaseState.benchmark("tpch", scale=0.01).launch(init_from=tmp_path)
    (tmp_path / "bad.sql").write_text("CREATE TABLE t (x int);\nSELECT nonsense FROM nowhere;\n")
    with dbgym.PostgresInstance.launch() as inst:
        with pytest.raises(
            WorkloadError, match=r"(?s)psql -f .*bad\.sql failed.*:2: ERROR.*nowhere"
        ):
            dbgym.DatabaseState.from_dump(tmp_path / "bad.sql").load_into(inst, progress=False)
        with psycopg.connect(inst.dsn) as conn:
            conn.execute("SELECT 1")


def test_cache_never_serves_another_major_version(backend: str, tmp_path: Path) -> None:
    """A cache entry built by another PostgreSQL major version is never handed to a server
    (the backend says its major version before it starts: local binaries, docker image)."""
    dump = tmp_path / "small.sql"
    dump.write_text("CREATE TABLE t (x int);\nINSERT INTO t VALUES (1), (2), (3);\n")
    state = dbgym.DatabaseState.from_dump(dump, cache_dir=tmp_path / "cache")
    spec = InstanceSpec(backend=backend)
    major = spec.server_major()
    assert major is not None and major >= 10
    # An entry of the same state built by another major version: a data directory that
    # cannot start (if it were used, the launch below would fail).
    other = major - 1
    name, params = state.spec.cache_name(), state.spec.cache_params()
    assert name is not None and params is not None
    key = state.cache.key(name, params, other * 10_000 + 7)
    (state.cache.root / key / "data").mkdir(parents=True)
    (state.cache.root / key / "data" / "PG_VERSION").write_text(f"{other}\n")
    meta = {
        "kind": "dump",
        "name": name,
        "params": params,
        "server_version_num": other * 10_000 + 7,
    }
    (state.cache.root / key / "state.json").write_text(json.dumps(meta))
    newest = state.cached()
    assert newest is not None and newest.path.name == key, "the fake is the only entry"
    assert state.cached(major=other) is not None
    assert state.cached(major=major) is None
    with state.launch(spec, progress=False) as inst:
        assert inst.server_version_num // 10_000 == major, "the backend said its version"
        assert counts(inst.dsn, ["t"]) == {"t": 3}
    entry = state.cached(major=major)
    assert entry is not None and entry.path.name != key
    assert entry.server_version_num // 10_000 == major
    # the next launch of this major version starts from its own entry
    with state.launch(spec, progress=False) as again:
        assert counts(again.dsn, ["t"]) == {"t": 3}
    # an entry whose data directory is of another version than its label is not served
    (entry.datadir / "PG_VERSION").write_text(f"{other}\n")
    assert state.cached(major=major) is None
