"""Configurations `dbgym bench` compares, and the files that hold them (YAML, JSON, TOML).

One schema for every source (a file, `--default`, a simulation's best configuration):

```yaml
name: with-shipdate-index          # required, unique within a comparison
description: the index the lookups need   # optional
knobs:                             # optional: server settings (name -> value)
  work_mem: 64MB
  enable_seqscan: off
indexes:                           # optional: indexes dbgym creates (dropped ones: none)
  - {table: lineitem, columns: [l_shipdate]}
  - {table: orders, columns: [o_custkey, o_orderdate], using: btree}
hints:                             # optional: per-template planner settings
  3: {enable_hashjoin: off}        #   a template id of the workload
  "SELECT count(*) FROM lineitem WHERE l_shipdate = $1": {enable_seqscan: off}  # or its text
backend: docker                    # optional: local | docker (default: the command's --backend)
replay: {speed: null, concurrency: 4}   # optional: the replay mode (default: the command's)
```

A hint key is a template id (an integer, or a string of digits), a template's text, or a
query whose template (`dbgym._core.templatize`) is one of the workload's. An unknown key in
any object, a value of the wrong type or a bad index raises `SpecError` whose `key` names
the field (`"knobs.work_mem"`, `"indexes[1].columns"`), and whose message says the file.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.spec import FrozenDict, Spec
from dbgym.types import SettingValue

#: Suffixes of the configuration file formats.
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
TOML_SUFFIXES = (".toml",)


@dataclass(frozen=True)
class IndexEntry(Spec):
    """An index of a configuration: `table` (or schema.table), `columns`, access method."""

    table: str
    columns: tuple[str, ...]
    using: str = "btree"

    def __post_init__(self) -> None:
        super().__post_init__()
        from dbgym.dbms.indexes import IndexSpec

        try:
            IndexSpec(self.table, self.columns, self.using)
        except InvalidArgumentError as e:
            text = str(e)
            key = "columns" if "column" in text else "using" if "access method" in text else "table"
            raise SpecError(f"{key}: {text}", key=key) from None

    def index_spec(self) -> Any:
        """The `dbgym.dbms.indexes.IndexSpec` of this entry."""
        from dbgym.dbms.indexes import IndexSpec

        return IndexSpec(self.table, self.columns, self.using)

    def __str__(self) -> str:
        return str(self.index_spec())


@dataclass(frozen=True)
class ReplayMode(Spec):
    """How a configuration's workload is replayed: `speed` (None: as fast as possible; 1.0:
    the logged timing) and `concurrency` (None: one connection per logged session)."""

    speed: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.speed is not None and not self.speed > 0:
            raise SpecError(f"speed: must be positive or null, got {self.speed}", key="speed")
        if self.concurrency is not None and self.concurrency < 1:
            raise SpecError(
                f"concurrency: must be at least 1 or null, got {self.concurrency}",
                key="concurrency",
            )

    def __str__(self) -> str:
        speed = "fast" if self.speed is None else f"{self.speed:g}x"
        conc = "per session" if self.concurrency is None else str(self.concurrency)
        return f"speed {speed}, connections {conc}"


@dataclass(frozen=True)
class BenchConfig(Spec):
    """One configuration of a comparison (the schema in the module docstring)."""

    kind: ClassVar[str] = ""

    name: str
    description: str = ""
    knobs: Mapping[str, SettingValue] = field(default_factory=FrozenDict)
    indexes: tuple[IndexEntry, ...] = ()
    hints: Mapping[str, Mapping[str, SettingValue]] = field(default_factory=FrozenDict)
    backend: str | None = None
    replay: ReplayMode | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name.strip():
            raise SpecError("name: must not be empty", key="name")
        if len(self.name) > 80:
            raise SpecError(f"name: at most 80 characters, got {len(self.name)}", key="name")
        for knob in self.knobs:
            if not knob.strip():
                raise SpecError("knobs: a knob name is empty", key="knobs")
        for key, settings in self.hints.items():
            if not key.strip():
                raise SpecError("hints: a template key is empty", key="hints")
            for name in settings:
                if not name.strip():
                    raise SpecError(f"hints.{key}: a setting name is empty", key=f"hints.{key}")
        if self.backend is not None:
            from dbgym.dbms.backend import BACKENDS

            try:
                BACKENDS.check(self.backend)
            except InvalidArgumentError as e:
                raise SpecError(f"backend: {e}", key="backend") from None
        seen: set[tuple[str, tuple[str, ...], str]] = set()
        for i, entry in enumerate(self.indexes):
            ident = (entry.table, entry.columns, entry.using)
            if ident in seen:
                raise SpecError(f"indexes[{i}]: {entry} is listed twice", key=f"indexes[{i}]")
            seen.add(ident)

    @classmethod
    def default(cls) -> BenchConfig:
        """The server's default configuration: no knobs, no indexes, no hints."""
        return cls(name="default", description="the server's defaults")

    @classmethod
    def from_dict(cls, data: object, where: str | None = None) -> BenchConfig:
        """The configuration `data` holds (a parsed file, a simulation's
        `best_bench_config`); `where` names its source in error messages. Template-id keys
        of `hints` may be integers (YAML, Python)."""
        try:
            if not isinstance(data, Mapping):
                raise SpecError(
                    f"a configuration must be an object (name, knobs, indexes, hints), got "
                    f"{type(data).__name__}"
                )
            data = dict(data)
            hints = data.get("hints")
            if isinstance(hints, Mapping):
                data["hints"] = {
                    str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                    for k, v in hints.items()
                }
            return super().from_dict(data)
        except SpecError as e:
            if where is None:
                raise
            raise SpecError(f"{where}: {e}", key=e.key) from None

    def index_specs(self) -> list[Any]:
        """The `IndexSpec`s of `indexes`."""
        return [entry.index_spec() for entry in self.indexes]

    def server_part(self) -> str:
        """What of this configuration lives in the server (knobs, indexes) as canonical
        JSON: two configurations with the same server part can share a server."""
        return json.dumps(
            {
                "knobs": {k: self.knobs[k] for k in sorted(self.knobs)},
                "indexes": sorted(str(e) for e in self.indexes),
            },
            sort_keys=True,
        )

    def summary(self) -> str:
        """One line: knobs, indexes, hints, backend and replay mode that differ from the
        defaults ("defaults" when nothing does)."""
        parts = []
        if self.knobs:
            parts.append(", ".join(f"{k}={_text(v)}" for k, v in self.knobs.items()))
        if self.indexes:
            parts.append("indexes: " + "; ".join(str(e) for e in self.indexes))
        if self.hints:
            parts.append(f"hints on {len(self.hints)} template(s)")
        if self.backend is not None:
            parts.append(f"backend {self.backend}")
        if self.replay is not None:
            parts.append(str(self.replay))
        return " | ".join(parts) or "defaults"


