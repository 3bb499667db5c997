"""The calling convention of dbgym/types.py, checked on the public API with inspect.signature
so it stays true as functions are added:

- a function that talks to a database takes it first, named `target`; `replay` and
  `collect_plans` take `(target, workload, *, ...)` (keyword-only options);
- every timeout is float seconds named `timeout` or `<what>_timeout` (never `_ms`);
- `progress` is `bool | None`; a progress callback is `on_progress`;
- per-template planner settings are `TemplateSettings`, wherever they are taken.

Deprecated spellings kept for one release are listed in DEPRECATED, with what replaces them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import dbgym
from dbgym.benchmarks import base as benchmarks_base
from dbgym.benchmarks import pgbench, tpch
from dbgym.observe import plans as observe_plans
from dbgym.state import dump, spec

#: (function qualname, parameter) -> what replaces it (warns when used)
DEPRECATED = {
    ("collect_plans", "timeout_ms"): "timeout",
    ("collect_plans", "settings"): "planner_settings",
    ("explain_one", "timeout_ms"): "timeout",
    ("explain_one", "settings"): "planner_settings",
}

#: Everything that talks to a database given to it, with the target first.
TARGET_FIRST: list[Callable[..., Any]] = [
    dbgym.replay,
    dbgym.collect_plans,
    dbgym.DatabaseState.load_into,
    dbgym.StateSpec.load_into,
    *(cls.load_into for cls in (spec.DumpState, spec.DsnState, benchmarks_base.BenchmarkState)),
    tpch.load,
    pgbench.load,
    dump.restore_dump,
    benchmarks_base.Benchmark.load,
    tpch.Tpch.load,
    pgbench.Pgbench.load,
    dbgym.MetricsObserver.__init__,
    dbgym.KnobStateObserver.__init__,
    dbgym.PlanCatalog.from_instance,
]

#: Modules whose public functions are API beyond the names `dbgym` exports.
MODULES: list[ModuleType] = [tpch, pgbench, dump, observe_plans]


def params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters callers pass (without self/cls)."""
    ps = list(inspect.signature(fn).parameters.values())
    return ps[1:] if ps and ps[0].name in ("self", "cls") else ps


def annotation(p: inspect.Parameter) -> set[str]:
    """The parts of a (string, PEP 563) annotation: "float | None" -> {"float", "None"}."""
    text = p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
    return {part.strip() for part in text.split("|")}


def public_api() -> Iterator[tuple[str, Callable[..., Any]]]:
    """(name, function) of every public function and method reachable from `dbgym`'s
    exports and MODULES."""
    seen: set[int] = set()

    def functions_of(name: str, obj: Any) -> Iterator[tuple[str, Callable[..., Any]]]:
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if inspect.isfunction(member):
                    yield f"{obj.__name__}.{attr}", member
        elif inspect.isfunction(obj):
            yield name, obj

    objects: list[tuple[str, Any]] = [(n, getattr(dbgym, n)) for n in dbgym.__all__]
    for module in MODULES:
        objects += [
            (n, o)
            for n, o in vars(module).items()
            if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__
        ]
    for name, obj in objects:
        for qual, fn in functions_of(name, obj):
            if id(fn) not in seen:
                seen.add(id(fn))
                yield qual, fn


API = sorted(public_api(), key=lambda kv: kv[0])


def test_the_api_walk_finds_the_functions_it_checks() -> None:
    names = {name for name, _ in API}
    assert {"replay", "collect_plans", "DatabaseState.load_into", "load", "restore_dump"} <= names
    assert len(API) > 50, names


@pytest.mark.parametrize("fn", TARGET_FIRST, ids=lambda f: f.__qualname__)
def test_the_target_comes_first_named_target(fn: Callable[..., Any]) -> None:
    first = params(fn)[0]
    assert first.name == "target", f"{fn.__qualname__}({first.name}, ...)"
    assert first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("fn", [dbgym.replay, dbgym.collect_plans], ids=lambda f: f.__name__)
def test_target_workload_then_keyword_only_options(fn: Callable[..., Any]) -> None:
    ps = params(fn)
    assert [p.name for p in ps[:2]] == ["target", "workload"]
    positional = [p.name for p in ps[2:] if p.kind is not p.KEYWORD_ONLY]
    assert positional == [], f"{fn.__name__}: options must be keyword-only: {positional}"


def test_every_timeout_is_float_seconds() -> None:
    bad = []
    for name, fn in API:
        for p in params(fn):
            if "timeout" not in p.name or (name.split(".")[-1], p.name) in DEPRECATED:
                continue
            named_ok = p.name == "timeout" or p.name.endswith("_timeout")
            if not named_ok or not annotation(p) <= {"float", "Seconds", "None"}:
                bad.append(f"{name}({p.name}: {p.annotation})")
    assert bad == []


def test_progress_is_a_flag_and_callbacks_are_on_progress() -> None:
    bad = []
    for name, fn in API:
        for p in params(fn):
            parts = annotation(p)
            if p.name == "progress" and parts != {"bool", "None"}:
                bad.append(f"{name}(progress: {p.annotation})")
            if "ProgressFn" in parts and p.name != "on_progress":
                bad.append(f"{name}({p.name}: {p.annotation})")
    assert bad == []


def test_per_template_settings_are_one_type() -> None:
    bad = [
        f"{name}({p.name}: {p.annotation})"
        for name, fn in API
        for p in params(fn)
        if p.name == "template_settings" and annotation(p) != {"TemplateSettings", "None"}
    ]
    assert bad == []
    takers = {name for name, fn in API if "template_settings" in inspect.signature(fn).parameters}
    assert {"replay", "collect_plans"} <= takers


def test_deprecated_spellings_still_exist_and_warn_in_their_docstring() -> None:
    by_name = dict(API)
    for (name, param), new in DEPRECATED.items():
        fn = by_name[name]
        assert param in inspect.signature(fn).parameters, (name, param)
        assert new in inspect.signature(fn).parameters, (name, new)
        assert "deprecated" in (fn.__doc__ or "").lower(), name
