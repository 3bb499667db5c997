"""Docker-specific behaviour of the docker backend (real containers, real servers).

The instance tests shared with the local backend (launch, knobs, snapshots, clean) run
on docker through the `backend` fixture; these cover what only a container has: labels,
limits, the port published on 127.0.0.1 only, container removal, the label-based clean
of containers whose owner died, and images laid out like the official postgres image.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dbgym
from dbgym.dbms import instance_registry
from dbgym.dbms.docker_backend import DockerBackend
from dbgym.dbms.docker_image import image_info
from dbgym.dbms.docker_owners import LABEL_INSTANCE, LABEL_OWNER_PID, LABEL_WORKDIR
from dbgym.dbms.images import DEFAULT_IMAGE
from tests.conftest import docker_unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
# unique per test process: several test sessions may share one docker engine
OFFICIAL_LIKE = f"dbgym-test/postgres-official-layout:pid{os.getpid()}"


@pytest.fixture(scope="module")
def client() -> Any:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import docker

    return docker.from_env()


def container_of(inst: dbgym.PostgresInstance) -> Any:
    backend = inst.backend_impl
    assert isinstance(backend, DockerBackend)
    container = backend.container
    container.reload()
    return container


def host_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (`hostname -I`)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    return [a for a in out.stdout.split() if "." in a and not a.startswith("127.")]


def test_labels_limits_and_loopback_only_port(client: Any) -> None:
    with dbgym.PostgresInstance.launch(backend="docker", cpus=1.5, memory="512m") as inst:
        c = container_of(inst)
        labels = c.labels
        assert labels[LABEL_WORKDIR] == str(inst.workdir)
        assert labels[LABEL_OWNER_PID] == str(os.getpid())
        assert labels["dbgym.owner_host"] == socket.gethostname()
        host = c.attrs["HostConfig"]
        assert host["NanoCpus"] == 1_500_000_000
        assert host["Memory"] == 512 * 2**20
        assert host["Init"] is True
        # the limits are real: the container's cgroup says so
        out = c.exec_run(
            [
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
                "|| cat /sys/fs/cgroup/memory.max",
            ]
        )
        assert int(out.output.decode().split()[0]) == 512 * 2**20
        # published on 127.0.0.1 only, on the instance's port
        ports = {k: v for k, v in c.attrs["NetworkSettings"]["Ports"].items() if v}
        assert ports == {f"{inst.port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(inst.port)}]}
        for addr in host_addresses():
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((addr, inst.port)) != 0, f"port reachable on {addr}"
        with inst.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('data_directory'), inet_server_port()"
            ).fetchone()
        assert row == (str(inst.datadir), inst.port)
        # the image's postgres user owns the host data directory when we are root
        backend = inst.backend_impl
        assert isinstance(backend, DockerBackend)
        if os.geteuid() == 0:
            assert inst.datadir.stat().st_uid == backend.image.uid


def test_close_removes_container_and_volumes(client: Any) -> None:
    import docker.errors

    inst = dbgym.PostgresInstance.launch(backend="docker")
    c = container_of(inst)
    tag = c.labels[LABEL_INSTANCE]
    volumes = [m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"]
    inst.close()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)
    assert client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={tag}"}) == []
    for name in volumes:
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(name)
    assert not inst.workdir.exists()


CHILD = """
import json, sys, time
import dbgym
inst = dbgym.PostgresInstance.launch(backend="docker")
print(json.dumps({"id": inst.id, "container": inst.backend_impl.container.id,
                  "workdir": str(inst.workdir)}), flush=True)
