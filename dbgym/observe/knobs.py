"""Knob-state observation: current values of the tuned knobs, normalized to [0, 1].

Each knob's range comes from the knob catalog (dbgym.dbms.knobs, i.e. pg_settings'
min_val/max_val in the knob's base unit) unless a narrower tuning range is given.
Numeric knobs whose range spans three or more orders of magnitude are log-scaled
(ln(1 + v - lo) / ln(1 + hi - lo)); others are linear. Booleans map to 0/1, enums to
their position in enumvals / (n - 1). Values outside the range are clipped. String knobs
have no numeric state and are refused.

The observer reads pg_settings on its own connection; when a restart, restore or crash
ended it, `observe()` reconnects (and a `DbSession` reconnects it at every epoch through
`on_epoch`), so the state always shows the values the running server uses.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.dbms.knobs import CATALOG_SQL, KnobSpec, catalog_from_rows, parse_bool
from dbgym.errors import ObservationError
from dbgym.observe.source import ServerSource
from dbgym.types import SupportsConnect

#: Ranges with hi / max(lo, 1) at least this large are log-scaled.
LOG_SCALE_RATIO = 1000.0


@dataclass(frozen=True)
class KnobScale:
    """How one knob's pg_settings value maps to [0, 1]."""

    name: str
    vartype: str
    lo: float
    hi: float
    log: bool
    enumvals: tuple[str, ...] = ()

    def normalize(self, setting: str) -> float:
        """`setting` as pg_settings.setting prints it (base unit), mapped to [0, 1]."""
        if self.vartype == "bool":
            flag = parse_bool(setting)
            if flag is None:
                raise ObservationError(f"knob {self.name}: {setting!r} is not a boolean")
            return 1.0 if flag else 0.0
        if self.vartype == "enum":
            lowered = [v.lower() for v in self.enumvals]
            try:
                pos = lowered.index(setting.strip().lower())
            except ValueError:
                raise ObservationError(
                    f"knob {self.name}: {setting!r} is not one of {', '.join(self.enumvals)}"
                ) from None
            return pos / (len(self.enumvals) - 1) if len(self.enumvals) > 1 else 0.0
        try:
            v = float(setting)
        except ValueError:
            raise ObservationError(f"knob {self.name}: {setting!r} is not a number") from None
        v = min(max(v, self.lo), self.hi)
        if self.hi == self.lo:
            return 0.0
        if self.log:
            return math.log1p(v - self.lo) / math.log1p(self.hi - self.lo)
        return (v - self.lo) / (self.hi - self.lo)

    def denormalize(self, x: float) -> str:
        """The inverse of `normalize`: a point of [0, 1] (clipped) as a pg_settings-style
        value in the knob's base unit. Integers are rounded, reals kept to 4 significant
        digits (`_real_text`), enums and booleans bucketed (n equal buckets; 1.0 is the
        last one).

        Idempotent through float32, as a Box action travels: for x a float32,
        denormalize(float32(normalize(denormalize(x)))) == denormalize(x), because each
        rounding is to the nearest grid point of a monotone map (an action applied twice,
        or the observation of an applied action fed back, changes nothing)."""
        x = min(max(float(x), 0.0), 1.0)
        if self.vartype in ("bool", "enum"):
            choices = ("off", "on") if self.vartype == "bool" else self.enumvals
            return choices[min(int(x * len(choices)), len(choices) - 1)]
        if self.log:
            v = self.lo + math.expm1(x * math.log1p(self.hi - self.lo))
        else:
            v = self.lo + x * (self.hi - self.lo)
        v = min(max(v, self.lo), self.hi)
        if self.vartype == "integer":
            return str(int(min(max(round(v), math.ceil(self.lo)), math.floor(self.hi))))
        return self._real_text(v)

    def _real_text(self, v: float) -> str:
        """`v` (in [lo, hi]) to 4 significant digits, rounded toward the range when the
        nearest such number lies outside it (hi = 1.79769e+308 must not become 1.798e+308,
        which overflows); 5 or 6 digits when no 4-digit number is in the range. PostgreSQL
        prints a real setting with 6 significant digits, so the server stores and shows
        exactly this value."""
        for digits in (4, 5, 6):
            text = f"{v:.{digits}g}"
            near = float(text)
            if self.lo <= near <= self.hi:
                return text
            inward = decimal.Context(
                prec=digits,
                rounding=decimal.ROUND_FLOOR if near > self.hi else decimal.ROUND_CEILING,
            ).create_decimal(repr(v))
            text = f"{float(inward):.{digits}g}"
            if self.lo <= float(text) <= self.hi:
                return text
        return repr(v)


