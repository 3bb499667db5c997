"""InstanceSpec: how to run a PostgreSQL server, as a typed, serializable value.

```python
spec = InstanceSpec(backend="docker", image="dbgym/postgres:15", cpus=2, memory="4g",
                    knobs={"shared_buffers": "512MB"})
inst = spec.launch()                  # PostgresInstance.launch with these options
spec.server_major()                   # 15: what the backend will run, known before launch
InstanceSpec.from_json(spec.to_json()) == spec
```

What belongs to one run rather than to the spec (the work directory, a data directory to
start from) is given to `launch`. The spec never holds a password: the instance picks its
own superuser password at launch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from dbgym.dbms.backend import BACKENDS, BackendOptions, server_major
from dbgym.dbms.instance import PostgresInstance
from dbgym.dbms.local import limits_refusal
from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.spec import FrozenDict, Spec
from dbgym.types import SettingValue


@dataclass(frozen=True)
class InstanceSpec(Spec):
    """A PostgreSQL server to launch.

    backend: a name in `dbgym.dbms.backend.BACKENDS` ("local": processes on this machine,
        "docker": one container).
    image, cpus, memory: the docker backend's image and limits (memory: bytes, or a string
        like "512m" / "2g"). The local backend cannot enforce cpus and memory and refuses
        them (SpecError naming the key, when the spec is made); it ignores image.
    bin_dir: the local backend's server binaries (default: found as `dbgym doctor` says);
        the docker backend ignores it.
    port: host TCP port (default: a free one).
    knobs: server settings applied after the first start (see PostgresInstance.apply_knobs).
    """

    kind: ClassVar[str] = "instance"

    backend: str = "local"
    image: str | None = None
    cpus: float | None = None
    memory: int | str | None = None
    bin_dir: str | None = None
    port: int | None = None
    knobs: Mapping[str, SettingValue] = FrozenDict()

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            BACKENDS.check(self.backend)
        except InvalidArgumentError as e:
            raise SpecError(str(e), key="backend") from None
        if self.image is not None and not self.image:
            raise SpecError("image: must be an image name, got ''", key="image")
        if self.cpus is not None and not self.cpus > 0:
            raise SpecError(f"cpus: must be a positive number, got {self.cpus!r}", key="cpus")
        if self.memory is not None and (
            (isinstance(self.memory, int) and self.memory <= 0)
            or (isinstance(self.memory, str) and not self.memory.strip())
        ):
            raise SpecError(
                f"memory: give bytes or a string like '512m' / '2g', got {self.memory!r}",
                key="memory",
            )
        if self.backend == "local":  # caught here, before anything is launched
            for key, value in (("cpus", self.cpus), ("memory", self.memory)):
                refusal = limits_refusal(**{key: value})
                if refusal is not None:
                    raise SpecError(f"{key}: {refusal}", key=key)
        if self.bin_dir is not None and not self.bin_dir:
            raise SpecError("bin_dir: must be a directory, got ''", key="bin_dir")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise SpecError(f"port: must be in 1..65535, got {self.port}", key="port")
        for name in self.knobs:
            if not name:
                raise SpecError("knobs: a knob name is empty", key="knobs")

    def backend_options(self) -> BackendOptions:
        """What the backend's constructor receives."""
        return BackendOptions(
            bin_dir=Path(self.bin_dir) if self.bin_dir is not None else None,
            image=self.image,
            cpus=self.cpus,
            memory=self.memory,
        )

    def server_major(self) -> int | None:
        """The PostgreSQL major version this spec's server will run (None: the backend
        cannot tell before it starts). BackendUnavailableError if binaries/image are missing."""
        return server_major(self.backend, self.backend_options())

    def launch(
        self,
        *,
        workdir: str | Path | None = None,
        init_from: str | Path | None = None,
    ) -> PostgresInstance:
        """A new server with this spec (see `PostgresInstance.launch`); `workdir` and
        `init_from` (a directory written by `export_datadir`) belong to this one run."""
        return PostgresInstance.launch(
            backend=self.backend,
            workdir=workdir,
            port=self.port,
            knobs=dict(self.knobs) or None,
            image=self.image,
            cpus=self.cpus,
            memory=self.memory,
            init_from=init_from,
            bin_dir=self.bin_dir,
        )
