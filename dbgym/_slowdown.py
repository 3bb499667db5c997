"""Test-only switch: slow a hot path down on purpose, to show that its bench notices.

`DBGYM_TEST_SLOWDOWN="featurize=0.1"` (comma-separated `name=seconds` pairs) makes every
`pause("featurize")` sleep 0.1 s. The variable is read once per process, at the first call;
unset (everywhere but tests/test_selfbench.py), `pause` is a dict lookup that returns at once.

Wired hot paths: "featurize" (`dbgym.plans.featurize.featurize`, before the Rust call).
"""

from __future__ import annotations

import functools
import os
import time

from dbgym.errors import InvalidArgumentError

ENV_VAR = "DBGYM_TEST_SLOWDOWN"


@functools.cache
def _delays() -> dict[str, float]:
    delays: dict[str, float] = {}
    for item in os.environ.get(ENV_VAR, "").split(","):
        if not item.strip():
            continue
        name, _, seconds = item.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not value >= 0 or not name.strip():  # NaN fails too
            raise InvalidArgumentError(
                f"{ENV_VAR}: {item.strip()!r} is not name=seconds (seconds >= 0)"
            )
        delays[name.strip()] = value
    return delays


def pause(name: str) -> None:
    """Sleep the seconds $DBGYM_TEST_SLOWDOWN gives `name` (test-only; none by default)."""
    seconds = _delays().get(name)
    if seconds:
        time.sleep(seconds)
