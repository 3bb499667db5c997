"""Shared fixtures: the `backend` fixture runs instance tests on every backend.

"docker" skips (with the reason) only when this machine cannot run it: no docker
engine, no dbgym image, or the docker backend is not part of this build.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbgym.dbms.images import DEFAULT_IMAGE
from dbgym.dbms.instance import default_workdir_base

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
