"""Knobs: a catalog read from pg_settings, and validation of values against it.

Validation mirrors PostgreSQL's own parsing closely enough to reject bad input before
anything is written: integer/real knobs accept a number with an optional unit
("64MB", "1.5s", "250ms"), converted to the knob's base unit (pg_settings.unit, e.g.
"8kB", "kB", "ms") and checked against [min_val, max_val]; bool knobs accept
on/off/true/false/yes/no/1/0; enum knobs one of enumvals (case-insensitive). Each
accepted value has a canonical form (`Normalized.conf_value`) written to the knob file
and a comparable form (`Normalized.compare`) matched against pg_settings.setting to tell
whether anything actually changes (and so whether a restart is needed).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from dbgym.errors import KnobError

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
_BOOL_TRUE = {"on", "true", "yes", "1", "t", "y"}
_BOOL_FALSE = {"off", "false", "no", "0", "f", "n"}


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
        if isinstance(value, bool):
            flag = value
        elif isinstance(value, int) and value in (0, 1):
            flag = bool(value)
        elif isinstance(value, str) and value.strip().lower() in _BOOL_TRUE | _BOOL_FALSE:
            flag = value.strip().lower() in _BOOL_TRUE
        else:
            raise KnobError(f"knob {spec.name} is boolean; {value!r} is not on/off/true/false")
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


def compare_setting(spec: KnobSpec, setting: str | None) -> Any:
    """pg_settings.setting in the same comparable form as `Normalized.compare`."""
    if setting is None:
        return None
    if spec.vartype == "integer":
        try:
            return int(setting)
        except ValueError:
            return setting
    if spec.vartype == "real":
        try:
            return float(setting)
        except ValueError:
            return setting
    return setting


def lookup(catalog: dict[str, KnobSpec], name: str) -> KnobSpec:
    """The spec for a knob name (case-insensitive); KnobError with close names otherwise."""
    if not isinstance(name, str):
        raise KnobError(f"knob names are strings, got {name!r}")
    key = name.strip().lower()
    spec = catalog.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, catalog.keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KnobError(f"unknown knob {name!r}{hint}")
    if key in MANAGED:
        raise KnobError(f"knob {key} is managed by dbgym (connectivity/logging) and cannot be set")
    if spec.context == "internal":
        raise KnobError(f"knob {key} is read-only (context internal) and cannot be set")
    return spec


def validate(catalog: dict[str, KnobSpec], knobs: dict[str, Any]) -> dict[str, Normalized]:
    """Validate every knob (all errors of the batch reported together)."""
    out: dict[str, Normalized] = {}
    errors: list[str] = []
    for name, value in knobs.items():
        try:
            spec = lookup(catalog, name)
            out[spec.name] = normalize(spec, value)
        except KnobError as exc:
            errors.append(str(exc))
    if errors:
        raise KnobError("; ".join(errors))
    return out


def render_conf(knobs: dict[str, str]) -> str:
    """The knob file's text (postgresql.conf syntax), one `name = 'value'` per knob."""
    lines = ["# Knobs applied by dbgym (PostgresInstance.apply_knobs). Do not edit."]
    for name in sorted(knobs):
        escaped = knobs[name].replace("\\", "\\\\").replace("'", "''")
        lines.append(f"{name} = '{escaped}'")
    return "\n".join(lines) + "\n"


_CONF_LINE = re.compile(r"^([a-z_][a-z0-9_.]*) = '((?:[^']|'')*)'$")


def parse_conf(text: str) -> dict[str, str]:
    """Inverse of render_conf."""
    out = {}
    for line in text.splitlines():
        match = _CONF_LINE.match(line)
        if match:
            out[match.group(1)] = match.group(2).replace("''", "'").replace("\\\\", "\\")
    return out
