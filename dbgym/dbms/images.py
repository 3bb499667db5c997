"""The runtime facts of dbgym's PostgreSQL container images: names, labels, the engine client.

The image builder (image_build.py) and the docker backend both depend on this module; the
runtime never imports the builder.
"""

from __future__ import annotations

from typing import Any

from dbgym.errors import BackendUnavailableError

DEFAULT_IMAGE = "dbgym/postgres:15"

#: Labels dbgym puts on the images it builds (read back by docker_image.image_info).
IMAGE_KIND_LABEL = "dbgym.image"
LABEL_PG_MAJOR = "dbgym.pg_major"
LABEL_POSTGRES_UID = "dbgym.postgres_uid"


def docker_client(timeout: int = 600) -> Any:
    """A docker SDK client, or BackendUnavailableError saying why the engine is unreachable."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:
        raise BackendUnavailableError(f"the Docker engine is not reachable: {e}") from e
    return client
