"""Names of the PostgreSQL container images dbgym uses."""

from __future__ import annotations

DEFAULT_IMAGE = "dbgym/postgres:15"
