"""The knob action: a Box in [0, 1]^k decoded through the knob catalog.

Each tuned knob has a range in its base unit (as pg_settings' `setting` column prints
it) and the scale of dbgym.observe.knobs (log scale when the range spans three or more
orders of magnitude, integers rounded, reals to 4 significant digits, enums and booleans
bucketed). The knob observation uses the same scales (`KnobSpace.ranges` given to a
`KnobStateObserver`, or `encode`), so a model sees the knobs on the scale it acts on.

`DEFAULT_KNOBS` is a curated set of knobs the tuning literature finds impactful on
PostgreSQL: OtterTune's ranking by Lasso over the knobs' effect (Van Aken et al., SIGMOD
2017) and its follow-up on a production PostgreSQL-compatible fleet (Van Aken et al., VLDB
2021, "An Inquiry into Machine Learning-based Automatic Configuration Tuning Services on
Real-World Database Management Systems"), Kanellis et al. (HotStorage 2020, "Too Many Knobs
to Tune? Towards Faster Database Tuning by Pre-selecting Important Knobs"), which finds a
handful of memory, parallelism, planner-cost and checkpoint knobs carrying most of the
gain, and PGTune's rules for the ranges: the buffer pool, per-operation memory, the
planner's cost of random I/O and its cache estimate, I/O concurrency, parallel workers,
WAL/checkpoint pacing, the background writer, and commit durability.

| knob | unit | range | restart |
|---|---|---|---|
| shared_buffers | 8kB pages | 16MB .. 25% of memory | yes |
| work_mem | kB | 64kB .. memory / 64 (at most 2GB) | no |
| maintenance_work_mem | kB | 1MB .. memory / 8 (at most 2GB) | no |
| effective_cache_size | 8kB pages | 16MB .. 90% of memory | no |
| random_page_cost | - | 1 .. 8 | no |
| effective_io_concurrency | - | 0 .. 256 | no |
| max_parallel_workers_per_gather | - | 0 .. CPUs | no |
| max_wal_size | MB | 64MB .. 16GB | no |
| checkpoint_completion_target | - | 0.1 .. 0.9 | no |
| bgwriter_lru_maxpages | - | 0 .. 1000 | no |
| synchronous_commit | enum | off, local, remote_write, remote_apply, on | no |

Memory caps: shared_buffers at 25% of the server's memory (PGTune's rule; and, under a
container limit, never more than dbgym.dbms.knobs.check_memory lets through),
effective_cache_size at 90%, work_mem at memory/64 (a query may use several work_mem at
once, one per sort or hash per worker), maintenance_work_mem at memory/8; parallel
workers at the CPUs. The caps also bound user ranges, so no sampled action can ask for
more memory than the server has. The memory is the container's limit on Docker, the
machine's physical memory for local processes; the CPUs likewise.

`jit` is not a default knob: with hint sets, JIT is kept off for hinted statements unless
the knob action tunes `jit` (see dbgym.envs.hint_space). Add it with KnobRange("jit").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.dbms.knobs import MEMORY_RESERVE, KnobSpec, memory_limit_bytes, size_text
from dbgym.dbms.spec import InstanceSpec
from dbgym.envs.spec import KnobRange
from dbgym.errors import InvalidArgumentError, KnobError, ObservationError
from dbgym.observe.knobs import KnobScale, knob_scale

_MB_PAGES = 128  # 8kB pages per MB

DEFAULT_KNOBS: tuple[KnobRange, ...] = (
    KnobRange("shared_buffers", 16 * _MB_PAGES),
    KnobRange("work_mem", 64.0),
    KnobRange("maintenance_work_mem", 1024.0),
    KnobRange("effective_cache_size", 16 * _MB_PAGES),
    KnobRange("random_page_cost", 1.0, 8.0),
    KnobRange("effective_io_concurrency", 0.0, 256.0),
    KnobRange("max_parallel_workers_per_gather", 0.0),
    KnobRange("max_wal_size", 64.0, 16384.0),
    KnobRange("checkpoint_completion_target", 0.1, 0.9),
    KnobRange("bgwriter_lru_maxpages", 0.0, 1000.0),
    KnobRange("synchronous_commit"),
)

_GB_KB = 2 * 1024 * 1024  # 2GB in kB: PostgreSQL's work_mem/maintenance_work_mem maximum


def server_limits(instance: InstanceSpec) -> tuple[int, float]:
    """(memory bytes, CPUs) the server of `instance` can use: the container's limits on
    Docker when given, else this machine's physical memory and CPU count."""
    memory = (
        memory_limit_bytes(instance.memory)
        if instance.memory is not None
        else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    )
    cpus = float(instance.cpus) if instance.cpus is not None else float(os.cpu_count() or 1)
    return int(memory), cpus


def _caps(memory: int, cpus: float, limited: bool) -> dict[str, float]:
    """The highest value (base unit) of each memory- or CPU-bound knob."""
    shared = memory * 0.25
    if limited:  # a container: shared memory must leave room for the processes
        shared = min(shared, (memory - MEMORY_RESERVE) * 32 / 33)
    return {
        "shared_buffers": max(16.0, math.floor(shared / 8192)),
        "effective_cache_size": max(1.0, math.floor(memory * 0.9 / 8192)),
        "work_mem": max(64.0, min(_GB_KB, math.floor(memory / 64 / 1024))),
        "maintenance_work_mem": max(1024.0, min(_GB_KB, math.floor(memory / 8 / 1024))),
        "max_parallel_workers_per_gather": max(0.0, math.floor(cpus)),
    }


