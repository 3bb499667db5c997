"""Docker limits and security, with real containers: memory limits and the knobs that would
not fit them, an initdb the kernel OOM-kills, pg_hba admitting the bridge's gateway only,
and a password of its own for every instance launched from the same exported state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import dbgym
from dbgym.dbms import docker_backend
from dbgym.dbms.docker_backend import DockerBackend
from dbgym.dbms.images import DEFAULT_IMAGE
from dbgym.errors import InvalidArgumentError, KnobError, PostgresStartError
from tests.conftest import docker_unavailable_reason


@pytest.fixture(scope="module")
def client() -> Any:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import docker

    return docker.from_env()


def show(inst: dbgym.PostgresInstance, name: str) -> str:
    with inst.connect() as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def test_shared_buffers_beyond_the_memory_limit_is_refused(client: Any) -> None:
    with dbgym.PostgresInstance.launch(backend="docker", memory="256m") as inst:
        knob_file = (inst.datadir / "dbgym_knobs.conf").read_text()
        with pytest.raises(KnobError, match=r"memory limit 256m \(256 MiB\)") as err:
            inst.apply_knobs({"shared_buffers": "512MB", "work_mem": "8MB"})
        assert err.value.knob == "shared_buffers"
        assert "at most 192 MiB of shared memory" in str(err.value)
        assert show(inst, "shared_buffers") == "128MB"  # nothing applied
        assert (inst.datadir / "dbgym_knobs.conf").read_text() == knob_file
        # close to the limit but leaving room: 184MB + wal_buffers 5.75MB <= 192 MiB
        with pytest.raises(KnobError, match="does not fit"):
            inst.apply_knobs({"shared_buffers": "190MB"})
        change = inst.apply_knobs({"shared_buffers": "160MB"})
        assert change.restarted and show(inst, "shared_buffers") == "160MB"


def test_a_small_memory_limit_caps_the_default_shared_buffers(client: Any) -> None:
    """initdb's default shared_buffers (128MB) does not fit a 128m container (which must
    also leave 64 MiB for the server's processes): the launch caps it so that it fits, and
    the server's shared memory can be filled without a backend being OOM-killed."""
    with dbgym.PostgresInstance.launch(backend="docker", memory="128m") as inst:
        shared = show(inst, "shared_buffers")
        assert shared.endswith("kB") or shared.endswith("MB")
        with inst.connect() as conn:
            row = conn.execute(
                "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
            ).fetchone()
            assert row is not None and 16 * 2**20 < row[0] <= 62 * 2**20
            # fill the buffers: a table bigger than shared_buffers, read twice
            conn.execute(
                "CREATE TABLE fill AS SELECT g, repeat('x', 500) AS pad "
                "FROM generate_series(1, 200000) g"
            )
            conn.execute("SELECT count(*) FROM fill").fetchone()
            assert conn.execute("SELECT count(*) FROM fill").fetchone() == (200000,)
        assert inst.alive()
    # a limit with room to spare keeps PostgreSQL's default
    with dbgym.PostgresInstance.launch(backend="docker", memory="512m") as inst:
        assert show(inst, "shared_buffers") == "128MB"


def test_memory_below_what_initdb_needs_fails_fast(client: Any) -> None:
    t0 = time.monotonic()
    with pytest.raises(InvalidArgumentError, match=r"memory='32m' \(32 MiB\) is below the 64 MiB"):
        dbgym.PostgresInstance.launch(backend="docker", memory="32m")
    assert time.monotonic() - t0 < 5  # it used to thrash for minutes, then fail
    with pytest.raises(InvalidArgumentError, match="memory='lots': give bytes"):
        dbgym.PostgresInstance.launch(backend="docker", memory="lots")


def test_initdb_killed_by_the_oom_killer_says_so(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # below the floor on purpose: a real initdb in a real 16 MiB container
    monkeypatch.setattr(docker_backend, "MIN_MEMORY", 0)
    with pytest.raises(PostgresStartError) as err:
        dbgym.PostgresInstance.launch(backend="docker", memory="16m")
    message = str(err.value)
    assert message.startswith(
        f"initdb in {DEFAULT_IMAGE} was killed by the kernel's OOM killer: the container's "
        "memory limit '16m' is too small for PostgreSQL (16 MiB)"
    ), message
    assert any("Killed" in line for line in err.value.log_lines)


@pytest.fixture
def inst(client: Any) -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch(backend="docker") as instance:
        yield instance


def container_of(inst: dbgym.PostgresInstance) -> Any:
    backend = inst.backend_impl
    assert isinstance(backend, DockerBackend)
    container = backend.container
    container.reload()
    return container


def login_from_another_container(client: Any, dsn: str) -> str:
    """psql from a sibling container on the default bridge; its stderr (or 'ok')."""
    import docker.errors

    try:
        client.containers.run(
            DEFAULT_IMAGE,
            entrypoint=["psql", dsn, "-c", "SELECT 1"],
            remove=True,
            stderr=True,
            stdout=True,
        )
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr
        return stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(exc)
    return "ok"


def test_pg_hba_admits_the_gateway_only(client: Any, inst: dbgym.PostgresInstance) -> None:
    settings = container_of(inst).attrs["NetworkSettings"]
    gateway, address = settings["Networks"]["bridge"]["Gateway"], settings["IPAddress"]
    # the host (through the published port, i.e. from the gateway) logs in ...
    with inst.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # ... another container on the bridge, with the right password, does not
    password = psycopg.conninfo.conninfo_to_dict(inst.dsn)["password"]
    sibling = f"postgresql://dbgym:{password}@{address}:{inst.port}/postgres?sslmode=disable"
    out = login_from_another_container(client, sibling)
    assert "no pg_hba.conf entry" in out, out
    hosts = [
        line.split()
        for line in (inst.datadir / "pg_hba.conf").read_text().splitlines()
        if line.startswith("host")
    ]
    assert hosts == [["host", "all", "all", f"{gateway}/32", "scram-sha-256"]]


def test_each_launch_from_an_exported_state_has_its_own_password(
    backend: str, reachable_tmp: Path
) -> None:
    dest = reachable_tmp / "state"
    with dbgym.PostgresInstance.launch(backend=backend) as src:
        with src.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        src.export_datadir(dest)
        source_dsn = src.dsn
    with (
        dbgym.PostgresInstance.launch(backend=backend, init_from=dest) as a,
        dbgym.PostgresInstance.launch(backend=backend, init_from=dest) as b,
    ):
        passwords = {
            psycopg.conninfo.conninfo_to_dict(dsn)["password"] for dsn in (source_dsn, a.dsn, b.dsn)
        }
        assert len(passwords) == 3
        for inst in (a, b):
            with psycopg.connect(inst.dsn) as conn:  # TCP, with its own password
                assert conn.execute("SELECT answer FROM kept").fetchone() == (42,)
        # b's server refuses a's password (and the exported state's)
        for other in (a.dsn, source_dsn):
            stale = psycopg.conninfo.conninfo_to_dict(other)["password"]
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(b.dsn, password=stale)
        # the server log never shows the new password (it was sent as a SCRAM verifier)
        mine = str(psycopg.conninfo.conninfo_to_dict(b.dsn)["password"])
        assert mine not in (b.workdir / "server.log").read_text()
