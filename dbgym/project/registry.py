"""SimulationRegistry: simulation keys -> the creators of their simulations (GymDash's).

```python
default = SimulationStartConfig("t", "train", {"steps": 5})
SimulationRegistry.register("train", TrainSimulation, default)
SimulationRegistry.register("mine", "my_pkg.sims:MySimulation")  # imported on first use
sim = SimulationRegistry.make("train")                           # with the default config
sim = SimulationRegistry.make("train", SimulationStartConfig("t2", "train", {"steps": 9}))
SimulationRegistry.list()                                        # ["dbgym-run", "mine", "train"]
```

A creator is a `Simulation` subclass or any callable taking a `SimulationStartConfig` and
returning a `Simulation`; or a "module:qualname" string, imported when first needed (the
built-in "dbgym-run" is "dbgym.runner.simulation:RunSimulation": `dbgym.project` never
imports the runner or the environments at import time). The registry is per process: a
child process finds types registered by its parent through the project's `sim_types` table
(`SimulationExporter`, which the tracker also uses for every key it starts).

`load_object(module, qualname, path)` is the one way a child imports a recorded type: by
module name; when that fails and the type's file is known, from the file's sys.path root;
and for a class defined in a user's script (module "__main__"), from the script file under
a name of its own (importlib's spec_from_file_location), never as "__main__", so the
script's `if __name__ == "__main__":` part does not run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dbgym.errors import DbgymError, InvalidArgumentError
from dbgym.project.simulation import Simulation, SimulationStartConfig
from dbgym.registry import did_you_mean

__all__ = [
    "BUILTIN_SIMULATIONS",
    "Creator",
    "SimulationRegistry",
    "TypeLocation",
    "load_object",
    "script_module_name",
]

#: A simulation's creator: a Simulation subclass or any callable config -> Simulation.
Creator = Callable[[SimulationStartConfig], Simulation]

#: Built-in keys -> "module:qualname" (imported on first use).
BUILTIN_SIMULATIONS = {"dbgym-run": "dbgym.runner.simulation:RunSimulation"}


@dataclass(frozen=True)
class TypeLocation:
    """Where a child process finds a creator: module and qualified name, plus the file
    (required for a script's "__main__"; a fallback for modules off the child's sys.path)."""

    module: str
    qualname: str
    path: str | None = None

    @property
    def target(self) -> str:
        return f"{self.module}:{self.qualname}"


@dataclass
class _Entry:
    creator: Creator | None
    location: TypeLocation | None
    start_config: SimulationStartConfig | None


_loading_script = threading.local()


def loading_script() -> str | None:
    """The path of the user script being imported by `load_object` in this thread, if any
    (the tracker refuses to start simulations from a script's import-time code)."""
    path: str | None = getattr(_loading_script, "path", None)
    return path


def script_module_name(path: str | Path) -> str:
    """The module name a script's types are loaded under in a child (stable per path)."""
    resolved = str(Path(path).resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in Path(resolved).stem)
    return f"dbgym_script_{stem}_{digest}"


def _load_script(path: str) -> ModuleType:
    name = script_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    # In the process that ran the script, its types live in __main__ already.
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and main_file and Path(main_file).resolve() == Path(path).resolve():
        return main
    if not Path(path).is_file():
        raise DbgymError(f"the script {path} that defines the simulation type is gone")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DbgymError(f"cannot load the script {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    script_dir = str(Path(path).resolve().parent)
    if script_dir not in sys.path:  # its sibling modules, as when it ran as a script
        sys.path.insert(0, script_dir)
    _loading_script.path = path
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        _loading_script.path = None
    return module


def _sys_path_root(module: str, path: str) -> Path | None:
    """The directory that must be on sys.path for `module` to be the file `path`."""
    file = Path(path).resolve()
    parts = module.split(".")
    is_package = file.name == "__init__.py"
    here = file.parent if is_package else file
    if (here.name if is_package else file.stem) != parts[-1]:
        return None
    root = here.parent
    for _ in parts[:-1]:
        root = root.parent
    return root


def _import_module(module: str, path: str | None) -> ModuleType:
    if module == "__main__":
        if not path:
            raise DbgymError(
                "a simulation type defined in __main__ needs its script's path (export it "
                "from a script file, not an interactive session)"
            )
        return _load_script(path)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not path or not (module == missing or module.startswith(missing + ".")):
            raise
        root = _sys_path_root(module, path)
        if root is None:
            raise
        sys.path.insert(0, str(root))
        return importlib.import_module(module)


def load_object(module: str, qualname: str, path: str | None = None) -> Any:
    """The object `qualname` of `module` (see the module docstring for how it is found)."""
    obj: Any = _import_module(module, path)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = f" ({path})" if path else ""
            raise DbgymError(f"{module}{where} has no {qualname!r}") from None
    return obj


def location_of(creator: object) -> TypeLocation:
    """Where a child process can import `creator` from (module, qualname, file); a
    DbgymError-derived InvalidArgumentError if it cannot (a lambda, a local class)."""
    module = getattr(creator, "__module__", None)
    qualname = getattr(creator, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise InvalidArgumentError(
            f"{creator!r} has no module and qualified name: register a module-level class"
        )
    if "<" in qualname:  # <lambda>, <locals>
        raise InvalidArgumentError(
            f"{module}.{qualname} cannot be imported by a child process: define it at the top "
            "level of a module or script"
        )
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    path = str(Path(file).resolve()) if isinstance(file, str) else None
    if module == "__main__" and path is None:
        raise InvalidArgumentError(
            f"{qualname} is defined in an interactive session: define it in a module or a "
            "script file so a child process can import it"
        )
    return TypeLocation(module, qualname, path)


def _parse_target(key: str, target: str) -> TypeLocation:
    module, sep, qualname = target.partition(":")
    if not (sep and module and qualname):
        raise InvalidArgumentError(
            f"simulation {key!r}: a creator string is 'module:qualname', got {target!r}"
        )
    return TypeLocation(module, qualname)


class SimulationRegistry:
    """Keys -> simulation creators (and optional default start configs), per process.

    Static methods, as in GymDash: `register`, `make`, `list`; `creator(key)` and
    `location(key)` are what the tracker and the child use."""

    _entries: dict[str, _Entry] = {}  # noqa: RUF012 - the per-process registry itself
    _lock = threading.RLock()

    @staticmethod
    def register(
        key: str,
        creator: Creator | type[Simulation] | str,
        start_config: SimulationStartConfig | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Register `creator` under `key` (replacing an earlier one). `creator` is a class,
        a callable, or a "module:qualname" string (with `path`: the file defining it,
        needed for a script's "__main__")."""
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"a simulation key is a non-empty string, got {key!r}")
        if start_config is not None and not isinstance(start_config, SimulationStartConfig):
            raise InvalidArgumentError(
                f"simulation {key!r}: start_config must be a SimulationStartConfig, "
                f"got {type(start_config).__name__}"
            )
        if isinstance(creator, str):
            location: TypeLocation | None = _parse_target(key, creator)
            assert location is not None
            location = TypeLocation(location.module, location.qualname, path)
            entry = _Entry(None, location, start_config)
        elif callable(creator):
            entry = _Entry(creator, None, start_config)
        else:
            raise InvalidArgumentError(
                f"simulation {key!r}: the creator must be a Simulation type, a callable or "
                f"a 'module:qualname' string, got {creator!r}"
            )
        with SimulationRegistry._lock:
            SimulationRegistry._entries[key] = entry

    @staticmethod
    def unregister(key: str) -> None:
        """Forget `key` (built-ins come back on the next lookup)."""
        with SimulationRegistry._lock:
            SimulationRegistry._entries.pop(key, None)

    @staticmethod
    def list() -> list[str]:
        """Registered keys (built-ins included), sorted."""
        with SimulationRegistry._lock:
            return sorted(set(SimulationRegistry._entries) | set(BUILTIN_SIMULATIONS))

    @staticmethod
    def has(key: str) -> bool:
        """Whether `key` is registered in this process (built-ins included)."""
        with SimulationRegistry._lock:
            return key in SimulationRegistry._entries or key in BUILTIN_SIMULATIONS

    @staticmethod
    def _entry(key: str) -> _Entry:
        with SimulationRegistry._lock:
            entry = SimulationRegistry._entries.get(key)
            if entry is None and key in BUILTIN_SIMULATIONS:
                entry = _Entry(None, _parse_target(key, BUILTIN_SIMULATIONS[key]), None)
                SimulationRegistry._entries[key] = entry
        if entry is None:
            keys = SimulationRegistry.list()
            raise InvalidArgumentError(
                f"unknown simulation key {key!r}{did_you_mean(key, keys)} "
                f"(registered: {', '.join(keys)}; a type defined elsewhere needs "
                "SimulationExporter.export_sims() first)"
            )
        return entry

    @staticmethod
    def creator(key: str) -> Creator:
        """The creator of `key`, importing it on first use."""
        entry = SimulationRegistry._entry(key)
        if entry.creator is None:
            assert entry.location is not None
            loc = entry.location
            obj = load_object(loc.module, loc.qualname, loc.path)
            if not callable(obj):
                raise DbgymError(f"simulation {key!r}: {loc.target} is not callable")
            entry.creator = obj
        return entry.creator

    @staticmethod
    def location(key: str) -> TypeLocation:
        """Where a child process imports `key`'s creator from (no import for strings)."""
        entry = SimulationRegistry._entry(key)
        if entry.location is not None:
            return entry.location
        assert entry.creator is not None
        return location_of(entry.creator)

    @staticmethod
    def start_config(key: str) -> SimulationStartConfig:
        """`key`'s default start config (name = key, no kwargs, when none was registered)."""
        entry = SimulationRegistry._entry(key)
        if entry.start_config is not None:
            return entry.start_config
        return SimulationStartConfig(name=key, sim_key=key, kwargs={})

    @staticmethod
    def make(key: str, config: SimulationStartConfig | None = None) -> Simulation:
        """A new simulation of `key` with `config` (default: the registered start config)."""
        creator = SimulationRegistry.creator(key)
        cfg = SimulationRegistry.start_config(key) if config is None else config
        sim = creator(cfg)
        if not isinstance(sim, Simulation):
            raise DbgymError(
                f"simulation {key!r}: its creator returned {type(sim).__name__}, not a Simulation"
            )
        return sim


@contextlib.contextmanager
def registered(
    key: str, creator: Creator | type[Simulation] | str, start_config: Any = None
) -> Iterator[None]:
    """Register `key` for the duration of a with-block (tests, notebooks)."""
    SimulationRegistry.register(key, creator, start_config)
    try:
        yield
    finally:
        SimulationRegistry.unregister(key)
