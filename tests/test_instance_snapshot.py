"""Snapshot + writes + restore gives back the snapshot's exact state (real servers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import dbgym
from dbgym.errors import SnapshotError


@pytest.fixture
def inst(backend: str) -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch(backend=backend) as instance:
        yield instance


def state(inst: dbgym.PostgresInstance) -> dict[str, Any]:
    """Schema, every row of every user table, and the knob dbgym set."""
    with inst.connect() as conn:
        schema = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        work_mem = conn.execute("SHOW work_mem").fetchone()
    return {"schema": schema, "rows": rows, "indexes": indexes, "work_mem": work_mem}


def populate(inst: dbgym.PostgresInstance) -> None:
    with inst.connect() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
        conn.execute(
            "INSERT INTO items SELECT g, md5(g::text), g % 7 FROM generate_series(1, 20000) g"
        )
        conn.execute("CREATE INDEX items_qty ON items (qty)")
        conn.execute("CREATE TABLE notes (id int, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'keep me'), (2, 'me too')")
        conn.commit()
    inst.apply_knobs({"work_mem": "32MB"})


def scribble(inst: dbgym.PostgresInstance, tag: str) -> None:
    """Writes of every kind: data, schema, new files, rewritten relations, settings."""
    with inst.connect() as conn:
        conn.execute("UPDATE items SET qty = qty + 100 WHERE id % 3 = 0")
        conn.execute("DELETE FROM notes WHERE id = 1")
        conn.execute("INSERT INTO items SELECT g, 'new', 0 FROM generate_series(20001, 60000) g")
        conn.execute(f"CREATE TABLE scratch_{tag} AS SELECT g FROM generate_series(1, 1000) g")
        conn.execute("ALTER TABLE notes ADD COLUMN extra int DEFAULT 5")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM FULL items" if tag == "b" else "CHECKPOINT")
    inst.apply_knobs({"work_mem": "128MB"})


def test_snapshot_writes_restore_gives_back_pristine_state(inst: dbgym.PostgresInstance) -> None:
    populate(inst)
    pristine = state(inst)
    assert pristine["work_mem"] == ("32MB",)
    inst.snapshot("pristine")
    assert state(inst) == pristine
    for tag in ("a", "b"):
        scribble(inst, tag)
        assert state(inst) != pristine
        stats = inst.restore("pristine")
        assert stats.copied_files > 0
        assert state(inst) == pristine
        assert inst.applied_knobs() == {"work_mem": "32768"}


def test_restore_with_nothing_changed_copies_little(inst: dbgym.PostgresInstance) -> None:
    populate(inst)
    inst.snapshot("p")
    inst.restore("p")
    stats = inst.restore("p")  # no writes since: only files the server touches at start-up
    assert stats.copied_bytes < 1_000_000, stats


def test_several_snapshots(inst: dbgym.PostgresInstance) -> None:
    populate(inst)
    inst.snapshot("one")
    first = state(inst)
    scribble(inst, "a")
    inst.snapshot("two")
    second = state(inst)
    assert first != second
    assert inst.snapshots() == ["one", "two"]
    inst.restore("one")
    assert state(inst) == first
    inst.restore("two")
    assert state(inst) == second
    inst.restore("one")
    assert state(inst) == first


def test_restore_ends_open_sessions(inst: dbgym.PostgresInstance) -> None:
    inst.snapshot("p")
    conn = inst.connect()
    try:
        inst.restore("p")
        with pytest.raises(Exception):  # noqa: B017 (psycopg's exact class varies)
            conn.execute("SELECT 1")
    finally:
        conn.close()
    with inst.connect() as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def test_snapshot_errors(inst: dbgym.PostgresInstance) -> None:
    with pytest.raises(SnapshotError, match=r"no snapshot named 'missing' \(snapshots: none\)"):
        inst.restore("missing")
    with pytest.raises(SnapshotError, match=r"snapshot name '\.\./x'"):
        inst.snapshot("../x")
    with inst.connect() as conn:  # still fine after the errors
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_snapshot_refuses_tablespaces_outside_the_datadir(backend: str) -> None:
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        location = inst.workdir / "tblspc"
        location.mkdir()
        owner = inst.backend_impl.datadir_owner()
        if owner is not None:
            os.chown(location, *owner)
        with inst.connect(autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE elsewhere LOCATION '{location}'")
        with pytest.raises(SnapshotError, match="tablespaces outside the data directory"):
            inst.snapshot("p")
        with pytest.raises(SnapshotError, match="cannot export"):
            inst.export_datadir(inst.workdir / "export")
        with inst.connect(autocommit=True) as conn:
            conn.execute("DROP TABLESPACE elsewhere")
        inst.snapshot("p")  # fine again
