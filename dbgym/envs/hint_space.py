"""The hint action: per template slot, one of a set of Bao-style hint sets.

A hint set is a combination of PostgreSQL's `enable_*` planner settings (Bao, Marcus et
al., SIGMOD 2021, steers the optimizer with such sets instead of a learned planner). The
environment applies the chosen set per template with `SET LOCAL` around each of that
template's statements during replay (and per EXPLAIN for plans and estimates): no
extension is needed.

`DEFAULT_HINT_SETS` (arm 0 is always `{}`, the planner's own choice):

| arm | settings                                  | effect                         |
|-----|-------------------------------------------|--------------------------------|
| 0   | -                                         | the planner's choice           |
| 1   | enable_hashjoin=off                       | no hash joins                  |
| 2   | enable_mergejoin=off                      | no merge joins                 |
| 3   | enable_nestloop=off                       | no nested loops                |
| 4   | enable_hashjoin=off, enable_mergejoin=off | nested loops only              |
| 5   | enable_nestloop=off, enable_mergejoin=off | hash joins only                |
| 6   | enable_seqscan=off                        | index access where possible    |
| 7   | enable_indexscan=off, enable_bitmapscan=off, enable_indexonlyscan=off | scans only |

JIT: a disabled operator the planner must still use is not forbidden but costed with
`disable_cost` (1e10), which pushes the plan's total cost over `jit_above_cost` and turns
JIT compilation on: on main, `enable_seqscan=off` turned a 0.7 s replay into 90 s, all of it
compiling. So every hint set except arm 0 also sets `jit=off` for its statements, unless
the knob action tunes `jit` itself (then the tuned value stays in force). The hints measure
the join and scan choice, never JIT compilation by accident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.errors import InvalidArgumentError
from dbgym.types import SettingValue

DEFAULT_HINT_SETS: tuple[Mapping[str, SettingValue], ...] = (
    {},
    {"enable_hashjoin": False},
    {"enable_mergejoin": False},
    {"enable_nestloop": False},
    {"enable_hashjoin": False, "enable_mergejoin": False},
    {"enable_nestloop": False, "enable_mergejoin": False},
    {"enable_seqscan": False},
    {"enable_indexscan": False, "enable_bitmapscan": False, "enable_indexonlyscan": False},
)


def _text(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class HintSpace:
    """`space`: MultiDiscrete([len(hint_sets)] * n_slots); entry i picks slot i's set."""

    def __init__(
        self,
        n_slots: int,
        hint_sets: Sequence[Mapping[str, SettingValue]] | None = None,
        *,
        jit_tuned: bool = False,
    ) -> None:
        sets = tuple(dict(s) for s in (hint_sets if hint_sets is not None else DEFAULT_HINT_SETS))
        if not sets or sets[0]:
            raise InvalidArgumentError("hint_sets: the first hint set must be {} (no hint)")
        if n_slots < 1:
            raise InvalidArgumentError(f"the hint space needs at least one template, got {n_slots}")
        self.n_slots = n_slots
        self.jit_tuned = jit_tuned
        self.hint_sets: tuple[dict[str, str], ...] = tuple(
            {str(k): _text(v) for k, v in s.items()} for s in sets
        )
        self.space = spaces.MultiDiscrete(np.full(n_slots, len(sets), dtype=np.int64))

    @property
    def n_sets(self) -> int:
        return len(self.hint_sets)

    def check(self, action: object) -> NDArray[np.int64]:
        """`action` as an int64 array, or InvalidArgumentError saying what is wrong."""
        arr = np.asarray(action)
        if arr.shape != (self.n_slots,) or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidArgumentError(
                f"hints action: expected {self.n_slots} integers in [0, {self.n_sets}), got "
                f"shape {arr.shape} of {arr.dtype}"
            )
        bad = np.flatnonzero((arr < 0) | (arr >= self.n_sets))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgumentError(
                f"hints action[{i}] = {int(arr[i])}: hint sets are numbered 0..{self.n_sets - 1}"
            )
        return arr.astype(np.int64)

    def settings(self, arm: int) -> dict[str, str]:
        """The planner settings of hint set `arm` (with jit=off unless jit is tuned)."""
        out = dict(self.hint_sets[arm])
        if out and not self.jit_tuned and "jit" not in out:
            out["jit"] = "off"
        return out

    def slot_settings(self, action: object) -> dict[int, dict[str, str]]:
        """{slot: settings} for the slots whose chosen set is not arm 0."""
        arr = self.check(action)
        return {i: self.settings(int(a)) for i, a in enumerate(arr) if a != 0}

    def describe(self, action: object) -> dict[int, str]:
        """{slot: "enable_hashjoin=off, ..."} for the hinted slots (readable)."""
        return {
            slot: ", ".join(f"{k}={v}" for k, v in kv.items())
            for slot, kv in self.slot_settings(action).items()
        }

    def one_hot(self, action: object) -> NDArray[np.float32]:
        """The choices as a (n_slots, n_sets) float32 one-hot array (the observation)."""
        arr = self.check(action)
        out = np.zeros((self.n_slots, self.n_sets), dtype=np.float32)
        out[np.arange(self.n_slots), arr] = 1.0
        return out

    def sb3_mask(self) -> NDArray[np.bool_]:
        """Every choice allowed, flat as sb3-contrib's MaskablePPO wants (sum of nvec)."""
        return np.ones(self.n_slots * self.n_sets, dtype=bool)
