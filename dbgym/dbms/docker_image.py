"""What the docker backend needs to know about a PostgreSQL image: its kind and server uid.

Two kinds are accepted:
- "dbgym": built by `dbgym docker build-image` (label dbgym.image=postgres; the labels
  give the server uid and the binary directory);
- "official": the Docker Official Image `postgres:<ver>` (env PG_MAJOR, entrypoint
  docker-entrypoint.sh) or anything else with PostgreSQL on its PATH; the uid of its
  `postgres` user is read from the image's /etc/passwd without starting it.

The backend never runs an image's own entrypoint (see docker_backend.py), so the official
image's temporary init server never exists.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Any

from dbgym.dbms.images import IMAGE_KIND_LABEL, LABEL_PG_MAJOR, LABEL_POSTGRES_UID
from dbgym.errors import BackendUnavailableError

_cache: dict[str, ImageInfo] = {}


@dataclass(frozen=True)
class ImageInfo:
    name: str
    image_id: str
    kind: str  # "dbgym" or "official"
    pg_major: int | None
    uid: int  # the image's postgres user
    gid: int


def env_of(attrs: dict[str, Any]) -> dict[str, str]:
    env = (attrs.get("Config") or {}).get("Env") or []
    return dict(item.split("=", 1) for item in env if "=" in item)


def image_info(client: Any, name: str) -> ImageInfo:
    """Inspect `name` (cached per image id); BackendUnavailableError if it is missing."""
    import docker.errors

    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound as exc:
        hint = (
            "build it offline with `dbgym docker build-image`"
            if "/" in name and name.startswith("dbgym/")
            else "pull it (`docker pull NAME`) or build dbgym's with `dbgym docker build-image`"
        )
        raise BackendUnavailableError(f"docker image {name} is not present: {hint}") from exc
    cached = _cache.get(image.id)
    if cached is not None and cached.name == name:
        return cached
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    env = env_of(image.attrs)
    if labels.get(IMAGE_KIND_LABEL) == "postgres":
        uid = int(labels.get(LABEL_POSTGRES_UID, "999"))
        major = labels.get(LABEL_PG_MAJOR)
        info = ImageInfo(name, image.id, "dbgym", int(major) if major else None, uid, uid)
    else:
        uid, gid = _passwd_ids(client, image.id, "postgres")
        major = env.get("PG_MAJOR", "").split(".")[0]
        info = ImageInfo(
            name, image.id, "official", int(major) if major.isdigit() else None, uid, gid
        )
    _cache[image.id] = info
    return info


def _passwd_ids(client: Any, image_id: str, user: str) -> tuple[int, int]:
    """(uid, gid) of `user` in the image's /etc/passwd, read from a created (never started)
    container."""
    import docker.errors

    container = client.containers.create(image_id, entrypoint=["/bin/true"], command=[])
    try:
        stream, _ = container.get_archive("/etc/passwd")
        data = b"".join(stream)
    except docker.errors.NotFound as exc:
        raise BackendUnavailableError(f"image {image_id[:19]} has no /etc/passwd") from exc
    finally:
        container.remove(force=True, v=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        text = member.read().decode() if member is not None else ""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] == user:
            return int(parts[2]), int(parts[3])
    raise BackendUnavailableError(
        f"image {image_id[:19]} has no {user!r} user in /etc/passwd; the docker backend runs "
        "PostgreSQL as that user (dbgym's image and the official postgres images have one)"
    )
