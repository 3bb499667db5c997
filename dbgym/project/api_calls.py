"""The `api_calls` table: one row per call of a public project entry point or CLI command.

GymDash declares the table and never writes it; dbgym writes, for every call: `name`
(e.g. "tracker.start_sim", "cli.sims.list"), `time` (when it started), `code` (0 ok,
1 error, 2 interrupted) and `details`, a JSON object: `duration_s`, `outcome` ("ok",
"interrupted" or "ErrorClass: message") and `arguments` with secrets removed (values of keys
naming a password, secret or token are masked; DSN passwords are masked in every string).

```python
with recorded(project, "cli.sims.list", {"state": state}):
    ...

class SimulationTracker:
    @api_call("tracker.start_sim")          # the object has a `.project`
    def start_sim(self, ...): ...

# a command that records only when a project is named (--project-dir or $DBGYM_PROJECT_DIR)
project = open_if_named(project_dir)                 # dbgym.project.manager; None if not
with recorded(project, "cli.bench", {"config": str(path)}):
    ...
```

Recording never hides the call's own outcome: a failure to write the row (a broken
database) is reported on stderr and the call's result or exception goes on unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from dbgym.redact import MASK, redact

if TYPE_CHECKING:
    from dbgym.project.manager import ProjectManager

P = ParamSpec("P")
R = TypeVar("R")

#: Outcome codes of `api_calls.code`.
OK, ERROR, INTERRUPTED = 0, 1, 2

_SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "api_key")
#: Longest string kept in a recorded argument (longer ones are cut, with their length).
MAX_TEXT = 2000


def scrub(value: Any, key: str = "") -> Any:
    """`value` as JSON with secrets removed (see the module docstring)."""
    if key and any(w in key.lower() for w in _SECRET_WORDS):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = redact(str(value))
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"... ({len(text)} characters)"
    return text


@contextlib.contextmanager
def recorded(
    project: ProjectManager | None, name: str, arguments: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Record the block as the call `name` with `arguments` (see the module docstring). The
    yielded dict is added to `details` (e.g. the id a call created). `project` None: the
    block runs unrecorded (a command that uses a project only when one is named, see
    `dbgym.project.manager.open_if_named`)."""
    if project is None:
        yield {}
        return
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    code, outcome = OK, "ok"
    try:
        yield extra
    except (KeyboardInterrupt, SystemExit) as exc:
        code, outcome = INTERRUPTED, f"interrupted ({type(exc).__name__})"
        raise
    except BaseException as exc:
        code, outcome = ERROR, redact(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        details = {
            "duration_s": round(time.perf_counter() - t0, 6),
            "outcome": outcome,
            "arguments": scrub(dict(arguments or {})),
            **scrub(extra),
        }
        try:
            project.records.add_api_call(name, code, details)
        except Exception as exc:  # never hide the call's own outcome
            print(f"dbgym: could not record the API call {name}: {exc}", file=sys.stderr)


def api_call(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator recording each call as `name` in the project of the call: the method's
    object's `.project`, or a `project` argument."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # let Python raise its own error
            arguments = dict(bound.arguments)
            owner = arguments.pop("self", None)
            project = arguments.get("project", getattr(owner, "project", None))
            if project is None or not hasattr(project, "records"):
                return fn(*args, **kwargs)
            arguments.pop("project", None)
            with recorded(project, name, arguments):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
