"""BenchSpec: one comparison of `dbgym bench`, as a typed, serializable value.

```python
spec = BenchSpec(
    state=TpchState(scale=0.01), workload=SqlWorkload("/path/queries"),
    configs=(BenchConfig.default(), load_config("with-index.yaml")),
    repeat=10, warmup=1,
)
report = dbgym.bench.compare(spec)
BenchSpec.from_json(spec.to_json()) == spec
```
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from dbgym.bench.config import BenchConfig, ReplayMode
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import SpecError
from dbgym.spec import Spec
from dbgym.state.spec import StateSpec
from dbgym.workload.spec import WorkloadSpec

CacheMode = Literal["warm", "cold"]
RestoreMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class BenchSpec(Spec):
    """What `dbgym.bench.compare` runs.

    state, workload: the database every configuration starts from, and the workload
        replayed on it (`sample`: that many statements of it, drawn with `seed`).
    configs: the configurations, the first one the baseline every speedup is against.
    instance: the server (backend, image, limits) of configurations that name no backend;
        a configuration's `backend` replaces its backend.
    replay: the replay mode of configurations that give none (default: as fast as
        possible, one connection per logged session).
    repeat: measured runs per configuration; warmup: runs before them (not counted). Runs
        are interleaved: round r runs every configuration once, in the given order.
    cache: "warm" (runs follow each other on a warm server) or "cold" (before every run
        the server restarts and the OS page cache is dropped when permitted).
    statement_timeout: seconds per statement (a statement cancelled by it makes the run
        "timeout": its time is a lower bound, and the report says so).
    restore: "auto" (restore the configuration's state before every run when the workload
        writes, i.e. has a statement that is not a read), "always", or "never".
    one_server: run every configuration of a backend on one server, switching by a
        restore of the pristine state and an apply before each run of another
        configuration (less memory and disk; the restore restarts the server, so shared
        buffers start empty). Default: one server per distinct server-side configuration
        (knobs, indexes, backend), each launched from the same pristine state; switching
        between them costs nothing.
    alpha: significance level (the confidence intervals are 1 - alpha); bootstrap: the
        number of bootstrap resamples; seed: seeds the bootstrap and the sample.
    fail_if_slower: percent; a configuration significantly slower than the first by more
        than this is a regression (`dbgym bench` exits 4).
    name: a label for the report and the project database.
    """

    kind: ClassVar[str] = "bench"

    state: StateSpec
    workload: WorkloadSpec
    configs: tuple[BenchConfig, ...]
    sample: int | None = None
    instance: InstanceSpec = field(default_factory=InstanceSpec)
    replay: ReplayMode = field(default_factory=ReplayMode)
    repeat: int = 10
    warmup: int = 1
    cache: CacheMode = "warm"
    statement_timeout: float | None = None
    restore: RestoreMode = "auto"
    one_server: bool = False
    alpha: float = 0.05
    bootstrap: int = 2000
    seed: int = 0
    fail_if_slower: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.configs:
            raise SpecError("configs: give at least one configuration", key="configs")
        names: dict[str, int] = {}
        for i, config in enumerate(self.configs):
            if config.name in names:
                raise SpecError(
                    f"configs[{i}].name: {config.name!r} is also the name of configs"
                    f"[{names[config.name]}]; names must be unique",
                    key=f"configs[{i}].name",
                )
            names[config.name] = i
            self.instance_for(config, index=i)  # a backend that cannot take the limits
        if self.sample is not None and self.sample < 1:
            raise SpecError(f"sample: must be at least 1, got {self.sample}", key="sample")
        if self.repeat < 1:
            raise SpecError(f"repeat: must be at least 1, got {self.repeat}", key="repeat")
        if self.warmup < 0:
            raise SpecError(f"warmup: must be at least 0, got {self.warmup}", key="warmup")
        if self.statement_timeout is not None and not (
            math.isfinite(self.statement_timeout) and self.statement_timeout > 0
        ):
            raise SpecError(
                f"statement_timeout: must be positive seconds or null, got "
                f"{self.statement_timeout}",
                key="statement_timeout",
            )
        if not 0 < self.alpha < 0.5:
            raise SpecError(f"alpha: must be in (0, 0.5), got {self.alpha}", key="alpha")
        if self.bootstrap < 100:
            raise SpecError(
                f"bootstrap: at least 100 resamples, got {self.bootstrap}", key="bootstrap"
            )
        if not 0 <= self.seed < 2**63:
            raise SpecError(f"seed: must be in [0, 2**63), got {self.seed}", key="seed")
        if self.fail_if_slower is not None and not self.fail_if_slower >= 0:
            raise SpecError(
                f"fail_if_slower: must be a percentage >= 0, got {self.fail_if_slower}",
                key="fail_if_slower",
            )

    def instance_for(self, config: BenchConfig, *, index: int | None = None) -> InstanceSpec:
        """The server `config` runs on: `instance` with the configuration's backend."""
        if config.backend is None or config.backend == self.instance.backend:
            return self.instance
        try:
            return self.instance.replace(backend=config.backend)
        except SpecError as e:
            where = f"configs[{index}].backend" if index is not None else "backend"
            raise SpecError(
                f"{where}: configuration {config.name!r} runs on {config.backend}, which "
                f"cannot take the instance's {e.key}: {e}",
                key=where,
            ) from None

    def replay_for(self, config: BenchConfig) -> ReplayMode:
        """The replay mode of `config` (its own, else the spec's)."""
        return config.replay if config.replay is not None else self.replay


def load_spec(path: str | Path) -> BenchSpec:
    """The BenchSpec in the JSON file `path` (as `BenchSpec.to_json` writes it, or the
    `spec` of a report); SpecError naming the file and the bad key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"spec file {p}: cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"spec file {p}: not valid JSON at line {e.lineno}: {e.msg}") from None
    if isinstance(data, dict) and data.get("kind") == "dbgym-bench":  # a report
        data = data.get("spec")
    try:
        return BenchSpec.from_dict(data)
    except SpecError as e:
        raise SpecError(f"spec file {p}: {e}", key=e.key) from None
