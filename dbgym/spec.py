"""Typed, serializable specs: the one mechanism behind every configuration value of dbgym.

A spec is a frozen dataclass deriving from `Spec`: `InstanceSpec` (dbgym.dbms.spec), the
`StateSpec` family (dbgym.state.spec, dbgym.benchmarks), the `WorkloadSpec` family
(dbgym.workload.spec, dbgym.benchmarks) and `ReplayOptions` (dbgym.replayer.options). What
`Spec` gives every one of them, written once here:

- validation: each field's value is checked against its type annotation when the spec is
  built (constructor, `from_json`, `dataclasses.replace`): bool, int, float (ints are
  widened; NaN and infinities refused), str, None, `Literal[...]`, unions, `tuple[X, ...]`
  (a JSON list), `Mapping[str, X]` (a JSON object, stored as an immutable `FrozenDict`),
  nested specs, and `Any` (any JSON value, frozen). A bad value raises `SpecError` whose
  `key` names the field (`"knobs.work_mem"`, `"sample[0].n"` for nested ones); subclasses
  add their own checks in `__post_init__` after calling `super().__post_init__()`.
- `to_json()`: canonical JSON (sorted keys, no spaces), with a `"kind"` discriminator;
  `to_dict()` is the same as Python values.
- `from_json(text)` / `from_dict(d)`: validates, and refuses unknown keys, missing keys and
  wrong types with a `SpecError` naming the key. On a family root (`StateSpec.from_json`)
  the `"kind"` picks the class, through a lazy `Registry` of kinds.
- `key()`: a short stable hash (sha256 of the canonical JSON, 16 hex digits): equal specs
  have equal keys in every process and on every machine.
- pickling: specs are plain frozen dataclasses of JSON values, so they pickle cheaply
  (no parsed traces or connections inside).

A spec's JSON holds every field, defaults included, so a spec class that gains a field
changes the keys of its specs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, cast, get_args, get_origin

from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.registry import Registry, did_you_mean

V = TypeVar("V")
S = TypeVar("S", bound="Spec")

#: A frozen JSON value: what an `Any` field (e.g. benchmark parameters) holds.
JsonValue = Union[None, bool, int, float, str, tuple["JsonValue", ...], "FrozenDict[JsonValue]"]

#: The number of hex digits of `Spec.key()`.
KEY_DIGITS = 16


class FrozenDict(Mapping[str, V]):
    """An immutable, hashable mapping with string keys, in sorted key order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        items = dict(data)
        self._data: dict[str, V] = {k: items[k] for k in sorted(items)}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[type[FrozenDict[V]], tuple[dict[str, V]]]:
        return (type(self), (self._data,))


# --- values ----------------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(hint: Any) -> str:
    """A type annotation as a message says it ("a number", "one of 'a', 'b'")."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is type(None) or hint is None:
        return "null"
    if hint is Any or hint is object:
        return "a JSON value"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is Mapping or origin is dict:
        return "an object" + (f" of {_describe(args[1])}" if len(args) == 2 else "")
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if isinstance(hint, type) and issubclass(hint, Spec):
        return f"a {hint.__name__} object"
    return str(hint)


def _exact(value: object, hint: Any) -> bool:
    """Whether `value` already has type `hint` (no widening): picks a union's arm."""
    origin = get_origin(hint)
    if hint is type(None) or hint is None:
        return value is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(hint))
    if origin is tuple:
        return isinstance(value, list | tuple)
    if origin is Mapping or origin is dict:
        return isinstance(value, Mapping)
    if hint in (bool, int, float, str):
        return type(value) is hint
    if isinstance(hint, type) and issubclass(hint, Spec):
        return isinstance(value, (hint, Mapping))
    return False


