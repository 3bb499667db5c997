"""PostgreSQL instances (local processes or Docker containers), knobs catalog, snapshots."""

from __future__ import annotations

from dbgym.dbms.instance import PostgresInstance
from dbgym.dbms.knobs import KnobChange, KnobSpec

__all__ = ["KnobChange", "KnobSpec", "PostgresInstance"]
