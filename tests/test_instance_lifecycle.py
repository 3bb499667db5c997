"""Launch, query, several instances side by side, close, export/init_from (real servers)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

import dbgym
import dbgym.dbms.instance as instance_module
from dbgym.dbms.backend import PortInUseError
from dbgym.errors import DbgymError, PostgresStartError
from tests.instance_checks import instance_fields, leftovers


def test_launch_query_close(backend: str) -> None:
    inst = dbgym.PostgresInstance.launch(backend=backend)
    fields = instance_fields(inst)
    try:
        assert inst.server_version_num >= 150000
        assert inst.dsn.startswith("postgresql://")
        with inst.connect() as conn:
            row = conn.execute("SELECT 1 + 1, current_setting('server_version_num')").fetchone()
        assert row is not None and row[0] == 2
        assert int(row[1]) == inst.server_version_num
        # the DSN alone is enough for another client
        with psycopg.connect(inst.dsn) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("dbgym",)
        settings = inst.settings()
        # both backends: the server listens on the instance's port (docker: inside the
        # container too, published on 127.0.0.1 under the same number)
        assert settings["port"] == str(inst.port)
        assert "work_mem" in settings and "shared_buffers" in settings
    finally:
        inst.close()
    assert inst.closed
    assert leftovers(fields) == []
    with pytest.raises(DbgymError, match="closed"):
        inst.connect()


def test_local_listens_on_loopback_and_private_socket_only() -> None:
    with dbgym.PostgresInstance.launch(backend="local") as inst:
        settings = inst.settings()
        assert settings["listen_addresses"] == "127.0.0.1"
        sock_dir = Path(settings["unix_socket_directories"])
        assert sock_dir.stat().st_mode & 0o077 == 0
        assert inst.bin_dir is not None and (inst.bin_dir / "pgbench").exists()


def test_two_instances_side_by_side(backend: str) -> None:
    with (
        dbgym.PostgresInstance.launch(backend=backend) as a,
        dbgym.PostgresInstance.launch(backend=backend) as b,
    ):
        assert a.port != b.port and a.workdir != b.workdir
        with a.connect() as ca, b.connect() as cb:
            ca.execute("CREATE TABLE only_in_a (x int)")
            ca.commit()
            assert cb.execute("SELECT to_regclass('only_in_a')").fetchone() == (None,)
            assert ca.execute("SELECT to_regclass('only_in_a')").fetchone() != (None,)
        fields_a = instance_fields(a)
    assert leftovers(fields_a) == []


def test_context_manager_closes_on_exception(backend: str) -> None:
    fields: dict[str, object] = {}
    with pytest.raises(ZeroDivisionError), dbgym.PostgresInstance.launch(backend=backend) as inst:
        fields = instance_fields(inst)
        _ = 1 / 0
    assert leftovers(fields) == []


def test_explicit_workdir_and_port_keep(backend: str, reachable_tmp: Path) -> None:
    from dbgym.dbms.instance import free_port

    port = free_port()
    workdir = reachable_tmp / "wd"
    inst = dbgym.PostgresInstance.launch(backend=backend, workdir=workdir, port=port)
    try:
        assert inst.port == port and inst.workdir == workdir
        with inst.connect() as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.commit()
    finally:
        inst.close(keep=True)
    assert (workdir / "data" / "PG_VERSION").is_file()
    with pytest.raises(DbgymError, match="already holds"):
        dbgym.PostgresInstance.launch(backend=backend, workdir=workdir)


def test_export_datadir_then_init_from(backend: str, tmp_path: Path) -> None:
    dest = tmp_path / "exported"
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        with inst.connect() as conn:
            conn.execute("CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 500) g")
            conn.commit()
        inst.apply_knobs({"work_mem": "32MB"})
        inst.export_datadir(dest)
        with inst.connect() as conn:  # server is back up after the export
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (500,)
    assert (dest / "PG_VERSION").is_file() and not (dest / "postmaster.pid").exists()
    with (
        dbgym.PostgresInstance.launch(backend=backend, init_from=dest) as copy,
        copy.connect() as conn,
    ):
        assert conn.execute("SELECT count(*), sum(x) FROM t").fetchone() == (500, 125250)
        assert conn.execute("SHOW work_mem").fetchone() == ("32MB",)


def test_init_from_rejects_non_datadir(tmp_path: Path) -> None:
    with pytest.raises(DbgymError, match="not a PostgreSQL data directory"):
        dbgym.PostgresInstance.launch(init_from=tmp_path)


def test_unknown_backend_is_clear() -> None:
    with pytest.raises(dbgym.errors.InvalidArgumentError, match="unknown backend 'nope'"):
        dbgym.PostgresInstance.launch(backend="nope")


@contextmanager
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 another process (this test) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_fixed_port_is_port_in_use(backend: str, reachable_tmp: Path) -> None:
    # local: the server exits saying so in its log; docker: the engine cannot publish it.
    # A port the caller fixed is never swapped for another.
    workdir = reachable_tmp / "wd"
    with taken_port() as port, pytest.raises(PortInUseError) as caught:
        dbgym.PostgresInstance.launch(backend=backend, port=port, workdir=workdir)
    assert caught.value.port == port and isinstance(caught.value, PostgresStartError)
    assert f"port {port} is taken" in str(caught.value)
    assert not workdir.exists(), "the failed launch removed what it created"


def test_a_taken_picked_port_is_retried_with_another(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race the retry exists for: the port was free when picked, and another process
    # bound it before the server (local) or the container (docker, during initdb) did.
    # The first pick is made to be that port; the launch moves on to a free one.
    with taken_port() as port:
        picks = [port]
        pick_free = instance_module.free_port
        monkeypatch.setattr(
            instance_module, "free_port", lambda: picks.pop() if picks else pick_free()
        )
        with dbgym.PostgresInstance.launch(backend=backend) as inst:
            assert picks == [], "the taken port was tried first"
            assert inst.port != port
            with inst.connect() as conn:
                assert conn.execute("SHOW port").fetchone() == (str(inst.port),)