class KnobSpace:
    """The knob action of `knobs` (None: DEFAULT_KNOBS) on a server with `catalog` (its
    pg_settings, `PostgresInstance.knob_catalog`), `memory_bytes` and `cpus`.

    `limited`: the memory is a container limit (shared memory must fit in it too).
    """

    def __init__(
        self,
        catalog: Mapping[str, KnobSpec],
        knobs: Sequence[KnobRange] | None = None,
        *,
        memory_bytes: int,
        cpus: float,
        limited: bool = False,
    ) -> None:
        chosen = tuple(knobs) if knobs is not None else DEFAULT_KNOBS
        defaults = {k.name: k for k in DEFAULT_KNOBS}
        caps = _caps(memory_bytes, cpus, limited)
        lower = {name.lower(): spec for name, spec in catalog.items()}
        scales: list[KnobScale] = []
        ranges: dict[str, tuple[float, float]] = {}
        for knob in chosen:
            spec = lower.get(knob.name.lower())
            if spec is None:
                raise KnobError(f"knob {knob.name!r}: not a setting of this server", knob=knob.name)
            if spec.vartype == "string":
                raise KnobError(
                    f"knob {spec.name}: a string setting has no numeric scale to tune on",
                    knob=spec.name,
                )
            if spec.vartype in ("integer", "real"):
                lo_hi = self._range(spec, knob, defaults.get(spec.name), caps)
                ranges[spec.name] = lo_hi
                scales.append(knob_scale(spec, lo_hi))
            else:
                try:
                    scales.append(knob_scale(spec))
                except ObservationError as e:
                    raise KnobError(str(e), knob=spec.name) from None
        self.names: tuple[str, ...] = tuple(s.name for s in scales)
        self.scales: tuple[KnobScale, ...] = tuple(scales)
        #: numeric knobs' (low, high) in base units: for KnobStateObserver(ranges=...)
        self.ranges = ranges
        self.units: dict[str, str | None] = {n: lower[n.lower()].unit for n in self.names}
        self.restart: tuple[str, ...] = tuple(
            n for n in self.names if lower[n.lower()].needs_restart
        )
        self.space = spaces.Box(0.0, 1.0, (len(self.names),), dtype=np.float32)

    @staticmethod
    def _range(
        spec: KnobSpec,
        knob: KnobRange,
        default: KnobRange | None,
        caps: Mapping[str, float],
    ) -> tuple[float, float]:
        lo = knob.low if knob.low is not None else (default.low if default else None)
        hi = knob.high if knob.high is not None else (default.high if default else None)
        lo = spec.min_val if lo is None else lo
        hi = spec.max_val if hi is None else hi
        if lo is None or hi is None:
            raise KnobError(f"knob {spec.name}: give low and high (no range in pg_settings)",
                            knob=spec.name)  # fmt: skip
        cap = caps.get(spec.name)
        if cap is not None:
            hi = min(hi, cap)
        for what, v in (("low", lo), ("high", hi)):
            if (spec.min_val is not None and v < spec.min_val) or (
                spec.max_val is not None and v > spec.max_val
            ):
                raise KnobError(
                    f"knob {spec.name}: {what} {v:g} is outside what the server accepts "
                    f"[{spec.min_val:g}, {spec.max_val:g}] ({spec.unit or 'no unit'})",
                    knob=spec.name,
                )
        if hi < lo:
            raise KnobError(
                f"knob {spec.name}: the range [{lo:g}, {hi:g}] is empty after capping by the "
                "server's memory and CPUs",
                knob=spec.name,
            )
        return float(lo), float(hi)

    def check(self, action: object) -> NDArray[np.float32]:
        """`action` as a float32 array, or InvalidArgumentError naming what is wrong."""
        arr = np.asarray(action, dtype=np.float32)
        if arr.shape != (len(self.names),):
            raise InvalidArgumentError(
                f"knobs action: expected shape ({len(self.names)},) for {list(self.names)}, "
                f"got {arr.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgumentError(
                f"knobs action[{i}] ({self.names[i]}) = {arr[i]!r}: must be in [0, 1]"
            )
        return arr

    def decode(self, action: object) -> dict[str, str]:
        """The knob values of `action`, as pg_settings prints them (base units): what
        `PostgresInstance.apply_knobs` and `SET` take."""
        arr = self.check(action)
        return {s.name: s.denormalize(float(x)) for s, x in zip(self.scales, arr, strict=True)}

    def encode(self, settings: Mapping[str, str]) -> NDArray[np.float32]:
        """pg_settings-style values (base units) of the tuned knobs on the [0, 1] scale."""
        missing = [n for n in self.names if n not in settings]
        if missing:
            raise InvalidArgumentError(f"no value for knob(s): {', '.join(missing)}")
        return np.array([s.normalize(str(settings[s.name])) for s in self.scales], dtype=np.float32)

    def default_action(self, settings: Mapping[str, str]) -> NDArray[np.float32]:
        """The action of the server's current (default) settings."""
        return self.encode(settings)

    def describe(self, settings: Mapping[str, str]) -> dict[str, str]:
        """Readable values: memory with units ('128 MiB'), times with theirs."""
        out: dict[str, str] = {}
        for name in self.names:
            value = str(settings.get(name, "?"))
            unit = self.units.get(name)
            factor = {"8kB": 8192, "kB": 1024, "MB": 2**20, "B": 1}.get(unit or "")
            if factor is not None and value.lstrip("-").isdigit() and int(value) >= 0:
                out[name] = size_text(int(value) * factor)
            elif unit:
                out[name] = f"{value} {unit}"
            else:
                out[name] = value
        return out
