"""Build the dbgym PostgreSQL image offline: no container registry, only Debian packages.

Steps (`build_image`):
1. download the .deb files of a minimal bookworm root plus postgresql-15 and
   postgresql-15-hypopg once (`debootstrap --make-tarball`), cached under the dbgym cache dir;
2. install them into a fresh root (`debootstrap --unpack-tarball`, offline);
3. configure and trim it: postgres user/group get the fixed id 999 (the official image's too),
   the Debian "main" cluster, apt caches, docs, man pages and translations are removed;
4. stream it as a tar into `docker import` with the image metadata (PATH, user, labels).

Every step shows progress; on any error or Ctrl-C the partial root is unmounted and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dbgym.dbms.images import (
    DEFAULT_IMAGE,
    IMAGE_KIND_LABEL,
    LABEL_PG_MAJOR,
    LABEL_POSTGRES_UID,
    docker_client,
)
from dbgym.errors import BackendUnavailableError, ImageBuildError

SUITE = "bookworm"
PG_MAJOR = 15
PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-hypopg")
POSTGRES_UID = 999
POSTGRES_GID = 999
BIN_DIR = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
PGDATA = "/var/lib/postgresql/data"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Image labels the docker backend reads (see dbgym/dbms/docker_backend.py).
LABEL_BIN_DIR = "dbgym.bin_dir"

# Trimmed from the root: nothing PostgreSQL needs at run time (zoneinfo stays: Debian's
# PostgreSQL uses the system time zone database; LLVM and the JIT bitcode stay: jit=on).
_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    f"var/lib/postgresql/{PG_MAJOR}",
    f"etc/postgresql/{PG_MAJOR}",
    "var/log/postgresql",
)

# Started by the image's default CMD when it is run outside dbgym: initdb on first start, then
# the server in the foreground. dbgym's docker backend overrides the command and runs
# initdb / pg_ctl itself (see docker_backend.py).
_ENTRYPOINT = f"""#!/bin/sh
set -e
: "${{PGDATA:={PGDATA}}}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" --auth=trust --username=postgres >/dev/null
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.auto.conf"
fi
exec postgres -D "$PGDATA" "$@"
"""


@dataclass(frozen=True)
class ImageBuildResult:
    """What `build_image` did: `built` is False when the image existed and `force` was not set."""

    tag: str
    image_id: str
    built: bool
    seconds: float
    downloaded: bool


def cache_dir() -> Path:
    """$DBGYM_CACHE_DIR, else $XDG_CACHE_HOME/dbgym, else ~/.cache/dbgym."""
    env = os.environ.get("DBGYM_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dbgym"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 or one-line sources), for `SUITE`.

    $DBGYM_DEBIAN_MIRROR overrides it; http://deb.debian.org/debian is the fallback.
    """
    env = os.environ.get("DBGYM_DEBIAN_MIRROR")
    if env:
        return env
    files = [sources_dir / "sources.list"]
    d = sources_dir / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for uri, suites in _parse_sources(text, deb822=f.suffix == ".sources"):
            if SUITE in suites and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _parse_sources(text: str, deb822: bool) -> Iterator[tuple[str, list[str]]]:
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()
    else:
        for line in text.splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]


def image_exists(tag: str = DEFAULT_IMAGE, client: Any = None) -> bool:
    return _image_id(client or docker_client(), tag) is not None