def knob_scale(spec: KnobSpec, tuning_range: tuple[float, float] | None = None) -> KnobScale:
    """The scale of one knob from its catalog entry (and an optional narrower range)."""
    if spec.vartype in ("bool", "enum"):
        if spec.vartype == "enum" and not spec.enumvals:
            raise ObservationError(f"knob {spec.name}: enum without values in pg_settings")
        return KnobScale(spec.name, spec.vartype, 0.0, 1.0, False, spec.enumvals)
    if spec.vartype not in ("integer", "real"):
        raise ObservationError(
            f"knob {spec.name} is a {spec.vartype} setting; only numeric, bool and enum knobs "
            "have a normalized state"
        )
    if tuning_range is not None:
        lo, hi = float(tuning_range[0]), float(tuning_range[1])
    elif spec.min_val is not None and spec.max_val is not None:
        lo, hi = spec.min_val, spec.max_val
    else:
        raise ObservationError(f"knob {spec.name} has no min/max in pg_settings; give a range")
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ObservationError(f"knob {spec.name}: invalid range [{lo}, {hi}]")
    log = hi - lo >= LOG_SCALE_RATIO * max(abs(lo), 1.0)
    return KnobScale(spec.name, spec.vartype, lo, hi, log)


class KnobStateObserver(ServerSource):
    """Current values of `knobs`, normalized, as `space` (Box [0, 1]^k) with `names`."""

    what = "the knob-state observer"

    def __init__(
        self,
        target: SupportsConnect | str,
        knobs: Sequence[str],
        ranges: Mapping[str, tuple[float, float]] | None = None,
        catalog: Mapping[str, KnobSpec] | None = None,
    ) -> None:
        super().__init__(target)
        try:
            if catalog is None:
                catalog = getattr(target, "knob_catalog", None)
            if catalog is None:
                catalog = catalog_from_rows(self._conn.execute(CATALOG_SQL).fetchall())
            unknown = [k for k in knobs if k not in catalog]
            if unknown:
                raise ObservationError(f"unknown knob(s): {', '.join(unknown)}")
            extra = set(ranges or {}) - set(knobs)
            if extra:
                raise ObservationError(f"ranges given for knobs not observed: {sorted(extra)}")
            self.scales = tuple(knob_scale(catalog[k], (ranges or {}).get(k)) for k in knobs)
            self.names: tuple[str, ...] = tuple(knobs)
            self.space = spaces.Box(low=0.0, high=1.0, shape=(len(knobs),), dtype=np.float32)
        except BaseException:
            self.close()
            raise

    def normalize(self, settings: Mapping[str, str]) -> NDArray[np.float32]:
        """Map pg_settings-style values (base units) of the observed knobs to [0, 1]."""
        missing = [n for n in self.names if n not in settings]
        if missing:
            raise ObservationError(f"no value for knob(s): {', '.join(missing)}")
        return np.array([s.normalize(settings[s.name]) for s in self.scales], dtype=np.float32)

    def observe(self) -> NDArray[np.float32]:
        """The knobs' current values on the server, normalized (reconnects once if the
        connection was lost: a restart, restore or crash since the last call)."""
        rows = self._read(self._settings)
        return self.normalize({str(n): str(v) for n, v in rows})

    def _settings(self, conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(self.names),)
        ).fetchall()
