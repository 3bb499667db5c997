"""The project folder and database: GymDash's layout and columns, migrations, many openers,
api_calls. Real SQLite files, real processes."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from dbgym.errors import InvalidArgumentError, ProjectError, ProjectVersionError
from dbgym.project.api_calls import api_call, recorded
from dbgym.project.db import migrate, read_version
from dbgym.project.manager import ProjectManager, open_if_named, resolve_project_dir
from dbgym.project.records import StatusCode, StatusSubcode
from dbgym.project.schema import GYMDASH_COLUMNS, MIGRATIONS, SCHEMA_VERSION
from tests import project_db_procs as procs

FIXTURES = Path(__file__).parent / "fixtures" / "project"
#: Every released schema has a fixture database (version -> file).
RELEASED = {1: FIXTURES / "schema-v1.db"}


def _columns(db: Path, table: str) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r[1] for r in c.execute(f"PRAGMA table_info({table})")]


def test_folder_layout_and_gymdash_calls(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path / "p")
    assert pm.project_folder() == (tmp_path / "p").absolute()
    assert pm.db_folder() == pm.project_folder() / "db"
    assert pm.sims_folder() == pm.project_folder() / "sims"
    assert pm.resources_folder() == pm.project_folder() / "resources"
    assert pm.db_path() == pm.db_folder() / "simulations.db"
    for folder in (pm.db_folder(), pm.sims_folder(), pm.resources_folder()):
        assert folder.is_dir()
    assert pm.db_path().is_file()
    assert pm.sim_folder("abc", create=True) == pm.sims_folder() / "abc"


def test_project_dir_argument_env_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBGYM_PROJECT_DIR", str(tmp_path / "from-env"))
    assert resolve_project_dir(None) == tmp_path / "from-env"
    assert resolve_project_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DBGYM_PROJECT_DIR")
    monkeypatch.chdir(tmp_path)
    assert resolve_project_dir(None) == tmp_path / ".dbgym-projects"


def test_gymdash_tables_have_their_exact_columns(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path)
    for table, columns in GYMDASH_COLUMNS.items():
        found = _columns(pm.db_path(), table)
        assert found[: len(columns)] == list(columns), table
    assert GYMDASH_COLUMNS["simulations"] == (
        "sim_id", "name", "created", "started", "ended", "is_done", "cancelled", "failed",
        "force_stopped", "config", "start_kwargs", "sim_type_name", "sim_module_name",
    )  # fmt: skip
    assert GYMDASH_COLUMNS["sim_status"] == (
        "id", "sim_id", "time", "code", "subcode", "details", "error_trace",
    )  # fmt: skip
    assert GYMDASH_COLUMNS["api_calls"] == ("id", "name", "time", "code", "details")
    with sqlite3.connect(pm.db_path()) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        fks = c.execute("PRAGMA foreign_key_list(sim_status)").fetchall()
        assert [(f[2], f[3], f[4]) for f in fks] == [("simulations", "sim_id", "sim_id")]
        pk = [r[1] for r in c.execute("PRAGMA table_info(simulations)") if r[5]]
        assert pk == ["sim_id"]
        indexes = {r[1] for r in c.execute("SELECT * FROM sqlite_master WHERE type='index'")}
        assert {"sim_status_by_sim", "simulations_by_done", "api_calls_by_name"} <= indexes
    conn = pm.records.conn
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_rows_times_codes_and_the_first_terminal_writer(tmp_path: Path) -> None:
    r = ProjectManager(tmp_path).records
    sid = r.create_simulation(
        name="n", sim_key="k", config={"a": 1}, start_kwargs=None,
        sim_type_name="T", sim_module_name="m",
    )  # fmt: skip
    row = r.get(sid)
    assert row.state == "pending" and row.config == {"a": 1}
    created = row.created
    assert created.endswith("+00:00")  # timezone-aware ISO 8601 UTC
    r.mark_started(sid, pid=os.getpid(), pid_start_time=None, host="h")
    assert r.get(sid[:8]).state == "running"  # a unique prefix is enough
    r.add_status(sid, StatusCode.INFO, details="hello")
    assert r.finish(sid, status=(StatusCode.SUCCESS, StatusSubcode.NONE, "done", None))
    assert not r.finish(
        sid, failed=True, force_stopped=True,
        status=(StatusCode.FAIL, StatusSubcode.ERROR, "late", None),
    )  # fmt: skip
    row = r.get(sid)
    assert row.state == "done" and not row.failed and row.ended is not None
    assert [(s.code, s.details) for s in r.statuses(sid)] == [
        (StatusCode.INFO, "hello"),
        (StatusCode.SUCCESS, "done"),
    ]
    with sqlite3.connect(r.db_path) as c:
        assert c.execute("SELECT code, subcode FROM sim_status ORDER BY id").fetchall() == [
            (2, 0),
            (0, 0),
        ]
    with pytest.raises(InvalidArgumentError, match="no simulation"):
        r.get("ffffffff")
    assert [x.sim_id for x in r.list(state="done")] == [sid]
    with pytest.raises(InvalidArgumentError, match="state 'x'"):
        r.list(state="x")


def test_delete_removes_rows_and_folder_but_not_a_running_one(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path)
    r = pm.records
    sid = r.create_simulation(
        name="n", sim_key="k", config=None, start_kwargs=None, sim_type_name="T",
        sim_module_name="m",
    )  # fmt: skip
    (pm.sim_folder(sid, create=True) / "x.txt").write_text("x")
    r.add_status(sid, StatusCode.INFO, details="s")
    r.add_file(sid, "steps", "x.txt", 1, 1)
    r.mark_started(sid, pid=os.getpid(), pid_start_time=None, host="h")
    with pytest.raises(InvalidArgumentError, match="running: cancel it first"):
        r.delete(sid)
    r.finish(sid, status=(StatusCode.SUCCESS, StatusSubcode.NONE, "done", None))
    r.delete(sid)
    assert not pm.sim_folder(sid).exists()
    assert r.count_statuses() == 0 and r.files(sid) == []


def test_every_released_schema_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    assert set(RELEASED) == set(range(1, SCHEMA_VERSION + 1))
    for version, fixture in RELEASED.items():
        folder = tmp_path / f"v{version}"
        (folder / "db").mkdir(parents=True)
        shutil.copy(fixture, folder / "db" / "simulations.db")
        assert read_version(folder / "db" / "simulations.db") == version
        pm = ProjectManager(folder, reconcile=False)
        assert read_version(pm.db_path()) == SCHEMA_VERSION
        (row,) = pm.records.list()
        assert row.name == "fixture run" and row.state == "done"
        assert row.result["best_bench_config"]["knobs"] == {"work_mem": "64MB"}
        assert [s.details for s in pm.records.statuses(row.sim_id)][-1] == "done"
        assert pm.records.files(row.sim_id)[0]["rows"] == 4
        assert pm.records.api_calls("cli.run")[0]["details"]["outcome"] == "ok"
        with sqlite3.connect(pm.db_path()) as c:
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_future_migration_applies_in_one_transaction_and_newer_is_refused(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "p"
    (folder / "db").mkdir(parents=True)
    db = folder / "db" / "simulations.db"
    shutil.copy(RELEASED[1], db)
    # a failing migration leaves the database at its version (one transaction)
    broken = [*MIGRATIONS, ["ALTER TABLE simulations ADD COLUMN tag TEXT", "SELECT nope()"]]
    with pytest.raises(ProjectError, match="nope"):
        migrate(db, broken)
    assert read_version(db) == 1
    assert "tag" not in _columns(db, "simulations")
    # a test-only version 2
    v2 = [*MIGRATIONS, ["ALTER TABLE simulations ADD COLUMN tag TEXT"]]
    assert migrate(db, v2) == 1
    assert read_version(db) == 2 and "tag" in _columns(db, "simulations")
    # this dbgym knows version 1 only: refused, and the file is not touched
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(ProjectVersionError, match="schema version 2, written by a newer dbgym"):
        ProjectManager(folder)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_file_that_is_not_a_project_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "simulations.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ProjectError, match="not a readable project database"):
        ProjectManager(tmp_path)


def test_32_processes_open_a_fresh_project_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    ctx = procs.forkserver()
    barrier, results = ctx.Barrier(32), ctx.Queue()
    logs = [tmp_path / f"opener-{i}.log" for i in range(32)]
    openers = [
        ctx.Process(target=procs.opener, args=(str(folder), str(logs[i]), barrier, results))
        for i in range(32)
    ]
    for p in openers:
        p.start()
    found: list[tuple[float, int]] = []
    try:
        while len(found) < 32:
            tag, status, value = results.get(timeout=120)
            assert status == "ok", f"opener {tag}: {value}"
            found.append(value)
    finally:
        for p in openers:
            p.join(timeout=30)
    assert [p.exitcode for p in openers] == [0] * 32
    for log in logs:
        assert log.read_text() == "", log.read_text()  # nothing printed, no "locked"
    assert [n for _, n in found] == [0] * 32
    slowest = max(t for t, _ in found)
    print(f"32 processes opening a fresh project at once: slowest open {slowest:.2f} s")
    pm = ProjectManager(folder)
    assert len(pm.records.api_calls("opener")) == 32
    assert read_version(pm.db_path()) == SCHEMA_VERSION


class _Thing:
    def __init__(self, project: ProjectManager) -> None:
        self.project = project

    @api_call("thing.do")
    def do(self, x: int, password: str = "", dsn: str = "") -> int:
        if x < 0:
            raise InvalidArgumentError("x must be >= 0")
        return x * 2


def test_api_calls_rows_name_outcome_duration_and_arguments_without_secrets(
    tmp_path: Path,
) -> None:
    pm = ProjectManager(tmp_path)
    thing = _Thing(pm)
    assert thing.do(2, password="hunter22", dsn="postgresql://u:s3cret@h:5/db") == 4
    with pytest.raises(InvalidArgumentError):
        thing.do(-1)
    with pytest.raises(KeyboardInterrupt), recorded(pm, "block", {"token": "abc123"}):
        raise KeyboardInterrupt
    ok, err = pm.records.api_calls("thing.do")
    assert ok["code"] == 0 and err["code"] == 1 and ok["time"].endswith("+00:00")
    assert ok["details"]["outcome"] == "ok" and ok["details"]["duration_s"] >= 0
    assert ok["details"]["arguments"]["x"] == 2
    assert ok["details"]["arguments"]["password"] == "***"
    assert "s3cret" not in str(ok) and "hunter22" not in str(ok)
    assert err["details"]["outcome"] == "InvalidArgumentError: x must be >= 0"
    (block,) = pm.records.api_calls("block")
    assert block["code"] == 2 and block["details"]["arguments"]["token"] == "***"


def test_open_if_named_records_only_in_a_named_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBGYM_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert open_if_named(None) is None
    with recorded(None, "cli.bench", {"x": 1}) as extra:  # no project: nothing recorded
        extra["n"] = 1
    assert not (tmp_path / ".dbgym-projects").exists()
    named = open_if_named(tmp_path / "named")
    assert named is not None
    with recorded(named, "cli.bench", {"x": 1}):
        pass
    assert [c["name"] for c in named.records.api_calls()] == ["cli.bench"]
    monkeypatch.setenv("DBGYM_PROJECT_DIR", str(tmp_path / "env"))
    from_env = open_if_named(None)
    assert from_env is not None and from_env.project_folder() == tmp_path / "env"
