"""PostgreSQL instances (local processes or Docker containers), knobs catalog, snapshots."""