def _image_id(client: Any, tag: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    force: bool = False,
    mirror: str | None = None,
    cache: Path | None = None,
    show_progress: bool = True,
) -> ImageBuildResult:
    """Build the PostgreSQL image `tag` from Debian packages, no registry; needs root, debootstrap.

    Skips the build when `tag` exists unless `force`. The downloaded packages are cached in
    `cache` (default `cache_dir()/image-build`), so a rebuild is offline and takes ~30 s.
    """
    start = time.monotonic()
    client = docker_client()
    previous = _image_id(client, tag)
    if previous is not None and not force:
        return ImageBuildResult(tag, previous, False, time.monotonic() - start, False)
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise BackendUnavailableError(
            "debootstrap is not installed (apt-get install debootstrap); "
            "it is needed to build the image offline"
        )
    if os.geteuid() != 0:
        raise BackendUnavailableError(
            "building the image needs root (debootstrap chroots): "
            "run `sudo dbgym docker build-image`"
        )
    cache = (cache or cache_dir()) / "image-build"
    cache.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    key = hashlib.sha256(f"{SUITE} {arch} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    debs = cache / f"debs-{SUITE}-{arch}-{key}.tgz"
    meta = debs.with_suffix(".json")
    log = cache / "build.log"
    mirror = mirror or debian_mirror()

    with _Progress(show_progress) as progress:
        downloaded = False
        if not (debs.exists() and meta.exists()):
            partial = debs.with_name(f"{debs.name}.{os.getpid()}.partial")
            scratch = cache / f"download-{os.getpid()}"
            try:
                count = _run_debootstrap(
                    [
                        debootstrap,
                        "--variant=minbase",
                        f"--arch={arch}",
                        f"--include={','.join(PACKAGES)}",
                        f"--make-tarball={partial}",
                        SUITE,
                        str(scratch),
                        mirror,
                    ],
                    log,
                    progress.task("Downloading Debian packages", None),
                    progress,
                    scratch,
                )
                partial.replace(debs)
                meta.write_text(json.dumps({"packages": count, "mirror": mirror}))
                downloaded = True
            finally:
                partial.unlink(missing_ok=True)
                _remove_tree(scratch)
        npkgs = int(json.loads(meta.read_text()).get("packages", 130))

        root = cache / f"root-{os.getpid()}"
        try:
            _run_debootstrap(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--arch={arch}",
                    f"--include={','.join(PACKAGES)}",
                    f"--unpack-tarball={debs}",
                    SUITE,
                    str(root),
                    mirror,
                ],
                log,
                progress.task("Installing the root filesystem", 3 * npkgs),
                progress,
                root,
            )
            task = progress.task("Configuring and trimming", 1)
            version = _configure_root(root)
            progress.done(task)
            image_id = _import_root(client, root, tag, version, progress)
        finally:
            _remove_tree(root)
    if previous is not None and previous != image_id:
        # the replaced image is now untagged; drop it unless a container still uses it
        with contextlib.suppress(Exception):
            client.images.remove(previous)
    return ImageBuildResult(tag, image_id, True, time.monotonic() - start, downloaded)


_LINE = re.compile(r"^I: (Retrieving|Extracting|Unpacking|Configuring|Validating) (\S+)")


def _run_debootstrap(
    cmd: list[str], log: Path, task: int, progress: _Progress, target: Path
) -> int:
    """Run debootstrap, feeding its "I:" lines to the progress bar; returns packages retrieved."""
    retrieved = 0
    with log.open("a") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C is handled here: stop it, unmount, remove
        )
        tail: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                tail = [*tail[-29:], line.rstrip()]
                m = _LINE.match(line)
                if m:
                    if m.group(1) != "Validating":
                        progress.advance(task, f"{m.group(1).lower()} {m.group(2)}")
                    if m.group(1) == "Retrieving" and m.group(2) not in ("InRelease", "Packages"):
                        retrieved += 1
            rc = proc.wait()
        except BaseException:
            _stop(proc)
            _unmount_below(target)
            raise
    _unmount_below(target)
    if rc != 0:
        raise ImageBuildError(
            f"debootstrap failed (exit {rc}); full log: {log}\n  " + "\n  ".join(tail)
        )
    progress.done(task)
    return retrieved


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix) or point == prefix[:-1]:
                points.append(point)
    return points


def _unmount_below(path: Path) -> None:
    """Unmount what debootstrap may have left mounted in the root (proc, sys, dev binds)."""
    if not path.exists():
        return
    for point in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    _unmount_below(path)
    left = _mounts_below(path)
    if left:
        raise ImageBuildError(f"cannot remove {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def _chroot(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["chroot", str(root), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
    )
    if out.returncode != 0:
        raise ImageBuildError(f"in the image root, `{' '.join(args)}` failed: {out.stderr.strip()}")
    return out.stdout