def _text(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_file(path: str | Path) -> object:
    """The parsed contents of a YAML, JSON or TOML file (by suffix); SpecError naming the
    file (and line, when the parser says) when it cannot be read or parsed."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (*YAML_SUFFIXES, *JSON_SUFFIXES, *TOML_SUFFIXES):
        raise SpecError(
            f"configuration file {p}: unknown format {p.suffix or '(no suffix)'!r}; use "
            ".yaml/.yml, .json or .toml"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"configuration file {p}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"configuration file {p}: not UTF-8 text ({e})") from None
    if suffix in JSON_SUFFIXES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(
                f"configuration file {p}: not valid JSON at line {e.lineno}, column {e.colno}: "
                f"{e.msg}"
            ) from None
    if suffix in TOML_SUFFIXES:
        tomllib: Any = importlib.import_module(
            "tomllib" if sys.version_info >= (3, 11) else "tomli"
        )
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"configuration file {p}: not valid TOML: {e}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"configuration file {p}: not valid YAML{at}: {problem}") from None


def load_config(path: str | Path) -> BenchConfig:
    """The configuration in the YAML, JSON or TOML file `path` (SpecError naming the file
    and the bad field)."""
    p = Path(path)
    config = BenchConfig.from_dict(parse_file(p), where=f"configuration file {p}")
    if not config.description:
        config = config.replace(description=f"from {p.name}")
    return config


def from_simulation(project_dir: str | Path | None, sim_id: str) -> BenchConfig:
    """The best configuration a recorded simulation found (`result["best_bench_config"]`
    of the project in `project_dir`, default $DBGYM_PROJECT_DIR or ./.dbgym-projects)."""
    from dbgym.project.manager import ProjectManager

    project = ProjectManager(project_dir)
    row = project.records.get(sim_id)
    result = row.result or {}
    best = result.get("best_bench_config")
    if not best:
        state = row.state
        raise InvalidArgumentError(
            f"--from-sim {sim_id}: simulation {row.sim_id} ({state}) recorded no best "
            "configuration (its result has no 'best_bench_config')"
        )
    where = f"simulation {row.sim_id} (best_bench_config)"
    config = BenchConfig.from_dict(best, where=where)
    return config.replace(description=f"best configuration of simulation {row.sim_id}")
