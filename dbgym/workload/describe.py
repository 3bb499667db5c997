"""`dbgym workload inspect`: what a workload source holds (counts, sessions, top templates)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dbgym.workload.workload import TemplateInfo, Workload


@dataclass(frozen=True)
class WorkloadSummary:
    source: str
    format: str
    statements: int
    sessions: int
    templates: int
    span_s: float
    with_duration: int
    skipped_lines: int
    first_skipped: str | None
    top: list[TemplateInfo]
    statements_per_session: dict[str, float]


def load_source(
    path: str | os.PathLike[str],
    format: str | None = None,
    log_line_prefix: str | None = None,
    lenient: bool = False,
) -> Workload:
    """A log file, or SQL (a directory or a `.sql` file)."""
    p = Path(path)
    if p.is_dir() or (p.suffix.lower() == ".sql" and format is None):
        return Workload.from_sql(p)
    return Workload.from_log(p, format=format, log_line_prefix=log_line_prefix, lenient=lenient)


def summarize(w: Workload, top: int = 10) -> WorkloadSummary:
    ts = w.timestamps_us()
    per_session = np.bincount(w.session_ids(), minlength=len(w.sessions))
    used = per_session[per_session > 0]
    stats = w.stats
    return WorkloadSummary(
        source=w.source or "",
        format=stats.format if stats is not None else "sql",
        statements=len(w),
        sessions=int(used.size),
        templates=len(w.templates()),
        span_s=float(ts.max() - ts.min()) / 1e6 if ts.size else 0.0,
        with_duration=int((w.durations_us() >= 0).sum()),
        skipped_lines=w.skipped_lines,
        first_skipped=stats.first_skipped if stats is not None else None,
        top=w.top_templates(top),
        statements_per_session={
            "min": float(used.min()) if used.size else 0.0,
            "mean": float(used.mean()) if used.size else 0.0,
            "max": float(used.max()) if used.size else 0.0,
        },
    )


def render(s: WorkloadSummary, console: Console | None = None, width: int = 100) -> None:
    console = console or Console()
    head = Table(title=f"workload {s.source}", show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("format", s.format)
    head.add_row("statements", f"{s.statements:,}")
    head.add_row("sessions", f"{s.sessions:,}")
    head.add_row("templates", f"{s.templates:,}")
    head.add_row("time span", f"{s.span_s:.3f} s")
    head.add_row("with logged duration", f"{s.with_duration:,}")
    sps = s.statements_per_session
    head.add_row(
        "statements/session", f"min {sps['min']:.0f}  mean {sps['mean']:.1f}  max {sps['max']:.0f}"
    )
    head.add_row("skipped lines", f"{s.skipped_lines:,}")
    if s.first_skipped:
        head.add_row("first skipped", s.first_skipped)
    console.print(head)
    top = Table(title=f"top {len(s.top)} templates")
    top.add_column("id", justify="right")
    top.add_column("count", justify="right")
    top.add_column("share", justify="right")
    top.add_column("template")
    for t in s.top:
        text = t.text if len(t.text) <= width else t.text[: width - 1] + "…"
        share = 100.0 * t.count / s.statements if s.statements else 0.0
        top.add_row(str(t.id), f"{t.count:,}", f"{share:.1f}%", text)
    console.print(top)