def _configure_root(root: Path) -> str:
    """Fix the postgres uid/gid, drop the Debian cluster and caches; return the package version."""
    version = _chroot(root, "dpkg-query", "-W", "-f=${Version}", f"postgresql-{PG_MAJOR}")
    pw = _chroot(root, "getent", "passwd", "postgres").split(":")
    old_uid, old_gid = int(pw[2]), int(pw[3])
    if (old_uid, old_gid) != (POSTGRES_UID, POSTGRES_GID):
        _chroot(root, "groupmod", "-g", str(POSTGRES_GID), "postgres")
        _chroot(root, "usermod", "-u", str(POSTGRES_UID), "-g", str(POSTGRES_GID), "postgres")
        for top in ("var/lib/postgresql", "var/run/postgresql", "run/postgresql", "etc", "var/log"):
            base = root / top
            if base.is_symlink() or not base.exists():
                continue
            paths = [str(base)]
            for dirpath, dirnames, filenames in os.walk(base):
                paths += [os.path.join(dirpath, name) for name in [*dirnames, *filenames]]
            for path in paths:
                st = os.lstat(path)
                if st.st_uid == old_uid or st.st_gid == old_gid:
                    uid = POSTGRES_UID if st.st_uid == old_uid else st.st_uid
                    gid = POSTGRES_GID if st.st_gid == old_gid else st.st_gid
                    os.lchown(path, uid, gid)
    for rel in _TRIM:
        trimmed = root / rel
        if trimmed.is_dir() and not trimmed.is_symlink():
            shutil.rmtree(trimmed)
            if rel.startswith(("var/cache", "var/lib/apt", "usr/share")):
                trimmed.mkdir()
    for d in (root / "var/lib/postgresql", root / "run/postgresql", root / PGDATA.lstrip("/")):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, POSTGRES_UID, POSTGRES_GID)
    (root / "run/postgresql").chmod(0o2775)
    (root / PGDATA.lstrip("/")).chmod(0o700)
    ep = root / "usr/local/bin/dbgym-entrypoint"
    ep.write_text(_ENTRYPOINT)
    ep.chmod(0o755)
    return version


def _import_root(client: Any, root: Path, tag: str, version: str, progress: _Progress) -> str:
    total = sum(
        os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files
    )
    task = progress.task("Importing into Docker (MiB)", total / 2**20)
    changes = [
        f"ENV PATH={BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV PGDATA={PGDATA}",
        f"LABEL {IMAGE_KIND_LABEL}=postgres",
        f"LABEL {LABEL_PG_MAJOR}={PG_MAJOR}",
        f"LABEL {LABEL_POSTGRES_UID}={POSTGRES_UID}",
        f"LABEL {LABEL_BIN_DIR}={BIN_DIR}",
        f"LABEL dbgym.pg_package_version={version}",
        f"LABEL dbgym.debian_suite={SUITE}",
        "USER postgres",
        "WORKDIR /var/lib/postgresql",
        "EXPOSE 5432",
        'CMD ["dbgym-entrypoint"]',
    ]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert tar.stdout is not None
        reply = client.api.import_image_from_stream(
            _chunks(tar.stdout, lambda n: progress.advance(task, None, n / 2**20)),
            repository=tag.rsplit(":", 1)[0] if ":" in tag.split("/")[-1] else tag,
            tag=tag.rsplit(":", 1)[1] if ":" in tag.split("/")[-1] else "latest",
            changes=changes,
        )
        if tar.wait() != 0:
            raise ImageBuildError(f"tar of the image root {root} failed (exit {tar.returncode})")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            tar.kill()
        tar.wait()
        raise
    for line in str(reply).splitlines():
        with contextlib.suppress(ValueError):
            status = json.loads(line)
            if isinstance(status, dict) and "error" in status:
                raise ImageBuildError(f"docker import of {tag} failed: {status['error']}")
    progress.done(task)
    return str(client.images.get(tag).id)


def _chunks(stream: IO[bytes], on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return
        on_bytes(len(chunk))
        yield chunk


class _Progress:
    """A rich progress display (or nothing when `enabled` is False)."""

    def __init__(self, enabled: bool) -> None:
        self._p: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<30}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
            )

    def __enter__(self) -> _Progress:
        if self._p is not None:
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def task(self, description: str, total: float | None) -> int:
        if self._p is None:
            return 0
        return int(self._p.add_task(description, total=total, detail=""))

    def advance(self, task: int, detail: str | None, amount: float = 1) -> None:
        if self._p is None:
            return
        if detail is None:
            self._p.update(task, advance=amount)
        else:
            self._p.update(task, advance=amount, detail=detail)

    def done(self, task: int, detail: str = "done") -> None:
        if self._p is None:
            return
        t = next(t for t in self._p.tasks if t.id == task)
        total = t.total if t.total is not None else t.completed
        self._p.update(task, total=total, completed=total, detail=detail)