time.sleep(600)
"""


def test_clean_removes_unregistered_container_of_dead_owner(client: Any) -> None:
    """A container whose owner died is found by its labels alone (no registry entry),
    while a container of a live owner (this test process) is left alone."""
    import docker.errors

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "child did not launch an instance"
        info = json.loads(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    try:
        with dbgym.PostgresInstance.launch(backend="docker") as mine:
            # forget the dead owner's registry entry: only the labels are left to go by
            instance_registry.remove_entry(info["id"])
            DockerBackend.find_unregistered_leftovers()
            # (another test session on this engine may have run `dbgym clean` first, by
            # the same rule; either way the dead owner's container must be gone now)
            with pytest.raises(docker.errors.NotFound):
                client.containers.get(info["container"])
            assert container_of(mine).status == "running"
            with mine.connect() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(info["container"]).remove(force=True, v=True)
        shutil.rmtree(info["workdir"], ignore_errors=True)


# An entrypoint that behaves like the official image's: initdb, a temporary server on
# the unix socket only, then the real server. dbgym must never run it.
OFFICIAL_ENTRYPOINT = """#!/bin/sh
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" --username=postgres >/dev/null
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  echo "PostgreSQL init process complete; ready for start up."
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec "$@"
"""


@pytest.fixture(scope="module")
def official_like_image(client: Any) -> Iterator[str]:
    """dbgym's image re-imported with the official image's metadata (PG_MAJOR, PGDATA,
    VOLUME, docker-entrypoint.sh, no dbgym labels): cheap, and no registry needed."""
    base = client.containers.create(DEFAULT_IMAGE, command=["true"])
    try:
        script = io.BytesIO()
        with tarfile.open(fileobj=script, mode="w") as tar:
            data = OFFICIAL_ENTRYPOINT.encode()
            member = tarfile.TarInfo("docker-entrypoint.sh")
            member.size, member.mode = len(data), 0o755
            tar.addfile(member, io.BytesIO(data))
        base.put_archive("/usr/local/bin", script.getvalue())
        exported = base.export(chunk_size=1 << 20)
        client.api.import_image_from_stream(
            exported,
            repository=OFFICIAL_LIKE.split(":")[0],
            tag=OFFICIAL_LIKE.split(":")[1],
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:"
                "/usr/lib/postgresql/15/bin",
                "ENV PG_MAJOR=15",
                "ENV PGDATA=/var/lib/postgresql/data",
                "VOLUME /var/lib/postgresql/data",
                'ENTRYPOINT ["docker-entrypoint.sh"]',
                'CMD ["postgres"]',
                "EXPOSE 5432",
            ],
        )
    finally:
        base.remove(force=True)
    yield OFFICIAL_LIKE
    with contextlib.suppress(Exception):
        client.images.remove(OFFICIAL_LIKE, force=True)


def test_official_image_layout(client: Any, official_like_image: str) -> None:
    info = image_info(client, official_like_image)
    assert (info.kind, info.pg_major, info.uid) == ("official", 15, 999)
    assert image_info(client, DEFAULT_IMAGE).kind == "dbgym"
    with dbgym.PostgresInstance.launch(backend="docker", image=official_like_image) as inst:
        c = container_of(inst)
        # the image's entrypoint (and so its temporary init server) was never run
        assert c.attrs["Config"]["Entrypoint"][:2] == ["/bin/sh", "-c"]
        assert "init process complete" not in c.logs().decode()
        with inst.connect() as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        assert row == (str(inst.datadir),)
        inst.snapshot("s")
        with inst.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
        inst.restore("s")
        with inst.connect() as conn:
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        volumes = [m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"]
    import docker.errors

    for name in volumes:  # the declared VOLUME's anonymous volume went with the container
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(name)


def test_missing_image_is_a_clear_error(client: Any) -> None:
    from dbgym.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match=r"not present.*docker pull"):
        dbgym.PostgresInstance.launch(backend="docker", image="no-such/postgres:0")


def test_restart_keeps_container_and_port(client: Any) -> None:
    """A postmaster restart is a FIFO command to the container's supervisor."""
    with dbgym.PostgresInstance.launch(backend="docker") as inst:
        before = container_of(inst).id
        with inst.connect() as conn:
            pid1 = conn.execute("SELECT pg_backend_pid(), pg_postmaster_start_time()").fetchone()
        change = inst.apply_knobs({"shared_buffers": "64MB"})
        assert change.restarted
        with inst.connect() as conn:
            pid2 = conn.execute("SELECT pg_backend_pid(), pg_postmaster_start_time()").fetchone()
            assert conn.execute("SHOW shared_buffers").fetchone() == ("64MB",)
        assert pid1 is not None and pid2 is not None and pid1[1] != pid2[1]
        assert container_of(inst).id == before


