"""Shared fixtures: the `backend` fixture runs instance tests on every backend; `faults`
injects real faults (killed servers and backends) for the session tests.

"docker" skips (with the reason) only when this machine cannot run it: no docker
engine, no dbgym image, or the docker backend is not part of this build.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbgym.dbms.images import DEFAULT_IMAGE
from dbgym.dbms.instance import PostgresInstance, default_workdir_base

BACKENDS = ["local", "docker"]


@functools.cache
def docker_unavailable_reason() -> str | None:
    if importlib.util.find_spec("dbgym.dbms.docker_backend") is None:
        return "the docker backend (dbgym/dbms/docker_backend.py) is not in this build"
    try:
        import docker.errors

        import docker
    except ImportError:
        return "the docker SDK is not installed"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except docker.errors.DockerException as exc:
        return f"no docker engine reachable: {exc}"
    try:
        client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        # A fresh machine: build it once for the session (offline, about a minute).
        from dbgym.dbms.image_build import build_image
        from dbgym.errors import DbgymError

        try:
            build_image(DEFAULT_IMAGE, show_progress=False)
        except DbgymError as exc:
            return f"image {DEFAULT_IMAGE} not present and cannot be built here: {exc}"
    return None


@pytest.fixture(autouse=True)
def _project_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every `dbgym` subprocess it starts) records its simulations in a
    project folder of its own, never in ./.dbgym-projects of the checkout."""
    monkeypatch.setenv("DBGYM_PROJECT_DIR", str(tmp_path_factory.mktemp("project")))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name = str(request.param)
    if name == "docker":
        reason = docker_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
    yield name


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A fresh directory the server's OS user can reach (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="dbgym-test-", dir=default_workdir_base()))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- fault injection ---------------------------------------------------------------------


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` (backing off from 1 ms to 50 ms) until it is true; fail the test
    naming `what` if `timeout` seconds pass first. The event-based wait of these tests:
    nothing sleeps a fixed time before a signal."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class Background:
    """A thread that waits for a condition, then acts (see `Faults.when`)."""

    def __init__(self, condition: Callable[[], bool], action: Callable[[], None], what: str):
        self.fired = threading.Event()
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._what = what

        def run() -> None:
            try:
                delay = 0.001
                while not condition():
                    if self._cancel.wait(delay):
                        return
                    delay = min(delay * 2, 0.01)
                action()
                self.fired.set()
            except BaseException as exc:  # handed to the test by join()
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"fault: {what}", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float = 60.0) -> None:
        """Wait for the thread; re-raise what it raised; fail if it never acted."""
        self._thread.join(timeout)
        self._cancel.set()
        self._thread.join(5.0)
        if self._error is not None:
            raise self._error
        assert self.fired.is_set(), f"the fault was never injected: {self._what}"


def _container(inst: PostgresInstance) -> Any:
    import docker

    return docker.from_env().containers.get(inst.backend_impl.registry_fields()["container_id"])


class Faults:
    """Fault injection on real servers (see the `faults` fixture)."""

    def __init__(self) -> None:
        self._removers: list[Callable[[], None]] = []
        self._threads: list[Background] = []

    def kill_server(self, inst: PostgresInstance) -> None:
        """Kill the server as a crash would: SIGKILL of the postmaster (local) or `docker
        kill` of the container (docker). Returns once the instance sees it dead."""
        if inst.backend == "docker":
            _container(inst).kill()
            wait_until(lambda: not inst.alive(), 30, "the docker container to die")
        else:
            self.kill_postmaster(inst)

    def kill_postmaster(self, inst: PostgresInstance) -> None:
        """SIGKILL of the postmaster alone (in its container, on docker, which lives on).
        Returns once the instance sees it dead."""
        if inst.backend == "docker":
            # the pid in the container's namespace, as the server wrote it
            wait_until(lambda: (inst.datadir / "postmaster.pid").exists(), 30, "postmaster.pid")
            pid = int((inst.datadir / "postmaster.pid").read_text().split()[0])
            out = _container(inst).exec_run(["sh", "-c", f"kill -KILL {pid}"])
            assert out.exit_code == 0, out.output
        else:
            os.kill(int(inst.backend_impl.registry_fields()["server_pid"]), signal.SIGKILL)
        wait_until(lambda: not inst.alive(), 30, f"the {inst.backend} postmaster to die")

    def kill_server_on(self, inst: PostgresInstance, event: str) -> threading.Event:
        """Kill the server the first time `inst` reaches lifecycle `event` (e.g.
        "starting": a new postmaster was spawned and is not ready yet). The returned
        event is set once the kill was done."""
        done = threading.Event()

        def listener(what: str) -> None:
            if what == event and not done.is_set():
                done.set()
                self.kill_server(inst)

        self._removers.append(inst.add_listener(listener))
        return done

    def kill_backend(self, inst: PostgresInstance, pid: int) -> None:
        """SIGKILL one backend process (pid as pg_stat_activity shows it), as the OOM
        killer does: PostgreSQL then ends every session and restarts its processes."""
        if inst.backend == "docker":
            out = _container(inst).exec_run(["sh", "-c", f"kill -KILL {int(pid)}"])
            assert out.exit_code == 0, out.output
        else:
            os.kill(pid, signal.SIGKILL)

    def when(
        self, condition: Callable[[], bool], action: Callable[[], None], what: str
    ) -> Background:
        """Run `action` in a thread as soon as `condition()` holds (polled every few ms);
        `.join()` it afterwards."""
        bg = Background(condition, action, what)
        self._threads.append(bg)
        return bg

    def close(self) -> None:
        for remove in self._removers:
            remove()
        for bg in self._threads:
            bg.cancel()


@pytest.fixture
def faults() -> Iterator[Faults]:
    """Kills real servers (postmaster SIGKILL, `docker kill`, a backend's SIGKILL), on a
    condition or at a lifecycle event, for the session's fault tests."""
    injector = Faults()
    try:
        yield injector
    finally:
        injector.close()
