"""The project database's schema, as an ordered list of forward migrations.

Version 1 is the first release: GymDash's three tables with their exact columns
(`simulations`, `sim_status`, `api_calls`), dbgym's extra columns on `simulations` (the
key, the child's pid/host/heartbeat, progress, result, environment), and dbgym's own tables:
`sim_files` (the training-data files of a simulation, indexed), `sim_types` (exported
simulation types: module + qualname, or a script path), `bench_runs` (`dbgym bench`
reports), and `schema_version`.

A migration is a list of SQL statements applied in one transaction (dbgym.project.db).
Never edit a released migration: append a new one. Every released schema has a fixture
database under tests/fixtures/project/ that the tests migrate.
"""

from __future__ import annotations

#: GymDash's columns, exactly (more columns are allowed; these stay as named).
GYMDASH_COLUMNS = {
    "simulations": (
        "sim_id",
        "name",
        "created",
        "started",
        "ended",
        "is_done",
        "cancelled",
        "failed",
        "force_stopped",
        "config",
        "start_kwargs",
        "sim_type_name",
        "sim_module_name",
    ),
    "sim_status": ("id", "sim_id", "time", "code", "subcode", "details", "error_trace"),
    "api_calls": ("id", "name", "time", "code", "details"),
}

_V1 = [
    """CREATE TABLE simulations (
        sim_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        ended TEXT,
        is_done INTEGER NOT NULL DEFAULT 0,
        cancelled INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        force_stopped INTEGER NOT NULL DEFAULT 0,
        config TEXT,
        start_kwargs TEXT,
        sim_type_name TEXT,
        sim_module_name TEXT,
        sim_key TEXT NOT NULL,
        pid INTEGER,
        pid_start_time INTEGER,
        host TEXT,
        heartbeat TEXT,
        progress_done INTEGER,
        progress_total INTEGER,
        result TEXT,
        environment TEXT
    )""",
    """CREATE TABLE sim_status (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sim_id TEXT NOT NULL REFERENCES simulations(sim_id) ON DELETE CASCADE,
        time TEXT NOT NULL,
        code INTEGER NOT NULL,
        subcode INTEGER NOT NULL DEFAULT 0,
        details TEXT NOT NULL DEFAULT '',
        error_trace TEXT
    )""",
    """CREATE TABLE api_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        time TEXT NOT NULL,
        code INTEGER NOT NULL,
        details TEXT
    )""",
    """CREATE TABLE sim_files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sim_id TEXT NOT NULL REFERENCES simulations(sim_id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        relpath TEXT NOT NULL,
        rows INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        time TEXT NOT NULL,
        UNIQUE (sim_id, relpath)
    )""",
    """CREATE TABLE sim_types (
        key TEXT PRIMARY KEY,
        module TEXT NOT NULL,
        qualname TEXT NOT NULL,
        path TEXT,
        time TEXT NOT NULL
    )""",
    """CREATE TABLE bench_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        time TEXT NOT NULL,
        report TEXT NOT NULL
    )""",
    "CREATE INDEX sim_status_by_sim ON sim_status (sim_id, id)",
    "CREATE INDEX simulations_by_done ON simulations (is_done)",
    "CREATE INDEX simulations_by_created ON simulations (created)",
    "CREATE INDEX simulations_by_key ON simulations (sim_key)",
    "CREATE INDEX api_calls_by_name ON api_calls (name, time)",
    "CREATE INDEX sim_files_by_sim ON sim_files (sim_id, kind)",
]

#: Version n is reached by applying MIGRATIONS[n - 1] to a version n - 1 database.
MIGRATIONS: list[list[str]] = [_V1]

#: The schema version this dbgym writes.
SCHEMA_VERSION = len(MIGRATIONS)
