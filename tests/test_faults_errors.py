"""Bad input and dead servers raise dbgym's errors, never a raw library exception.

Caller mistakes are InvalidArgumentError (also a ValueError); server faults are
InstanceError (ServerCrashedError, ConnectError). Real servers, real processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dbgym
from dbgym import retry
from dbgym.dbms import procs
from dbgym.errors import (
    ConnectError,
    InstanceError,
    InvalidArgumentError,
    PlanFormatError,
    ServerCrashedError,
)
from dbgym.plans.catalog import PlanCatalog
from dbgym.plans.featurize import MAX_PLAN_DEPTH, featurize

ROOT = Path(__file__).resolve().parent.parent


def kill_server(inst: dbgym.PostgresInstance) -> None:
    """SIGKILL the server (local: the postmaster; docker: the container), wait until gone."""
    fields = inst.backend_impl.registry_fields()
    if inst.backend == "local":
        pid = fields["server_pid"]
        started = procs.start_time(pid)
        procs.kill_group(pid)
        assert procs.wait_gone(pid, 10.0, started)
    else:
        import docker

        docker.from_env().containers.get(fields["container_id"]).kill()
    assert retry.poll_until(lambda: not inst.backend_impl.is_running(), 10.0)


def test_connect_to_a_dead_server_is_server_crashed(backend: str) -> None:
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        kill_server(inst)
        with pytest.raises(ServerCrashedError, match=f"instance {inst.id}.*not running") as err:
            inst.connect()
        assert isinstance(err.value, InstanceError)


def test_connect_refused_names_server_and_sqlstate(backend: str) -> None:
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        with pytest.raises(ConnectError) as err:
            inst.connect(dbname="no_such_db")
        e = err.value
        assert (e.host, e.port, e.user, e.database, e.sqlstate) == (
            "127.0.0.1",
            inst.port,
            "dbgym",
            "no_such_db",
            "3D000",
        )
        assert "SQLSTATE 3D000" in str(e) and 'database "no_such_db" does not exist' in str(e)
        inst.connect().close()  # the instance is fine


def test_plan_catalog_from_a_dsn_string(backend: str) -> None:
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        with inst.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE t (a int PRIMARY KEY)")
        catalog = PlanCatalog.from_connection(inst.dsn)
        assert catalog.relations == ("t",) and catalog.indexes == ("t_pkey",)
        assert catalog == PlanCatalog.from_instance(inst)
        with pytest.raises(ConnectError, match="cannot connect to read a plan catalog"):
            PlanCatalog.from_connection(inst.dsn.replace(f":{inst.port}/", ":1/"))
        with pytest.raises(InvalidArgumentError, match="use from_instance"):
            PlanCatalog.from_connection(inst)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="invalid connection string"):
            PlanCatalog.from_connection("postgresql://[::1/db")


def test_launch_with_a_file_as_workdir(reachable_tmp: Path) -> None:
    afile = reachable_tmp / "not-a-dir"
    afile.write_text("x")
    with pytest.raises(InvalidArgumentError, match=f"workdir {afile} cannot be a directory"):
        dbgym.PostgresInstance.launch(workdir=afile)
    under = afile / "sub"
    with pytest.raises(InvalidArgumentError, match=f"{afile} exists and is not a directory"):
        dbgym.PostgresInstance.launch(workdir=under)
    assert afile.read_text() == "x"


def test_local_backend_refuses_cpus_and_memory() -> None:
    with pytest.raises(InvalidArgumentError, match=r"local backend cannot enforce cpus=2 and "):
        dbgym.PostgresInstance.launch(cpus=2, memory="1g")
    with pytest.raises(InvalidArgumentError, match="backend='docker'"):
        dbgym.PostgresInstance.launch(memory="1g")


def nested_plan(depth: int) -> list[dict[str, Any]]:
    node: dict[str, Any] = {"Node Type": "Result", "Startup Cost": 0.0, "Total Cost": 0.01,
                            "Plan Rows": 1, "Plan Width": 4}  # fmt: skip
    for _ in range(depth - 1):
        node = {"Node Type": "Limit", "Startup Cost": 0.0, "Total Cost": 0.01,
                "Plan Rows": 1, "Plan Width": 4, "Plans": [node]}  # fmt: skip
    return [{"Plan": node}]


def test_very_deep_plan_object_is_a_plan_format_error() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 30_000))  # to build it only
    try:
        deep = nested_plan(10_000)
    finally:
        sys.setrecursionlimit(limit)
    ok = nested_plan(3)
    with pytest.raises(PlanFormatError) as err:
        featurize([ok, deep])
    e = err.value
    want = f"plan 1 nests deeper than {MAX_PLAN_DEPTH} levels at $[0].Plan.Plans[0].Plans[0]"
    assert str(e).startswith(want), str(e)
    assert str(e).endswith(f"...(x{MAX_PLAN_DEPTH - 2})..."), str(e)
    assert len(str(e)) < 120
    assert e.plan_index == 1
    assert e.path == "$[0].Plan" + ".Plans[0]" * MAX_PLAN_DEPTH
    # at the limit it featurizes
    assert featurize([nested_plan(MAX_PLAN_DEPTH)]).n_nodes == MAX_PLAN_DEPTH


def test_cli_smoke_with_an_unknown_backend() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dbgym", "instance", "smoke", "--backend", "foo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert lines == ["error: unknown backend 'foo' (choose one of: docker, local)"], out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_smoke_function_refuses_unknown_backend_before_anything() -> None:
    from dbgym.dbms.smoke import smoke

    said: list[str] = []
    with pytest.raises(InvalidArgumentError, match="choose one of: docker, local"):
        smoke("dokcer", echo=said.append)
    assert said == []
