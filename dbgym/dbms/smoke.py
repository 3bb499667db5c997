"""`dbgym instance smoke`: one short real round trip through PostgresInstance."""

from __future__ import annotations

import time
from collections.abc import Callable

from dbgym.dbms.backend import BACKENDS
from dbgym.dbms.instance import PostgresInstance


def smoke(backend: str = "local", echo: Callable[[str], None] = print) -> None:
    """Launch, query, apply a knob, snapshot, write, restore, check, close; echo each step.

    An unknown `backend` raises InvalidArgumentError naming the known ones, before
    anything starts."""
    BACKENDS.check(backend)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        echo(f"[{time.perf_counter() - t0:6.2f}s] {msg}")

    with PostgresInstance.launch(backend=backend) as inst:
        say(f"launched {inst.backend} PostgreSQL {inst.server_version_num} on port {inst.port}")
        say(f"  workdir {inst.workdir}")
        with inst.connect() as conn:
            conn.execute("CREATE TABLE smoke (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO smoke SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
            conn.commit()
            count = conn.execute("SELECT count(*) FROM smoke").fetchone()
        say(f"created table smoke, count(*) = {count[0] if count else None}")
        change = inst.apply_knobs({"work_mem": "64MB"})
        say(f"apply_knobs work_mem=64MB -> {change.applied} restarted={change.restarted}")
        inst.snapshot("pristine")
        say("snapshot 'pristine' taken")
        with inst.connect() as conn:
            conn.execute("DELETE FROM smoke WHERE id % 2 = 0")
            conn.execute("CREATE TABLE scratch AS SELECT 1 AS x")
            conn.commit()
        say("deleted 500 rows, created table scratch")
        t = time.perf_counter()
        stats = inst.restore("pristine")
        say(
            f"restore 'pristine' in {time.perf_counter() - t:.3f}s "
            f"({stats.copied_files} files / {stats.copied_bytes} bytes copied back)"
        )
        with inst.connect() as conn:
            row = conn.execute("SELECT count(*), to_regclass('scratch') FROM smoke").fetchone()
            work_mem = conn.execute("SHOW work_mem").fetchone()
        assert row is not None and work_mem is not None
        if row[0] != 1000 or row[1] is not None or work_mem[0] != "64MB":
            raise RuntimeError(f"restore did not give back the snapshot: {row}, {work_mem}")
        say(f"after restore: count(*) = {row[0]}, scratch gone, work_mem = {work_mem[0]}")
    say("closed: server stopped, files removed")