def freeze_json(value: object, key: str) -> JsonValue:
    """`value` as a frozen JSON value (lists -> tuples, objects -> FrozenDict), or SpecError."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{key}: must be a finite number, got {value!r}", key=key)
        return value
    if isinstance(value, list | tuple):
        return tuple(freeze_json(v, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"{key}: object keys must be strings, got {k!r}", key=key)
            out[k] = freeze_json(v, f"{key}.{k}")
        return FrozenDict(out)
    raise SpecError(f"{key}: not a JSON value: {_show(value)}", key=key)


def thaw_json(value: object) -> Any:
    """A frozen value (FrozenDict, tuple, nested spec) as plain JSON-able Python."""
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(v) for v in value]
    return value


def coerce(value: object, hint: Any, key: str) -> Any:
    """`value` checked against the annotation `hint` (and normalized: lists to tuples,
    mappings to FrozenDict, ints to floats where a float is wanted); SpecError naming `key`."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is object:
        return freeze_json(value, key)
    if origin in (Union, types.UnionType):
        for arm in args:
            if _exact(value, arm):
                return coerce(value, arm, key)
        for arm in args:
            try:
                return coerce(value, arm, key)
            except SpecError as e:
                if isinstance(arm, type) and issubclass(arm, Spec) and isinstance(value, Mapping):
                    raise e from None
        raise SpecError(f"{key}: expected {_describe(hint)}, got {_show(value)}", key=key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(f"{key}: expected {_describe(hint)}, got {_show(value)}", key=key)
        item = args[0] if args else Any
        return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Mapping or origin is dict:
        if not isinstance(value, Mapping):
            raise SpecError(f"{key}: expected {_describe(hint)}, got {_show(value)}", key=key)
        item = args[1] if len(args) == 2 else Any
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"{key}: keys must be strings, got {k!r}", key=key)
            out[k] = coerce(v, item, f"{key}.{k}")
        return FrozenDict(out)
    if isinstance(hint, type) and issubclass(hint, Spec):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            try:
                return hint.from_dict(value)
            except SpecError as e:
                inner = f"{key}.{e.key}" if e.key else key
                raise SpecError(f"{key}: {e}", key=inner) from None
        raise SpecError(f"{key}: expected {_describe(hint)}, got {_show(value)}", key=key)
    if _exact(value, hint):
        if hint is float and not math.isfinite(cast(float, value)):
            raise SpecError(f"{key}: must be a finite number, got {value!r}", key=key)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is type(None) or hint is None or origin is Literal or hint in (bool, int, float, str):
        raise SpecError(f"{key}: expected {_describe(hint)}, got {_show(value)}", key=key)
    raise TypeError(f"spec field {key!r} has an unsupported type annotation {hint!r}")


# --- the base class --------------------------------------------------------------------


_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def _fields(cls: type[Spec]) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    """The dataclass fields of `cls` with their resolved type annotations (cached)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((f, hints[f.name]) for f in dataclasses.fields(cls))
    return found


def _is_spec_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Spec)


def kind_registry(what: str, entries: Mapping[str, str]) -> Registry[type[Spec]]:
    """The lazy registry of a spec family's kinds: kind -> "module:Class"."""
    return Registry(what, entries, accepts=_is_spec_class)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base of dbgym's specs (see the module docstring)."""

    #: The "kind" discriminator written to JSON ("" for a nested value without one).
    kind: ClassVar[str] = ""
    #: On a family root only: the lazy registry of its kinds (kind -> "module:Class").
    kinds: ClassVar[Registry[type[Spec]] | None] = None

    def __post_init__(self) -> None:
        for f, hint in _fields(type(self)):
            object.__setattr__(self, f.name, coerce(getattr(self, f.name), hint, f.name))

    # -- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, with `"kind"` when the class has one."""
        out: dict[str, Any] = {"kind": self.kind} if self.kind else {}
        for f, _ in _fields(type(self)):
            out[f.name] = thaw_json(getattr(self, f.name))
        return out

    def to_json(self, *, indent: int | None = None) -> str:
        """Canonical JSON: sorted keys, compact unless `indent` is given."""
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":") if indent is None else None,
            indent=indent,
            allow_nan=False,
        )

    def key(self) -> str:
        """Stable short hash of the canonical JSON (16 hex digits)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:KEY_DIGITS]

    @classmethod
    def from_json(cls: type[S], text: str | bytes) -> S:
        """The spec written by `to_json` (SpecError naming the key of anything invalid)."""
        try:
            data = json.loads(text)
        except ValueError as e:
            raise SpecError(f"{cls.__name__}: not JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls: type[S], data: object) -> S:
        """The spec of `data` (a dict as `to_dict` makes), validated."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{cls.__name__} must be a JSON object, got {_show(data)}")
        target = cls._class_for(data.get("kind"))
        names = [f.name for f, _ in _fields(target) if f.init]
        for k in data:
            if k != "kind" and k not in names:
                raise SpecError(
                    f"unknown key {k!r} in {target.__name__}"
                    f"{did_you_mean(str(k), names)} (keys: {', '.join(names)})",
                    key=str(k),
                )
        for f, _ in _fields(target):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.init and required and f.name not in data:
                raise SpecError(f"missing key {f.name!r} in {target.__name__}", key=f.name)
        spec = target(**{k: v for k, v in data.items() if k != "kind"})
        return cast(S, spec)

    @classmethod
    def _class_for(cls, kind: object) -> type[Spec]:
        registry: Registry[type[Spec]] | None = cls.__dict__.get("kinds")
        if registry is not None:  # a family root: the kind picks the class
            if kind is None:
                raise SpecError(
                    f"{cls.__name__} needs a 'kind' (one of: {', '.join(registry.names())})",
                    key="kind",
                )
            try:
                sub = registry.get(registry.check(kind))
            except InvalidArgumentError as e:
                raise SpecError(str(e), key="kind") from None
            if not issubclass(sub, cls):
                raise TypeError(f"{registry!r}: {sub.__name__} is not a {cls.__name__}")
            return sub
        if kind is not None and kind != cls.kind:
            want = repr(cls.kind) if cls.kind else "none"
            raise SpecError(
                f"{cls.__name__} has kind {want}, the JSON says {_show(kind)}", key="kind"
            )
        return cls

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes` (validated like a new spec)."""
        return dataclasses.replace(self, **changes)
