"""Database states: the database a simulation starts from (a built-in benchmark, a dump,
or a copy of a live database), built once into an on-disk cache of data directories.

- database_state.py: DatabaseState (benchmark | dump | dsn), load_into, launch
- cache.py: StateCache, the snapshot-ready data directories keyed by state and server version
- dump.py: pg_restore / psql of pg_dump output, copying a live database
- cli.py: `dbgym workload state build|list|clear`
"""
