"""Knobs: a catalog read from pg_settings, and validation of values against it.

Names are looked up case-insensitively, as PostgreSQL does ("datestyle" and "DateStyle"
are the same knob; pg_settings spells it DateStyle). Validation mirrors PostgreSQL's own
parsing closely enough to reject bad input before anything is written: integer/real knobs
accept a number with an optional unit ("64MB", "1.5s", "250ms"), converted to the knob's
base unit (pg_settings.unit, e.g. "8kB", "kB", "ms") and checked against [min_val,
max_val]; bool knobs accept what PostgreSQL's parse_bool does (`parse_bool`); enum knobs
one of enumvals (case-insensitive). Each accepted value has a canonical form
(`Normalized.conf_value`) written to the knob file. Whether the server takes it (string
knobs such as log_timezone are checked only by the server, and stored in its own
spelling: 'utc' becomes 'UTC') is asked of the server itself (pg_file_settings, see
`PostgresInstance.apply_knobs`), never decided by comparing spellings.

The knob file names each knob in lower case and ends with an epoch marker
(`dbgym.epoch = '...'`, a custom placeholder setting every session sees once it has
reloaded the file), so a reload is known to have reached a session without comparing
values.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from dbgym.errors import InvalidArgumentError, KnobError

#: Settings dbgym itself manages (connectivity, file locations, logging to the backend).
MANAGED = frozenset(
    {
        "port",
        "listen_addresses",
        "unix_socket_directories",
        "unix_socket_permissions",
        "unix_socket_group",
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "logging_collector",
        "log_destination",
        "include",
        "include_dir",
        "include_if_exists",
    }
)

#: Contexts where a reload is enough (backend/superuser-backend: for new sessions).
RELOAD_CONTEXTS = frozenset({"sighup", "superuser", "user", "backend", "superuser-backend"})

_MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0}
_TIME_UNITS["d"] = 86_400_000.0
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_HEX_INT = re.compile(r"^\s*[-+]?0[xX][0-9a-fA-F]+\s*$")
#: The knob file's marker line: a custom setting whose value changes with every write.
EPOCH = "dbgym.epoch"
#: Shared memory a container's memory limit must leave for the server's processes
#: (postmaster, background workers, a few backends): measured, PostgreSQL 15's initdb and
#: an idle server need about 48 MiB in a container whose limit is that tight.
MEMORY_RESERVE = 64 * 2**20


def parse_bool(value: str) -> bool | None:
    """PostgreSQL's parse_bool: on/off, true/false, yes/no, 1/0 and unique prefixes
    ("t", "fa", "y", "of"; not "o"), case-insensitive; None if `value` is none of them."""
    text = value.strip().lower()
    if not text:
        return None
    for word, flag in (("true", True), ("false", False), ("yes", True), ("no", False)):
        if word.startswith(text):
            return flag
    if text in ("on", "1"):
        return True
    if text in ("of", "off", "0"):
        return False
    return None


@dataclass(frozen=True)
class KnobSpec:
    """One row of pg_settings: what a knob accepts."""

    name: str
    vartype: str  # bool, integer, real, string, enum
    unit: str | None  # e.g. "8kB", "kB", "ms", "s"
    min_val: float | None
    max_val: float | None
    enumvals: tuple[str, ...]
    context: str  # internal, postmaster, sighup, superuser-backend, backend, superuser, user
    short_desc: str = ""

    @property
    def needs_restart(self) -> bool:
        return self.context == "postmaster"


@dataclass(frozen=True)
class Normalized:
    """A validated value: as written to the knob file, and as compared to pg_settings."""

    conf_value: str
    compare: Any


@dataclass(frozen=True)
class KnobChange:
    """What apply_knobs did: the new settings (as pg_settings reports them) and whether
    the server was restarted (only when a postmaster-context knob changed)."""

    applied: dict[str, str] = field(default_factory=dict)
    restarted: bool = False


CATALOG_SQL = (
    "SELECT name, vartype, unit, min_val, max_val, enumvals, context, short_desc "
    "FROM pg_settings ORDER BY name"
)


def catalog_from_rows(rows: list[tuple[Any, ...]]) -> dict[str, KnobSpec]:
    catalog = {}
    for name, vartype, unit, min_val, max_val, enumvals, context, desc in rows:
        catalog[name] = KnobSpec(
            name=name,
            vartype=vartype,
            unit=unit,
            min_val=float(min_val) if min_val is not None else None,
            max_val=float(max_val) if max_val is not None else None,
            enumvals=tuple(enumvals or ()),
            context=context,
            short_desc=desc or "",
        )
    return catalog


def _unit_scale(unit: str) -> tuple[str, float]:
    """("memory"|"time", size of one unit in bytes or ms) for a pg_settings unit like '8kB'."""
    match = re.fullmatch(r"(\d*)\s*([A-Za-z]+)", unit)
    if match is None:
        raise KnobError(f"unsupported unit {unit!r} in pg_settings")
    count = int(match.group(1) or 1)
    base = match.group(2)
    if base in _MEMORY_UNITS:
        return "memory", count * _MEMORY_UNITS[base]
    if base in _TIME_UNITS:
        return "time", count * _TIME_UNITS[base]
    raise KnobError(f"unsupported unit {unit!r} in pg_settings")


def _range_text(spec: KnobSpec) -> str:
    def fmt(v: float | None) -> str:
        if v is None:
            return "?"
        return str(int(v)) if spec.vartype == "integer" else f"{v:g}"

    unit = f" (unit {spec.unit})" if spec.unit else ""
    return f"[{fmt(spec.min_val)}, {fmt(spec.max_val)}]{unit}"


def _parse_number(spec: KnobSpec, value: Any) -> float:
    """The value in the knob's base unit (may be fractional; the caller rounds)."""
    if isinstance(value, bool):
        raise KnobError(f"knob {spec.name}: expected a number, got boolean {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise KnobError(f"knob {spec.name}: {value!r} is not a finite number")
        return float(value)
    if not isinstance(value, str):
        raise KnobError(f"knob {spec.name}: expected a number or string, got {type(value)!r}")
    if spec.vartype == "integer" and _HEX_INT.match(value):
        return float(int(value, 16))
    match = _NUMBER_UNIT.match(value)
    if match is None:
        raise KnobError(
            f"knob {spec.name}: {value!r} is not a number"
            + (f" with an optional unit (base unit {spec.unit})" if spec.unit else "")
        )
    number = float(match.group(1))
    unit = match.group(2)
    if not unit:
        return number
    if not spec.unit:
        raise KnobError(f"knob {spec.name} takes no unit, got {value!r}")
    kind, base_scale = _unit_scale(spec.unit)
    table = _MEMORY_UNITS if kind == "memory" else _TIME_UNITS
    if unit not in table:
        valid = ", ".join(table)
        raise KnobError(
            f"knob {spec.name}: invalid unit {unit!r} in {value!r}; valid units: {valid}"
        )
    return number * table[unit] / base_scale


def normalize(spec: KnobSpec, value: Any) -> Normalized:
    """Validate `value` for `spec`; raises KnobError naming the knob and what it accepts."""
    if spec.vartype == "bool":
        parsed: bool | None = None
        if isinstance(value, bool):
            parsed = value
        elif isinstance(value, int) and value in (0, 1):
            parsed = bool(value)
        elif isinstance(value, str):
            parsed = parse_bool(value)
        if parsed is None:
            raise KnobError(
                f"knob {spec.name} is boolean; {value!r} is not on/off/true/false", spec.name
            )
        flag = parsed
        text = "on" if flag else "off"
        return Normalized(text, text)
    if spec.vartype == "enum":
        text = str(value).strip().lower() if not isinstance(value, bool) else str(value)
        for allowed in spec.enumvals:
            if allowed.lower() == text:
                return Normalized(allowed, allowed)
        raise KnobError(f"knob {spec.name}: {value!r} is not one of {', '.join(spec.enumvals)}")
    if spec.vartype in ("integer", "real"):
        number = _parse_number(spec, value)
        if spec.vartype == "integer":
            number = float(round(number))  # like PostgreSQL's rint()
        lo, hi = spec.min_val, spec.max_val
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            shown = int(number) if spec.vartype == "integer" else number
            unit = f" {spec.unit}" if spec.unit else ""
            raise KnobError(
                f"knob {spec.name}: {value!r} (= {shown}{unit}) is outside the allowed range "
                f"{_range_text(spec)}"
            )
        if spec.vartype == "integer":
            return Normalized(str(int(number)), int(number))
        return Normalized(repr(number), number)
    # string
    if not isinstance(value, str):
        raise KnobError(f"knob {spec.name} takes a string, got {type(value).__name__}")
    if "\n" in value or "\0" in value:
        raise KnobError(f"knob {spec.name}: value must not contain newlines or NUL bytes")
    return Normalized(value, value)


#: What the server makes of the knob file, before anything is reloaded: every line of
#: every configuration file in reading order, with whether it could be applied and why not.
FILE_SETTINGS_SQL = (
    "SELECT sourcefile, sourceline, name, setting, error FROM pg_file_settings ORDER BY seqno"
)


@dataclass(frozen=True)
class FileVerdict:
    """The server's judgement of a new knob file (from pg_file_settings): knobs it
    refuses (name -> why), and postmaster knobs whose value changes (a restart applies
    them; an invalid value among them shows only when the server starts)."""

    refused: dict[str, str]
    restart: tuple[str, ...]


def file_verdict(
    rows: list[tuple[Any, ...]],
    knob_file: str,
    wanted: dict[str, Normalized],
    catalog: dict[str, KnobSpec],
) -> FileVerdict:
    """Judge `wanted` (validated knobs, pg_settings spelling) by `rows` of FILE_SETTINGS_SQL
    read after the knob file (basename `knob_file`) was written: the last line naming a
    knob wins, as in PostgreSQL; a later file (postgresql.auto.conf, i.e. ALTER SYSTEM)
    overrides dbgym's; a line in error is a value the server refuses, unless the knob
    needs a restart (then the error only says the running server keeps its value)."""
    last: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        last[str(row[2]).lower()] = row
    refused: dict[str, str] = {}
    restart: list[str] = []
    for name, norm in wanted.items():
        found = last.get(name.lower())
        if found is None:
            refused[name] = "the server did not find it in dbgym's knob file"
            continue
        sourcefile, sourceline, _, _, error = found
        if os.path.basename(str(sourcefile)) != knob_file:
            how = " (ALTER SYSTEM)" if str(sourcefile).endswith("postgresql.auto.conf") else ""
            refused[name] = (
                f"{sourcefile} line {sourceline} sets it too{how} and overrides dbgym's "
                "knob file; remove it there first"
                + (f" (ALTER SYSTEM RESET {name})" if how else "")
            )
        elif error:
            if catalog[name].needs_restart:
                restart.append(name)
            else:
                refused[name] = f"the server refuses {norm.conf_value!r} ({error})"
    return FileVerdict(refused, tuple(restart))


def refused_error(refused: dict[str, str]) -> KnobError:
    """One KnobError for the knobs a server refused (KnobError.knob: the one, if one)."""
    text = "; ".join(f"knob {name}: {why}" for name, why in refused.items())
    return KnobError(
        f"{text}; nothing was applied", next(iter(refused)) if len(refused) == 1 else None
    )


#: The epoch marker as a session sees it (NULL before the first reload that set it).
EPOCH_SQL = f"SELECT current_setting('{EPOCH}', true)"

#: Contexts whose new value an open session sees after a reload (the others apply to new
#: sessions only, or need a restart).
SESSION_RELOAD_CONTEXTS = frozenset({"sighup", "superuser", "user"})


def lookup(
    catalog: dict[str, KnobSpec], name: str, index: dict[str, KnobSpec] | None = None
) -> KnobSpec:
    """The spec for a knob name, case-insensitively as PostgreSQL matches them
    ("datestyle" finds DateStyle); KnobError with close names otherwise. `index`: the
    catalog by lower-case name (`lower_index`), when the caller looks up many names."""
    if not isinstance(name, str):
        raise KnobError(f"knob names are strings, got {name!r}")
    key = name.strip()
    spec = catalog.get(key) or (index or lower_index(catalog)).get(key.lower())
    if spec is None:
        close = difflib.get_close_matches(key.lower(), list(catalog), n=3, cutoff=0.6)
        if not close:  # "datstyle" -> DateStyle: match spellings regardless of case
            lowered = {n.lower(): n for n in catalog}
            found = difflib.get_close_matches(key.lower(), list(lowered), n=3, cutoff=0.6)
            close = [lowered[n] for n in found]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KnobError(f"unknown knob {name!r}{hint}", name)
    if spec.name.lower() in MANAGED:
        raise KnobError(
            f"knob {spec.name} is managed by dbgym (connectivity/logging) and cannot be set",
            spec.name,
        )
    if spec.context == "internal":
        raise KnobError(
            f"knob {spec.name} is read-only (context internal) and cannot be set", spec.name
        )
    return spec


def lower_index(catalog: dict[str, KnobSpec]) -> dict[str, KnobSpec]:
    """The catalog by lower-case name (PostgreSQL's names are case-insensitive)."""
    return {name.lower(): spec for name, spec in catalog.items()}


def validate(catalog: dict[str, KnobSpec], knobs: dict[str, Any]) -> dict[str, Normalized]:
    """Validate every knob (all errors of the batch reported together); the result is
    keyed by the pg_settings spelling of each name. KnobError.knob names the knob when
    exactly one is at fault."""
    out: dict[str, Normalized] = {}
    errors: list[tuple[str | None, str]] = []
    given: dict[str, str] = {}
    index = lower_index(catalog)
    for name, value in knobs.items():
        try:
            spec = lookup(catalog, name, index)
            if spec.name in given:
                raise KnobError(
                    f"knob {spec.name} is given twice ({given[spec.name]!r} and {name!r}; "
                    "names are case-insensitive)",
                    spec.name,
                )
            given[spec.name] = name
            out[spec.name] = normalize(spec, value)
        except KnobError as exc:
            errors.append((exc.knob or (name if isinstance(name, str) else None), str(exc)))
    if errors:
        names = {knob for knob, _ in errors}
        only = names.pop() if len(names) == 1 else None
        raise KnobError("; ".join(msg for _, msg in errors), only)
    return out


def render_conf(knobs: dict[str, str], epoch: str | None = None) -> str:
    """The knob file's text (postgresql.conf syntax), one `name = 'value'` per knob (names
    in lower case), then the epoch marker line when given."""
    lines = ["# Knobs applied by dbgym (PostgresInstance.apply_knobs). Do not edit."]
    values = {name.lower(): value for name, value in knobs.items() if name.lower() != EPOCH}
    if epoch is not None:
        values[EPOCH] = epoch
    for name in sorted(values, key=lambda n: (n == EPOCH, n)):
        escaped = values[name].replace("\\", "\\\\").replace("'", "''")
        lines.append(f"{name} = '{escaped}'")
    return "\n".join(lines) + "\n"


_CONF_LINE = re.compile(r"^([a-z_][a-z0-9_.]*) = '((?:[^']|'')*)'$", re.IGNORECASE)


def _parse_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        match = _CONF_LINE.match(line)
        if match:
            value = match.group(2).replace("''", "'").replace("\\\\", "\\")
            out[match.group(1).lower()] = value
    return out


def parse_conf(text: str) -> dict[str, str]:
    """Inverse of render_conf: the knobs by lower-case name (without the epoch marker)."""
    out = _parse_lines(text)
    out.pop(EPOCH, None)
    return out


def conf_epoch(text: str) -> str | None:
    """The epoch marker of a knob file's text (None: an older file without one)."""
    return _parse_lines(text).get(EPOCH)


# -- memory -------------------------------------------------------------------------------

_MEMORY_LIMIT = re.compile(r"^\s*([1-9][0-9]*)\s*(?:([kmg])b?|b)?\s*$", re.IGNORECASE)
_LIMIT_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def memory_limit_bytes(value: object) -> int:
    """A container memory limit in bytes: an int (bytes) or docker's spelling ("512m",
    "2g", "1024k", "100b"; case-insensitive, an optional trailing "b": "512mb").
    InvalidArgumentError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _MEMORY_LIMIT.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgumentError(
            f"memory={value!r}: give bytes or a string like '512m' / '2g' (units b, k, m, g)"
        )
    return int(match.group(1)) * _LIMIT_UNITS[(match.group(2) or "").lower()]


def size_text(nbytes: int) -> str:
    """1073741824 -> '1 GiB', 3 * 2**19 -> '1.5 MiB'."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("kiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:g} {unit}"
    return f"{nbytes} B"


