"""The knob action: a Box in [0, 1]^k decoded through the knob catalog.

Each tuned knob has a range in its base unit (as pg_settings' `setting` column prints
it) and the scale of dbgym.observe.knobs (log scale when the range spans three or more
orders of magnitude, integers rounded, reals to 4 significant digits, enums and booleans
bucketed). The knob observation uses the same scales (`KnobSpace.ranges` given to a
`KnobStateObserver`, or `encode`), so a model sees the knobs on the scale it acts on.
Decoding is idempotent: the encoding of a decoded action decodes to the same values, so
applying an action twice, or feeding back the observation of the applied one, changes
nothing.

`DEFAULT_KNOBS` is a curated set of PostgreSQL knobs that the tuning literature and
practice treat as the impactful ones:

- OtterTune (Van Aken et al., SIGMOD 2017, "Automatic Database Management System Tuning
  Through Large-Scale Machine Learning") ranks knobs by their effect with Lasso and tunes
  only the top-ranked ones.
- Van Aken et al., VLDB 2021 ("An Inquiry into Machine Learning-based Automatic
  Configuration Tuning Services on Real-World Database Management Systems"), a study of
  ML tuners on a production Oracle installation at Société Générale with a real workload
  trace, likewise tunes selected sets of knobs rather than all of them.
- Kanellis et al., HotStorage 2020 ("Too Many Knobs to Tune? Towards Faster Database
  Tuning by Pre-selecting Important Knobs"): a handful of important knobs carries most
  of the tuning gain, and pre-selecting them makes tuning faster.
- The PostgreSQL manual and PGTune for the ranges and caps (shared_buffers at a quarter
  of memory; effective_cache_size a planner estimate of the cache, not an allocation;
  per-operation memory a fraction of what is left).

The set: the buffer pool, per-operation memory, the planner's cost of random I/O and its
cache estimate, I/O concurrency, parallel workers, WAL/checkpoint pacing, the background
writer, and commit durability.

| knob | unit | range | restart |
|---|---|---|---|
| shared_buffers | 8kB pages | 16MB .. 25% of memory | yes |
| work_mem | kB | 64kB .. memory / 64 (at most 2GB) | no |
| maintenance_work_mem | kB | 1MB .. memory / 8 (at most 2GB) | no |
| effective_cache_size | 8kB pages | 16MB .. 90% of memory | no |
| random_page_cost | - | 1 .. 8 | no |
| effective_io_concurrency | - | 0 .. 256 | no |
| max_parallel_workers_per_gather | - | 0 .. CPUs | no |
| max_wal_size | MB | 32MB (2 WAL segments) .. 16GB | no |
| checkpoint_completion_target | - | 0.1 .. 0.9 | no |
| bgwriter_lru_maxpages | - | 0 .. 1000 | no |
| synchronous_commit | enum | local, remote_write, remote_apply, on, off (pg_settings' order) | no |

Caps (`CAPS`; they bound user ranges too, so no sampled action asks for more memory than
the server has): shared_buffers at 25% of memory, and under a container limit never more
than dbgym.dbms.knobs.check_memory lets through (shared_buffers + wal_buffers must leave
`MEMORY_RESERVE` for the processes); wal_buffers at 16MB (its automatic maximum);
effective_cache_size at 90%; work_mem and temp_buffers at memory/64 (a query may use
several work_mem at once, one per sort or hash node per worker); maintenance_work_mem at
memory/8 and autovacuum_work_mem at memory/16 (up to autovacuum_max_workers use it at
once); the parallel-worker knobs at the CPUs. A curated low end above a cap (a tiny
container) falls back to pg_settings' minimum; a user's is refused. The memory is the container's
limit on Docker, else the machine's physical memory; the CPUs likewise (`server_limits`).

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

from dbgym.dbms.knobs import (
    MEMORY_RESERVE,
    KnobSpec,
    lookup,
    lower_index,
    memory_limit_bytes,
    normalize,
    size_text,
)
from dbgym.dbms.spec import InstanceSpec
from dbgym.envs.spec import KnobRange
from dbgym.errors import InvalidArgumentError, KnobError, ObservationError
from dbgym.observe.knobs import KnobScale, knob_scale

_PAGE = 8192  # bytes per 8kB page (the unit of shared_buffers, effective_cache_size, ...)
_MB_PAGES = 2**20 // _PAGE
_MAX_OP_MEM_KB = 2 * 2**20  # 2GB in kB: a practical ceiling for one operation's memory
_WAL_BUFFERS_MAX = 16 * _MB_PAGES  # one 16MB WAL segment: wal_buffers' automatic maximum

DEFAULT_KNOBS: tuple[KnobRange, ...] = (
    KnobRange("shared_buffers", 16 * _MB_PAGES),
    KnobRange("work_mem", 64.0),
    KnobRange("maintenance_work_mem", 1024.0),
    KnobRange("effective_cache_size", 16 * _MB_PAGES),
    KnobRange("random_page_cost", 1.0, 8.0),
    KnobRange("effective_io_concurrency", 0.0, 256.0),
    KnobRange("max_parallel_workers_per_gather", 0.0),
    KnobRange("max_wal_size", 32.0, 16384.0),  # at least 2 WAL segments of 16MB
    KnobRange("checkpoint_completion_target", 0.1, 0.9),
    KnobRange("bgwriter_lru_maxpages", 0.0, 1000.0),
    KnobRange("synchronous_commit"),
)

#: The knobs whose range is capped by the server's memory or CPUs (see the module text).
CAPS: tuple[str, ...] = (
    "shared_buffers",
    "wal_buffers",
    "effective_cache_size",
    "work_mem",
    "temp_buffers",
    "maintenance_work_mem",
    "autovacuum_work_mem",
    "max_parallel_workers_per_gather",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
)


def server_limits(instance: InstanceSpec) -> tuple[int, float]:
    """(memory bytes, CPUs) the server of `instance` can use: the container's limits on
    Docker when given, else this machine's physical memory and the CPUs this process may
    run on (its affinity mask; `os.cpu_count()` where there is none)."""
    if instance.memory is not None:
        memory = memory_limit_bytes(instance.memory)
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if instance.cpus is not None:
        cpus = float(instance.cpus)
    elif hasattr(os, "sched_getaffinity"):
        cpus = float(len(os.sched_getaffinity(0)))
    else:  # pragma: no cover - not Linux
        cpus = float(os.cpu_count() or 1)
    return int(memory), cpus


def capped_highs(
    memory: int, cpus: float, *, limited: bool, wal_buffers_tuned: bool
) -> dict[str, float]:
    """The highest value (base unit) of each knob of `CAPS` on a server with `memory`
    bytes and `cpus` CPUs; `limited`: the memory is a container limit (shared memory must
    leave `MEMORY_RESERVE`); `wal_buffers_tuned`: wal_buffers is tuned too (up to 16MB on
    top of shared_buffers; otherwise it is automatic, 1/32 of shared_buffers)."""
    shared = memory * 0.25
    if limited:
        room = memory - MEMORY_RESERVE
        shared = min(
            shared, room - _WAL_BUFFERS_MAX * _PAGE if wal_buffers_tuned else room * 32 / 33
        )
    op_kb = memory / 1024
    return {
        "shared_buffers": math.floor(shared / _PAGE),
        "wal_buffers": _WAL_BUFFERS_MAX,
        "effective_cache_size": math.floor(memory * 0.9 / _PAGE),
        "work_mem": min(_MAX_OP_MEM_KB, math.floor(op_kb / 64)),
        "temp_buffers": math.floor(memory / 64 / _PAGE),
        "maintenance_work_mem": min(_MAX_OP_MEM_KB, math.floor(op_kb / 8)),
        "autovacuum_work_mem": min(_MAX_OP_MEM_KB, math.floor(op_kb / 16)),
        "max_parallel_workers_per_gather": math.floor(cpus),
        "max_parallel_maintenance_workers": math.floor(cpus),
        "max_parallel_workers": math.floor(cpus),
    }


class KnobSpace:
    """The knob action of `knobs` (None: DEFAULT_KNOBS) on a server with `catalog` (its
    pg_settings, `PostgresInstance.knob_catalog`), `memory_bytes` and `cpus`
    (`server_limits`).

    A knob's range: the user's low/high where given, else the curated one for a default
    knob, else pg_settings' min_val/max_val; then capped (see the module text). Unknown,
    read-only, dbgym-managed and string knobs are refused (KnobError naming the knob), as
    are low/high for a bool or enum knob. `limited`: the memory is a container limit.

    Attributes: `names` (pg_settings spelling, action order), `scales` (one KnobScale per
    knob, the observation's too), `ranges` (numeric knobs' (low, high), for
    `KnobStateObserver(ranges=...)`), `units`, `restart` (knobs whose change restarts the
    server), `space` (Box float32 [0, 1]^k).
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
        if not memory_bytes > 0 or not cpus > 0:
            raise InvalidArgumentError(
                f"knob space: memory_bytes and cpus must be positive, got {memory_bytes!r} "
                f"and {cpus!r}"
            )
        cat = dict(catalog)
        index = lower_index(cat)
        chosen = tuple(knobs) if knobs is not None else DEFAULT_KNOBS
        if not chosen:
            raise InvalidArgumentError("knob space: no knobs (None gives the default set)")
        specs: list[tuple[KnobRange, KnobSpec]] = []
        for knob in chosen:
            if not isinstance(knob, KnobRange):
                raise InvalidArgumentError(
                    f"knob space: give KnobRange values, got {type(knob).__name__} {knob!r}"
                )
            spec = lookup(cat, knob.name, index)  # KnobError: unknown, managed, read-only
            if any(spec.name == s.name for _, s in specs):
                raise KnobError(f"knob {spec.name} is listed twice", knob=spec.name)
            specs.append((knob, spec))
        caps = capped_highs(
            memory_bytes,
            cpus,
            limited=limited,
            wal_buffers_tuned=any(s.name == "wal_buffers" for _, s in specs),
        )
        defaults = {k.name: k for k in DEFAULT_KNOBS}
        scales: list[KnobScale] = []
        ranges: dict[str, tuple[float, float]] = {}
        for knob, spec in specs:
            if spec.vartype == "string":
                raise KnobError(
                    f"knob {spec.name} is a string setting: it has no numeric scale to tune on",
                    knob=spec.name,
                )
            lo_hi: tuple[float, float] | None = None
            if spec.vartype in ("bool", "enum"):
                if knob.low is not None or knob.high is not None:
                    raise KnobError(
                        f"knob {spec.name} is {spec.vartype}: low/high do not apply (every "
                        "value is in the action)",
                        knob=spec.name,
                    )
            else:
                lo_hi = _range(spec, knob, defaults.get(spec.name), caps.get(spec.name))
                ranges[spec.name] = lo_hi
            try:
                scales.append(knob_scale(spec, lo_hi))
            except ObservationError as e:  # an enum without values, a NaN or infinite end
                raise KnobError(str(e), knob=spec.name) from None
        self.names: tuple[str, ...] = tuple(s.name for s in scales)
        self.scales: tuple[KnobScale, ...] = tuple(scales)
        #: numeric knobs' (low, high) in base units: for KnobStateObserver(ranges=...)
        self.ranges: dict[str, tuple[float, float]] = ranges
        self.units: dict[str, str | None] = {s.name: s.unit for _, s in specs}
        self.restart: tuple[str, ...] = tuple(s.name for _, s in specs if s.needs_restart)
        self.space = spaces.Box(0.0, 1.0, (len(self.names),), dtype=np.float32)
        self._specs = {s.name: s for _, s in specs}

    def check(self, action: object) -> NDArray[np.float32]:
        """`action` as a float32 array, or InvalidArgumentError naming what is wrong (the
        shape, or the index and knob of a value that is not in [0, 1])."""
        try:
            arr = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(
                f"knobs action: expected {len(self.names)} numbers in [0, 1] for "
                f"{list(self.names)}, got {type(action).__name__} ({e})"
            ) from None
        if arr.shape != (len(self.names),):
            raise InvalidArgumentError(
                f"knobs action: expected shape ({len(self.names)},) for {list(self.names)}, "
                f"got {arr.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgumentError(
                f"knobs action[{i}] ({self.names[i]}) = {float(arr[i])}: must be in [0, 1]"
            )
        return arr

    def decode(self, action: object) -> dict[str, str]:
        """The knob values of `action`, in base units as pg_settings' `setting` column
        prints them ('16384' for shared_buffers is 16384 8kB pages, i.e. 128MB): what
        `PostgresInstance.apply_knobs` and `SET` take, and what the server then reports."""
        arr = self.check(action)
        return {s.name: s.denormalize(float(x)) for s, x in zip(self.scales, arr, strict=True)}

    def encode(self, settings: Mapping[str, object]) -> NDArray[np.float32]:
        """The tuned knobs' values in `settings` on the [0, 1] scale of the action (values
        outside a range are clipped to it). Values as pg_settings prints them (base
        units), or with a unit ('128MB'); other keys are ignored."""
        missing = [n for n in self.names if n not in settings]
        if missing:
            raise InvalidArgumentError(f"knob values missing for: {', '.join(missing)}")
        out = np.empty(len(self.names), dtype=np.float32)
        for i, scale in enumerate(self.scales):
            try:
                out[i] = scale.normalize(self._base_text(scale.name, settings[scale.name]))
            except ObservationError as e:
                raise KnobError(str(e), knob=scale.name) from None
        return out

    def default_action(self, settings: Mapping[str, object]) -> NDArray[np.float32]:
        """The action closest to the server's default `settings` (pg_settings values read
        before anything is applied): `encode(settings)`. Defaults off the action's grid
        decode to the nearest value on it."""
        return self.encode(settings)

    def describe(self, settings: Mapping[str, object]) -> dict[str, str]:
        """Readable values of the tuned knobs: memory in binary units ('128 MiB'), times
        and other units spelled out ('200 ms'), the rest as given."""
        missing = [n for n in self.names if n not in settings]
        if missing:
            raise InvalidArgumentError(f"knob values missing for: {', '.join(missing)}")
        out: dict[str, str] = {}
        for name in self.names:
            value = self._base_text(name, settings[name])
            unit = self.units[name]
            factor = {"8kB": _PAGE, "kB": 1024, "MB": 2**20, "B": 1}.get(unit or "")
            if factor is not None and value.isdigit():
                out[name] = size_text(int(value) * factor) if int(value) else "0"
            elif unit:
                out[name] = f"{value} {unit}"
            else:
                out[name] = value
        return out

    def _base_text(self, name: str, value: object) -> str:
        """A value of knob `name` as pg_settings prints it (a number with a unit is
        converted to the base unit); KnobError naming the knob if it is not a value of it."""
        spec = self._specs[name]
        if spec.vartype in ("integer", "real"):
            text = str(value).strip()
            try:
                float(text)
            except ValueError:
                try:
                    return str(normalize(spec, value).compare)  # '128MB' -> base units
                except KnobError as e:
                    raise KnobError(str(e), knob=spec.name) from None
            return text
        if spec.vartype == "bool" and isinstance(value, bool):
            return "on" if value else "off"
        return str(value)


