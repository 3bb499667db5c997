"""Light simulation types for the tracker tests (imported by child processes by module name:
tests.project_sims_fixture, recorded by the tracker when a test starts them)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from dbgym.dbms import instance_registry
from dbgym.project.simulation import Simulation, SimulationContext


class Quick(Simulation):
    """Posts `posts` status rows and reports progress; records a result and an environment
    extra. kwargs: posts (int, default 3), seconds (sleep per post, default 0)."""

    def run(self, ctx: SimulationContext) -> None:
        kwargs = self.config.kwargs_dict()
        posts = int(kwargs.get("posts", 3))
        pause = float(kwargs.get("seconds", 0.0))
        for i in range(posts):
            ctx.post(f"post {i}")
            ctx.progress(i + 1, posts)
            if pause:
                time.sleep(pause)
        ctx.record_environment({"seed": 7})
        ctx.record_result({"posts": posts, "pid": os.getpid()})


class Fails(Simulation):
    def run(self, ctx: SimulationContext) -> None:
        ctx.post("about to fail")
        raise ValueError("boom from the simulation")


class Sleeper(Simulation):
    """Sleeps without ever checking ctx.cancelled; teardown writes `teardown.txt` in its
    folder (so a test sees that teardown ran). kwargs: seconds (default 120)."""

    def run(self, ctx: SimulationContext) -> None:
        ctx.post(f"sleeping in pid {os.getpid()}")
        time.sleep(float(self.config.kwargs_dict().get("seconds", 120.0)))

    def teardown(self, ctx: SimulationContext) -> None:
        (ctx.folder / "teardown.txt").write_text(f"{os.getpid()}\n")


class Leaver(Simulation):
    """What a killed simulation may leave: a `sleep` process in its process group and an
    instance-registry entry (with a workdir of its own) owned by this process. Writes
    `ready.txt` (the sleep's pid and the entry's workdir) once both exist, then sleeps."""

    def run(self, ctx: SimulationContext) -> None:
        sleeper = subprocess.Popen(["sleep", "600"])
        workdir = Path(tempfile.mkdtemp(prefix="dbgym-leaver-"))
        (workdir / "data").write_text("x")
        entry_id = f"leaver-{ctx.sim_id[:8]}"
        instance_registry.write_entry(
            entry_id,
            {
                "id": entry_id,
                "backend": "local",
                "workdir": str(workdir),
                "created_workdir": True,
                "server_pid": None,
                **instance_registry.owner_identity(),
            },
        )
        (ctx.folder / "ready.txt").write_text(f"{sleeper.pid}\n{workdir}\n{entry_id}\n")
        ctx.post("ready")
        time.sleep(600)


class Stubborn(Simulation):
    """Swallows its cancellation and keeps sleeping (as code with a bare `except` would);
    only a kill stops it."""

    def run(self, ctx: SimulationContext) -> None:
        ctx.post("stubborn")
        while True:
            try:
                time.sleep(600)
            except BaseException:
                continue


class Poster(Simulation):
    """Posts `posts` status rows as fast as it can (the concurrency test)."""

    def run(self, ctx: SimulationContext) -> None:
        posts = int(self.config.kwargs_dict().get("posts", 1000))
        for i in range(posts):
            ctx.post(f"row {i}")
        ctx.progress(posts, posts)


class PgSleep(Simulation):
    """Starts a real PostgreSQL server and runs `SELECT pg_sleep(60)` on it; teardown
    closes the instance (the server stops). Writes `server.json` (the instance's registry
    fields, for tests.instance_checks.leftovers)."""

    def setup(self, ctx: SimulationContext) -> None:
        from dbgym.dbms.instance import PostgresInstance
        from tests.instance_checks import instance_fields

        self.inst = PostgresInstance.launch()
        (ctx.folder / "server.json").write_text(json.dumps(instance_fields(self.inst)))

    def run(self, ctx: SimulationContext) -> None:
        with self.inst.connect() as conn:
            ctx.post("sleeping in PostgreSQL")
            conn.execute("SELECT pg_sleep(60)")

    def teardown(self, ctx: SimulationContext) -> None:
        inst = getattr(self, "inst", None)
        if inst is not None:
            inst.close()
            (ctx.folder / "teardown.txt").write_text("closed\n")


def make_quick(config: object) -> Simulation:
    """A creator that is a function, not a class."""
    from dbgym.project.simulation import SimulationStartConfig

    assert isinstance(config, SimulationStartConfig)
    return Quick(config)


class PgStubborn(PgSleep):
    """PgSleep that swallows its cancellation (only a kill stops it; its server is then
    cleaned through the instance registry)."""

    def run(self, ctx: SimulationContext) -> None:
        ctx.post("stubborn in PostgreSQL")
        while True:
            try:
                with self.inst.connect() as conn:
                    conn.execute("SELECT pg_sleep(60)")
            except BaseException:
                continue
