"""Lazy registries of named implementations: name -> "module:attr", imported on first use.

Backends (`dbgym.dbms.backend.BACKENDS`), benchmarks (`dbgym.benchmarks.BENCHMARKS`) and the
kinds of a spec family (`StateSpec`, `WorkloadSpec`) are registered this way; the
environment, models and simulations are meant to reuse it. Registering costs nothing: a
name maps to a string, and the module is imported only when the name is first looked up
(so the local backend never imports the docker SDK, and `import dbgym.state.spec` does not
load the TPC-H generator).

```python
BACKENDS: Registry[type[Backend]] = Registry(
    "backend",
    {"local": "dbgym.dbms.local:LocalBackend", "docker": "dbgym.dbms.docker_backend:DockerBackend"},
    accepts=lambda obj: isinstance(obj, type) and issubclass(obj, Backend),
    unavailable=BackendUnavailableError,
)
BACKENDS.get("docker")      # imports dbgym.dbms.docker_backend once, checks, caches
BACKENDS.get("dokcer")      # InvalidArgumentError: ... did you mean 'docker'? ...
"local" in BACKENDS; sorted(BACKENDS)                      # names, no import
BACKENDS.register("mine", "my_pkg.backend:MyBackend")     # a third-party entry
```
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, cast

from dbgym.errors import DbgymError, InvalidArgumentError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """ "; did you mean 'x'?" for the closest of `choices` to `name`, or ""."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """Names -> objects of type T, each given as a "module:attr" string and loaded lazily.

    what: what an entry is ("backend", "benchmark"), for messages.
    accepts: a check of a loaded object (e.g. "is a Backend subclass"); a registered object
        that fails it is a bug in its module, reported as a TypeError.
    unavailable: the error for a registered name whose module cannot be imported (e.g.
        BackendUnavailableError); None lets the ImportError propagate.
    Unknown names raise InvalidArgumentError (a caller mistake) with the closest name.
    """

    def __init__(
        self,
        what: str,
        entries: Mapping[str, str] | None = None,
        *,
        accepts: Callable[[object], bool] | None = None,
        unavailable: type[DbgymError] | None = None,
    ) -> None:
        self.what = what
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._accepts = accepts
        self._unavailable = unavailable
        self._lock = threading.Lock()
        for name, target in (entries or {}).items():
            self.register(name, target)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {sorted(self._targets)})"

    # -- names (no imports) -----------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._targets))

    def __len__(self) -> int:
        return len(self._targets)

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._targets))

    def target(self, name: str) -> str:
        """The "module:attr" string of `name` (InvalidArgumentError if unknown)."""
        self.check(name)
        return self._targets[name]

    def unknown(self, name: object) -> InvalidArgumentError:
        """The error for an unknown `name`: the closest name and every name."""
        names = self.names()
        hint = did_you_mean(name, names) if isinstance(name, str) else ""
        return InvalidArgumentError(
            f"unknown {self.what} {name!r}{hint} (choose one of: {', '.join(names)})"
        )

    def check(self, name: object) -> str:
        """`name` if it is registered, else the `unknown` error (nothing is imported)."""
        if not isinstance(name, str) or name not in self._targets:
            raise self.unknown(name)
        return name

    # -- registration and lookup ------------------------------------------------------
    def register(self, name: str, target: str, *, replace: bool = False) -> None:
        """Registers `name` -> "module:attr" (InvalidArgumentError if taken and not `replace`)."""
        module, sep, attr = target.partition(":")
        if not (name and sep and module and attr):
            raise InvalidArgumentError(
                f"{self.what} {name!r}: a registry target is 'module:attr', got {target!r}"
            )
        with self._lock:
            if name in self._targets and not replace and self._targets[name] != target:
                raise InvalidArgumentError(
                    f"{self.what} {name!r} is already registered as {self._targets[name]!r}"
                )
            self._targets[name] = target
            self._loaded.pop(name, None)

    def get(self, name: str) -> T:
        """The object registered as `name`, imported on first use and then cached."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        target = self.target(name)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if self._unavailable is None:
                raise
            raise self._unavailable(
                f"{self.what} {name!r} is not available: cannot import {module_name} ({exc})"
            ) from exc
        obj: object = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise TypeError(f"{self.what} {name!r}: {target} does not exist") from None
        if self._accepts is not None and not self._accepts(obj):
            raise TypeError(f"{self.what} {name!r}: {target} is not a {self.what}")
        value = cast(T, obj)
        with self._lock:
            self._loaded[name] = value
        return value
