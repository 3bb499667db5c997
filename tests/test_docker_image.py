"""`dbgym docker build-image`: a real offline build (debootstrap + docker import).

The build uses the package cache the CI set-up (or an earlier build) left in dbgym's
cache dir, so it is the ~30-60 s offline part; a missing cache means a download first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dbgym.dbms.image_build import (
    DEFAULT_MIRROR,
    POSTGRES_UID,
    build_image,
    cache_dir,
    debian_mirror,
)
from dbgym.dbms.images import DEFAULT_IMAGE
from tests.conftest import docker_unavailable_reason, wait_until

# unique per test process: several test sessions may share one docker engine
TEST_TAG = f"dbgym-test/postgres-build:pid{os.getpid()}"


def test_debian_mirror_from_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBGYM_DEBIAN_MIRROR", raising=False)
    d = tmp_path / "sources.list.d"
    d.mkdir()
    assert debian_mirror(tmp_path) == DEFAULT_MIRROR  # nothing configured
    (d / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\n\n"
        "Types: deb deb-src\n"
        "# a comment\n"
        "URIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://oneline.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://oneline.example/debian"
    monkeypatch.setenv("DBGYM_DEBIAN_MIRROR", "http://env.example/debian")
    assert debian_mirror(tmp_path) == "http://env.example/debian"


def _can_build() -> str | None:
    reason = docker_unavailable_reason()
    if reason is not None:
        return reason
    if os.geteuid() != 0:
        return "building the image needs root (debootstrap)"
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        return "debootstrap is not installed"
    return None


@pytest.fixture(scope="module")
def client() -> Any:
    reason = _can_build()
    if reason is not None:
        pytest.skip(reason)
    import docker

    return docker.from_env()


def _mounts_under_cache() -> list[str]:
    prefix = str(cache_dir().resolve())
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4].startswith(prefix)]


def test_existing_image_is_not_rebuilt(client: Any) -> None:
    t = time.monotonic()
    result = build_image(DEFAULT_IMAGE, show_progress=False)
    assert not result.built and result.image_id == client.images.get(DEFAULT_IMAGE).id
    assert time.monotonic() - t < 5


def test_build_image_command(client: Any) -> None:
    import docker.errors

    t = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "dbgym", "docker", "build-image", "--tag", TEST_TAG, "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = child.communicate(timeout=900)
    seconds = time.monotonic() - t
    assert child.returncode == 0, stderr[-3000:] + stdout[-3000:]
    assert f"built {TEST_TAG}" in stdout
    assert not (cache_dir() / "image-build" / f"root-{child.pid}").exists()
    try:
        image = client.images.get(TEST_TAG)
        config = image.attrs["Config"]
        assert config["User"] == "postgres"
        assert config["Labels"]["dbgym.postgres_uid"] == str(POSTGRES_UID)
        assert any(e.startswith("PATH=/usr/lib/postgresql/15/bin:") for e in config["Env"])
        assert image.attrs["Size"] < 600 * 2**20, image.attrs["Size"]
        report = client.containers.run(
            TEST_TAG,
            [
                "sh",
                "-c",
                "postgres --version; id -u; ls /usr/lib/postgresql/15/lib/hypopg.so; "
                "ls /usr/share/doc | wc -l; ls /var/lib/postgresql",
            ],
            remove=True,
        ).decode()
        lines = report.split()
        assert "15." in report and "(PostgreSQL)" in report
        assert str(POSTGRES_UID) in lines
        assert "/usr/lib/postgresql/15/lib/hypopg.so" in lines
        assert "15" not in report.splitlines()[-1].split()  # Debian's cluster was removed
        print(f"\nimage build (cached packages): {seconds:.1f} s")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(TEST_TAG, force=True)


def test_build_interrupted_by_ctrl_c_leaves_nothing(client: Any) -> None:
    """SIGINT in the middle of debootstrap: exit, no root dir, no mount, no image."""
    import docker.errors

    tag = f"dbgym-test/postgres-interrupted:pid{os.getpid()}"
    child = subprocess.Popen(
        [sys.executable, "-m", "dbgym", "docker", "build-image", "--tag", tag, "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    root = cache_dir() / "image-build" / f"root-{child.pid}"

    def mounted() -> bool:  # debootstrap configures packages in the root, /proc mounted
        assert child.poll() is None, "the build ended before it could be interrupted"
        return any(f"root-{child.pid}" in m for m in _mounts_under_cache())

    wait_until(mounted, 300, "debootstrap to mount file systems in the root")
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=120)
    assert child.returncode != 0
    assert not root.exists()
    assert [m for m in _mounts_under_cache() if f"root-{child.pid}" in m] == []
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(tag)
