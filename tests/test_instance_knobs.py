"""Knobs on real servers: reload vs restart, validation errors, a start-up failure and recovery."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest

import dbgym
from dbgym.dbms import instance_registry
from dbgym.dbms import knobs as kn
from dbgym.errors import KnobError, PostgresStartError


@pytest.fixture
def inst(backend: str) -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch(backend=backend) as instance:
        yield instance


def show(inst: dbgym.PostgresInstance, name: str) -> str:
    with inst.connect() as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def postmaster_started(inst: dbgym.PostgresInstance) -> str:
    with inst.connect() as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def test_reload_for_user_and_sighup_knobs(inst: dbgym.PostgresInstance) -> None:
    started = postmaster_started(inst)
    change = inst.apply_knobs({"work_mem": "64MB", "random_page_cost": 1.5, "autovacuum": False})
    assert change.restarted is False
    assert change.applied == {"work_mem": "65536", "random_page_cost": "1.5", "autovacuum": "off"}
    assert show(inst, "work_mem") == "64MB"  # new sessions see it
    assert show(inst, "autovacuum") == "off"
    assert postmaster_started(inst) == started  # no restart happened
    assert inst.applied_knobs()["work_mem"] == "65536"


def test_restart_only_when_a_postmaster_knob_changes(inst: dbgym.PostgresInstance) -> None:
    change = inst.apply_knobs({"shared_buffers": "256MB", "work_mem": "8MB"})
    assert change.restarted is True
    assert change.applied["shared_buffers"] == "32768"  # 8kB pages
    assert show(inst, "shared_buffers") == "256MB"
    started = postmaster_started(inst)
    # Same postmaster value again (other spelling): no restart.
    again = inst.apply_knobs({"shared_buffers": 32768, "work_mem": "16MB"})
    assert again.restarted is False
    assert postmaster_started(inst) == started
    assert show(inst, "work_mem") == "16MB"


def test_unit_aware_values(inst: dbgym.PostgresInstance) -> None:
    cat = inst.knob_catalog
    assert cat["shared_buffers"].unit == "8kB" and cat["shared_buffers"].context == "postmaster"
    assert kn.normalize(cat["shared_buffers"], "64MB").compare == 8192
    assert kn.normalize(cat["work_mem"], "1GB").compare == 1024 * 1024
    assert kn.normalize(cat["statement_timeout"], "1.5s").compare == 1500
    assert kn.normalize(cat["checkpoint_timeout"], "10min").compare == 600
    assert kn.normalize(cat["wal_level"], "REPLICA").conf_value == "replica"
    assert kn.normalize(cat["enable_seqscan"], "off").compare == "off"
    change = inst.apply_knobs({"statement_timeout": "1.5s", "maintenance_work_mem": "1GB"})
    assert change.applied == {"statement_timeout": "1500", "maintenance_work_mem": "1048576"}
    assert show(inst, "statement_timeout") == "1500ms"


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"wrok_mem": "64MB"}, r"unknown knob 'wrok_mem'; did you mean work_mem"),
        ({"work_mem": "64XB"}, r"knob work_mem: invalid unit 'XB'"),
        ({"work_mem": "lots"}, r"knob work_mem: 'lots' is not a number"),
        (
            {"shared_buffers": "1kB"},
            r"knob shared_buffers: '1kB' .* outside the allowed range \[16,",
        ),
        ({"max_connections": 10**9}, r"max_connections: .* outside the allowed range"),
        ({"enable_seqscan": "maybe"}, r"knob enable_seqscan is boolean"),
        (
            {"wal_level": "bogus"},
            r"knob wal_level: 'bogus' is not one of minimal, replica, logical",
        ),
        ({"port": 5433}, r"knob port is managed by dbgym"),
        ({"block_size": 4096}, r"knob block_size is read-only"),
        ({"random_page_cost": "1ms"}, r"knob random_page_cost takes no unit"),
    ],
)
def test_invalid_knobs_are_rejected_and_nothing_applied(
    inst: dbgym.PostgresInstance, knobs: dict[str, object], message: str
) -> None:
    before = inst.applied_knobs()
    with pytest.raises(KnobError, match=message):
        inst.apply_knobs(knobs)
    assert inst.applied_knobs() == before


def test_whole_batch_rejected_when_one_knob_is_bad(inst: dbgym.PostgresInstance) -> None:
    with pytest.raises(KnobError, match="nope_knob") as err:
        inst.apply_knobs({"work_mem": "64MB", "nope_knob": 1, "enable_hashjoin": "perhaps"})
    assert "enable_hashjoin" in str(err.value)
    assert "work_mem" not in inst.applied_knobs()
    assert show(inst, "work_mem") == "4MB"


def test_value_that_breaks_startup_is_rolled_back(inst: dbgym.PostgresInstance) -> None:
    inst.apply_knobs({"work_mem": "32MB"})
    with pytest.raises(PostgresStartError) as err:
        inst.apply_knobs({"shared_preload_libraries": "dbgym_no_such_library"})
    assert any("dbgym_no_such_library" in line for line in err.value.log_lines)
    assert "dbgym_no_such_library" in str(err.value)
    # The previous config is back and the server is usable...
    assert "shared_preload_libraries" not in inst.applied_knobs()
    assert show(inst, "work_mem") == "32MB"
    assert show(inst, "shared_preload_libraries") == ""
    # ... including restarts and further knob changes.
    inst.restart()
    change = inst.apply_knobs({"max_connections": 50})
    assert change.restarted is True
    assert show(inst, "max_connections") == "50"


def test_launch_with_knobs(backend: str) -> None:
    with dbgym.PostgresInstance.launch(
        backend=backend, knobs={"shared_buffers": "64MB", "work_mem": "12MB"}
    ) as inst:
        assert show(inst, "shared_buffers") == "64MB"
        assert show(inst, "work_mem") == "12MB"


def test_launch_with_bad_knob_fails_cleanly(backend: str) -> None:
    def mine() -> list[str]:
        return [
            e["workdir"]
            for _, e in instance_registry.read_entries()
            if e["owner_pid"] == os.getpid()
        ]

    before = mine()
    with pytest.raises(KnobError, match="did you mean shared_buffers"):
        dbgym.PostgresInstance.launch(backend=backend, knobs={"shared_bufers": "64MB"})
    assert mine() == before  # closed: registry entry and workdir gone


def pg_settings(inst: dbgym.PostgresInstance) -> dict[str, str]:
    """Every setting as a new session sees it (pg_settings.setting by name)."""
    with inst.connect() as conn:
        rows = conn.execute("SELECT name, setting FROM pg_settings").fetchall()
    return {str(name): str(setting) for name, setting in rows}


def test_names_are_case_insensitive_as_in_postgresql(inst: dbgym.PostgresInstance) -> None:
    # pg_settings spells these with capitals; PostgreSQL takes any case, and so do we
    change = inst.apply_knobs(
        {"DateStyle": "ISO, DMY", "timezone": "Europe/Paris", "INTERVALSTYLE": "iso_8601"}
    )
    assert change.applied == {
        "DateStyle": "ISO, DMY",
        "TimeZone": "Europe/Paris",
        "IntervalStyle": "iso_8601",
    }
    assert show(inst, "DateStyle") == "ISO, DMY"
    assert show(inst, "TimeZone") == "Europe/Paris"
    assert show(inst, "intervalstyle") == "iso_8601"
    assert inst.applied_knobs() == {
        "datestyle": "ISO, DMY",
        "timezone": "Europe/Paris",
        "intervalstyle": "iso_8601",
    }
    with pytest.raises(KnobError, match=r"did you mean DateStyle\?") as err:
        inst.apply_knobs({"DatStyle": "ISO"})
    assert err.value.knob == "DatStyle"
    with pytest.raises(KnobError, match="given twice") as twice:
        inst.apply_knobs({"datestyle": "ISO, MDY", "DateStyle": "ISO, YMD"})
    assert twice.value.knob == "DateStyle"
    assert show(inst, "DateStyle") == "ISO, DMY"


def test_value_the_server_respells_applies_at_once(inst: dbgym.PostgresInstance) -> None:
    # The server stores 'utc' as 'UTC': compared by spelling, this waited 5 s and failed.
    t0 = time.monotonic()
    change = inst.apply_knobs({"log_timezone": "utc", "work_mem": "8MB"})
    took = time.monotonic() - t0
    assert change.applied == {"log_timezone": "UTC", "work_mem": "8192"}
    assert change.restarted is False
    assert show(inst, "log_timezone") == "UTC"
    assert took < 2.0, f"apply_knobs took {took:.2f}s"


def test_for_new_sessions_knob_applies_without_waiting(inst: dbgym.PostgresInstance) -> None:
    # log_connections (superuser-backend) never changes in an open session
    t0 = time.monotonic()
    change = inst.apply_knobs({"log_connections": "on"})
    assert time.monotonic() - t0 < 2.0
    assert change.applied == {"log_connections": "on"} and change.restarted is False
    assert show(inst, "log_connections") == "on"


def test_batch_the_server_refuses_leaves_every_knob_as_before(
    inst: dbgym.PostgresInstance,
) -> None:
    inst.apply_knobs({"work_mem": "16MB"})
    settings, file_text = pg_settings(inst), (inst.datadir / "dbgym_knobs.conf").read_text()
    # Only the server knows time zone names: dbgym's own checks pass, the server refuses.
    with pytest.raises(KnobError, match=r"knob log_timezone: the server refuses 'Mars/Olympus'"):
        inst.apply_knobs({"work_mem": "64MB", "log_timezone": "Mars/Olympus"})
    assert pg_settings(inst) == settings
    assert (inst.datadir / "dbgym_knobs.conf").read_text() == file_text
    assert show(inst, "work_mem") == "16MB"
    # ... and the knob file still works
    assert inst.apply_knobs({"work_mem": "32MB"}).applied == {"work_mem": "32768"}


def test_alter_system_override_is_refused_and_nothing_applied(
    inst: dbgym.PostgresInstance,
) -> None:
    with inst.connect(autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '8MB'")
        conn.execute("SELECT pg_reload_conf()")
    auto_conf = (inst.datadir / "postgresql.auto.conf").read_text()
    assert "work_mem = '8MB'" in auto_conf
    before = inst.applied_knobs()
    with pytest.raises(
        KnobError,
        match=r"postgresql\.auto\.conf line \d+ sets it too \(ALTER "
        r"SYSTEM\).*ALTER SYSTEM RESET work_mem",
    ) as err:
        inst.apply_knobs({"work_mem": "64MB", "random_page_cost": 1.1})
    assert err.value.knob == "work_mem"
    assert inst.applied_knobs() == before
    assert (inst.datadir / "postgresql.auto.conf").read_text() == auto_conf
    assert show(inst, "random_page_cost") == "4"


#: Bool spellings PostgreSQL accepts (unique prefixes of true/false/yes/no, on/off/of,
#: 1/0) and some it refuses ("o" is ambiguous).
SPELLINGS = ["t", "tr", "TRUE", "y", "ye", "yes", "on", "ON", "1", "f", "fal", "n", "no",
             "of", "off", "0", "o", "tru e", "2", "yess", "", "onn"]  # fmt: skip


def test_bool_spellings_match_the_server(inst: dbgym.PostgresInstance) -> None:
    """kn.parse_bool (also used by the knob-state observer) agrees with the server."""
    verdicts = {}
    with inst.connect(autocommit=True) as conn:
        for spelling in SPELLINGS:
            try:
                conn.execute(f"SET enable_seqscan = '{spelling}'")
                row = conn.execute("SHOW enable_seqscan").fetchone()
                verdicts[spelling] = row is not None and row[0] == "on"
            except psycopg.errors.InvalidParameterValue:
                verdicts[spelling] = None
    assert {s: kn.parse_bool(s) for s in SPELLINGS} == verdicts
    assert verdicts["o"] is None and verdicts["of"] is False  # the spellings matter