def _range(
    spec: KnobSpec, knob: KnobRange, default: KnobRange | None, cap: float | None
) -> tuple[float, float]:
    """The (low, high) of numeric knob `spec` (see KnobSpace)."""
    lo = knob.low if knob.low is not None else (default.low if default else None)
    # a low end the user chose (not the curated one, nor pg_settings' minimum) is kept
    user_lo = knob.low is not None and (default is None or knob.low != default.low)
    hi = knob.high if knob.high is not None else (default.high if default else None)
    lo = spec.min_val if lo is None else lo
    hi = spec.max_val if hi is None else hi
    if lo is None or hi is None:
        raise KnobError(
            f"knob {spec.name}: pg_settings gives no range; give low and high", knob=spec.name
        )
    for what, v in (("low", lo), ("high", hi)):
        if (spec.min_val is not None and v < spec.min_val) or (
            spec.max_val is not None and v > spec.max_val
        ):
            raise KnobError(
                f"knob {spec.name}: {what} {v:g} is outside what the server accepts "
                f"{_catalog_range(spec)}",
                knob=spec.name,
            )
    capped = cap is not None and hi > cap
    if cap is not None and hi > cap:
        hi = max(cap, spec.min_val if spec.min_val is not None else cap)
    if hi < lo and not user_lo:
        # the curated low end is above the user's high end or the cap (a small server)
        lo = min(hi, spec.min_val) if spec.min_val is not None else hi
    if hi < lo:
        why = f"the server's memory and CPUs allow at most {hi:g}" if capped else f"high is {hi:g}"
        raise KnobError(
            f"knob {spec.name}: low {lo:g} is above the range's high end ({why}"
            f"{' ' + spec.unit if spec.unit else ''}); lower it",
            knob=spec.name,
        )
    return float(lo), float(hi)


def _catalog_range(spec: KnobSpec) -> str:
    lo = "-inf" if spec.min_val is None else f"{spec.min_val:g}"
    hi = "inf" if spec.max_val is None else f"{spec.max_val:g}"
    return f"[{lo}, {hi}] ({f'unit {spec.unit}' if spec.unit else 'no unit'})"
