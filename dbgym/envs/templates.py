"""Template slots: the fixed set of templates an environment hints and observes.

The historical workloads may come from different sources, each numbering its templates
its own way, so slots are keyed by the template's text. The `max_templates` most frequent
templates over all workloads (ties: first seen) get a slot, in that order; a workload's
other templates are replayed and measured but neither hinted nor observed. Each slot keeps a
representative statement (its first occurrence) for EXPLAIN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dbgym.workload.workload import Workload


@dataclass(frozen=True)
class Slot:
    """One template slot: the template text, its statement count over all workloads, and
    a representative statement (sql and logged parameters) to EXPLAIN."""

    text: str
    count: int
    sql: str
    params: tuple[str | None, ...]


class TemplateSlots:
    """The slots of `workloads` (see the module docstring)."""

    def __init__(self, workloads: Sequence[Workload], max_templates: int) -> None:
        counts: dict[str, int] = {}
        first: dict[str, tuple[str, tuple[str | None, ...]]] = {}
        order: dict[str, int] = {}
        for w in workloads:
            ids = w.template_ids()
            seen: dict[int, int] = {}
            for i, tid in enumerate(ids.tolist()):
                seen.setdefault(tid, i)
            for t in w.templates():
                counts[t.text] = counts.get(t.text, 0) + t.count
                order.setdefault(t.text, len(order))
                if t.text not in first and t.id in seen:
                    st = w.statement(seen[t.id])
                    first[t.text] = (st.sql, st.params)
        ranked = sorted((t for t in counts if t in first), key=lambda t: (-counts[t], order[t]))[
            :max_templates
        ]
        self.slots: tuple[Slot, ...] = tuple(
            Slot(t, counts[t], first[t][0], first[t][1]) for t in ranked
        )
        self._index = {s.text: i for i, s in enumerate(self.slots)}

    def __len__(self) -> int:
        return len(self.slots)

    def slot_of(self, text: str) -> int | None:
        return self._index.get(text)

    def mapping(self, workload: Workload) -> dict[int, int]:
        """{template id of `workload`: slot} for its templates that have a slot."""
        out: dict[int, int] = {}
        for t in workload.templates():
            slot = self._index.get(t.text)
            if slot is not None:
                out[t.id] = slot
        return out

    def statements(self) -> list[str]:
        """The representative statements' SQL, by slot (for index-candidate mining)."""
        return [s.sql for s in self.slots]