def shared_memory_bytes(settings: dict[str, str]) -> dict[str, int]:
    """Bytes of the shared memory PostgreSQL allocates for `shared_buffers` and
    `wal_buffers` (pg_settings.setting values, 8kB pages; wal_buffers -1 = 1/32 of
    shared_buffers, at least 64kB, at most one 16MB WAL segment)."""
    page = 8192
    shared = int(settings["shared_buffers"]) * page
    wal_pages = int(settings.get("wal_buffers", "-1"))
    wal = min(max(shared // 32, 64 * 1024), 16 * 2**20) if wal_pages == -1 else wal_pages * page
    return {"shared_buffers": shared, "wal_buffers": wal}


def fitting_shared_buffers(settings: dict[str, str], limit: int) -> str | None:
    """None if shared memory with `settings` (pg_settings values) fits the memory `limit`
    (bytes; see check_memory); else the largest shared_buffers that fits, as "<n>kB" (at
    least PostgreSQL's minimum of 128kB), with wal_buffers as set (-1: 1/32 of it)."""
    parts = shared_memory_bytes(settings)
    room = limit - MEMORY_RESERVE
    if sum(parts.values()) <= room:
        return None
    auto_wal = int(settings.get("wal_buffers", "-1")) == -1
    budget = room * 32 // 33 if auto_wal else room - parts["wal_buffers"]
    return f"{max(128, budget // 8192 * 8)}kB"


def check_memory(settings: dict[str, str], limit: int, limit_text: str) -> None:
    """KnobError unless shared_buffers + wal_buffers leave `MEMORY_RESERVE` of the memory
    `limit` (bytes; `limit_text` as the caller gave it) for the server's processes: shared
    memory is never reclaimed, so a server that fills its buffers beyond the limit has
    its backends OOM-killed."""
    parts = shared_memory_bytes(settings)
    total = sum(parts.values())
    room = limit - MEMORY_RESERVE
    if total > room:
        shown = " + ".join(f"{name} {size_text(n)}" for name, n in parts.items())
        raise KnobError(
            f"{shown} = {size_text(total)} of shared memory does not fit in the container's "
            f"memory limit {limit_text} ({size_text(limit)}), which must also leave "
            f"{size_text(MEMORY_RESERVE)} for the server's processes: at most "
            f"{size_text(max(room, 0))} of shared memory; lower shared_buffers or launch "
            "with more memory",
            "shared_buffers",
        )