NON_ROOT_CHILD = """
import os, dbgym
assert os.geteuid() != 0
with dbgym.PostgresInstance.launch(backend="docker") as inst:
    assert inst.datadir.stat().st_uid == os.geteuid()  # files stay the caller's
    inst.snapshot("a")
    with inst.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
    inst.restore("a")
    with inst.connect() as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    print(inst.backend_impl.container.id, inst.workdir, flush=True)
"""


def _readable_tree(src: Path, dst: Path) -> None:
    """`src` at `dst`, where every user can read it: hard links to files others may read
    already (a copy across file systems, or of a file only its owner may read), and
    directories of mode 0755. The original's directories are left as they are, so a
    checkout (and its venv) under a directory other users cannot enter works too."""

    def link(s: str, d: str) -> None:
        try:
            if os.stat(s).st_mode & 0o004:
                os.link(s, d)
                return
        except OSError:
            pass
        shutil.copy2(s, d)
        os.chmod(d, os.stat(d).st_mode | 0o444)

    shutil.copytree(src, dst, symlinks=True, copy_function=link)
    for d, _, _ in os.walk(dst):
        os.chmod(d, 0o755)


def _runs_as(user: int, group: int, argv: list[str]) -> bool:
    """Whether `argv` runs (and exits 0) as `user`; False if that user may not even exec it."""
    try:
        run = subprocess.run(
            argv, user=user, group=group, cwd="/", capture_output=True, timeout=60, check=False
        )
    except PermissionError:
        return False
    return run.returncode == 0


def test_non_root_caller_in_docker_group(client: Any) -> None:
    """A non-root user with docker access: the container runs as that uid (with a
    generated /etc/passwd), so the host files stay the caller's and snapshots work.

    The child reads dbgym and its dependencies from a world-readable tree of hard links
    (not from the checkout or the venv, which may sit under a directory only root can
    enter, e.g. one made by `mktemp -d`)."""
    import grp

    import docker.errors

    if os.geteuid() != 0:
        pytest.skip("needs root to run a child as another user")
    try:
        docker_gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group to give the non-root user")
    nobody = 65534
    # the interpreter: the venv's own base interpreter if the child may run it (it may
    # live under /root, mode 0700), else the system one of the same Python version (the
    # installed packages must match it)
    candidates = [os.path.realpath(sys.executable), shutil.which("python3", path="/usr/bin:/bin")]
    want = f"import sys; assert sys.version_info[:2] == {tuple(sys.version_info[:2])}"
    python = next((c for c in candidates if c and _runs_as(nobody, nobody, [c, "-c", want])), None)
    if python is None:
        pytest.skip(
            f"no Python {sys.version_info[0]}.{sys.version_info[1]} the non-root child may "
            f"run (tried {', '.join(str(c) for c in candidates)})"
        )
    shared = Path(tempfile.mkdtemp(prefix="dbgym-nonroot-"))
    try:
        shared.chmod(0o755)
        _readable_tree(ROOT / "dbgym", shared / "src" / "dbgym")
        paths = sysconfig.get_paths()
        site_dirs = dict.fromkeys([paths["purelib"], paths["platlib"]])
        for i, site in enumerate(site_dirs):
            _readable_tree(Path(site), shared / f"site{i}")
        pythonpath = [shared / "src", *(shared / f"site{i}" for i in range(len(site_dirs)))]
        out = subprocess.run(
            [python, "-c", NON_ROOT_CHILD],
            user=nobody,
            group=nobody,
            extra_groups=[docker_gid],
            env={
                "HOME": "/tmp",
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": ":".join(map(str, pythonpath)),
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            cwd="/tmp",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    container_id, workdir = out.stdout.split()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)
    assert not Path(workdir).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": 0}, "cpus=0: must be a positive number"),
        ({"cpus": "two"}, "cpus='two'"),
        ({"memory": "2 gigs"}, "memory='2 gigs': give bytes"),
        ({"memory": 1024}, "memory=1024"),
    ],
)
def test_invalid_limits_are_clear_errors(client: Any, kwargs: dict[str, Any], message: str) -> None:
    from dbgym.errors import DbgymError

    with pytest.raises(DbgymError, match=re.escape(message)):
        dbgym.PostgresInstance.launch(backend="docker", **kwargs)
    # nothing was started for it
    assert (
        client.containers.list(all=True, filters={"label": f"{LABEL_OWNER_PID}={os.getpid()}"})
        == []
    )
