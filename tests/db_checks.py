"""Helpers of the benchmark/state tests: per-table checksums and row counts over SQL."""

from __future__ import annotations

import psycopg

import dbgym


def user_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY relname"
        ).fetchall()
    return [str(r[0]) for r in rows]


def checksums(dsn: str, tables: list[str] | None = None) -> dict[str, str]:
    """Order-independent md5 of every row of each table (the physical order may differ)."""
    out: dict[str, str] = {}
    with psycopg.connect(dsn) as conn:
        for table in tables if tables is not None else user_tables(dsn):
            row = conn.execute(
                f"SELECT md5(string_agg(h, '' ORDER BY h)) FROM "
                f"(SELECT md5(t::text) AS h FROM {table} t) s"
            ).fetchone()
            out[table] = str(row[0]) if row else ""
    return out


def counts(dsn: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in tables
        }


def new_database(inst: dbgym.PostgresInstance, name: str) -> str:
    """DSN of a new, empty database `name` in `inst`."""
    with inst.connect() as conn:
        conn.autocommit = True
        conn.execute(f"CREATE DATABASE {name}")
    return inst.dsn.replace("/postgres?", f"/{name}?")
