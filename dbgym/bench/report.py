"""The report of a comparison: statistics built from the measurements, and its outputs
(a rich table, JSON validating against report.schema.json, CSV, PNG, self-contained HTML).

JSON (`BenchReport.to_dict()`, schema version SCHEMA_VERSION, file report.schema.json next
to this module), one object:

- `schema_version` (1), `kind` ("dbgym-bench"), `name`, `started` / `ended` (ISO 8601
  UTC), `duration_s`, `interrupted` (Ctrl-C: what was measured until then);
- `spec`: the BenchSpec (`BenchSpec.from_dict` re-creates it);
- `method`: how the runs were ordered and what the statistics are (test, interval,
  correction, alpha, resamples, seed);
- `workload`: source, statements, templates, `writes`, `restore_each_run`;
- `configurations`: one object per configuration, the first the baseline: `name`,
  `description`, `summary`, `config` (its file schema), `server`, `backend`, `replay`;
  `runs` (measured runs with a time), `failed_runs`, `timed_out_runs`; `median_s`,
  `p95_s`, `min_s`, `max_s`, `mean_s`, `stdev_s`, `cv`, `throughput_per_s` (successful
  statements per second, median over runs); `speedup` (median of the first / median of
  this, > 1 = faster), `ci_low` / `ci_high` (its bootstrap interval), `p_value` (Holm-
  corrected), `p_value_raw`, `significant` (bool), `verdict` ("baseline", "faster",
  "slower", "no significant difference", "not measured"), `slowdown_pct`, `regression`
  (beyond --fail-if-slower); `geomean_template_speedup`, `templates_compared`,
  `top_speedups` / `top_regressions` (per template: id, text, statements,
  baseline_median_s, median_s, speedup); `outlier_runs` (1-based), `notes`; `times_s` and
  `warmup_times_s` (per run, null when it failed), `errors_by_sqlstate`;
- `templates`: per template id, text, statements and each configuration's median time;
- `regressions`: names of the configurations beyond --fail-if-slower;
- `notes`: remarks on the whole comparison;
- `metadata`: `host` (dbgym.provenance.host_facts: versions, commit, CPU, cores, memory),
  `servers` (per server: backend, image id or binary hash, PostgreSQL version, the
  configurations it ran, the knobs in force), `cache` (mode, whether the OS page cache
  was dropped), `seed`;
- `timing`: seconds of each phase, `replay_s` (the replays themselves), `total_s`,
  `overhead_s` and `overhead_pct` (everything else, relative to the replays).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dbgym.bench import stats
from dbgym.bench.runner import Measurements, finite
from dbgym.bench.spec import BenchSpec

if TYPE_CHECKING:
    from rich.console import Console

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
#: per-template changes listed per configuration (largest speedups, largest regressions)
TOP_TEMPLATES = 5
#: settings recorded per server: the knobs in force are every setting not at its default
_DEFAULT_SOURCES = ("default", "override", "client")


@dataclass(frozen=True)
class TemplateChange:
    """One template's change in a configuration against the baseline."""

    id: int
    text: str
    statements: int
    baseline_median_s: float
    median_s: float
    speedup: float


@dataclass
class ConfigResult:
    """One configuration's results (the JSON fields of the module docstring)."""

    name: str
    description: str
    summary: str
    config: dict[str, Any]
    server: str
    backend: str
    replay: dict[str, Any]
    runs: int = 0
    failed_runs: int = 0
    timed_out_runs: int = 0
    median_s: float | None = None
    p95_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    mean_s: float | None = None
    stdev_s: float | None = None
    cv: float | None = None
    throughput_per_s: float | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_raw: float | None = None
    significant: bool = False
    verdict: str = "not measured"
    slowdown_pct: float | None = None
    regression: bool = False
    geomean_template_speedup: float | None = None
    templates_compared: int = 0
    top_speedups: list[TemplateChange] = field(default_factory=list)
    top_regressions: list[TemplateChange] = field(default_factory=list)
    outlier_runs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    times_s: list[float | None] = field(default_factory=list)
    warmup_times_s: list[float | None] = field(default_factory=list)
    errors_by_sqlstate: dict[str, int] = field(default_factory=dict)


@dataclass
class BenchReport:
    """What `dbgym.bench.compare` returns (see the module docstring for the fields)."""

    name: str
    started: str
    ended: str
    duration_s: float
    interrupted: bool
    spec: BenchSpec
    method: dict[str, Any]
    workload: dict[str, Any]
    configurations: list[ConfigResult]
    templates: list[dict[str, Any]]
    regressions: list[str]
    notes: list[str]
    metadata: dict[str, Any]
    timing: dict[str, float]
    schema_version: int = SCHEMA_VERSION
    kind: str = "dbgym-bench"
    _png: bytes | None = field(default=None, repr=False, compare=False)

    # -- access -------------------------------------------------------------------------
    def config(self, name: str) -> ConfigResult:
        """The result of the configuration named `name` (KeyError if none)."""
        for c in self.configurations:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def baseline(self) -> ConfigResult:
        return self.configurations[0]

    # -- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "name": self.name,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "interrupted": self.interrupted,
            "spec": self.spec.to_dict(),
            "method": self.method,
            "workload": self.workload,
            "configurations": [asdict(c) for c in self.configurations],
            "templates": self.templates,
            "regressions": self.regressions,
            "notes": self.notes,
            "metadata": self.metadata,
            "timing": self.timing,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    def write_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.to_json() + "\n", encoding="utf-8")
        return p

    def write_csv(self, path: str | Path) -> Path:
        """One row per configuration: the summary fields (no per-run lists)."""
        p = Path(path)
        columns = [
            "name", "description", "backend", "runs", "failed_runs", "timed_out_runs",
            "median_s", "p95_s", "min_s", "max_s", "mean_s", "stdev_s", "cv",
            "throughput_per_s", "speedup", "ci_low", "ci_high", "p_value", "p_value_raw",
            "significant", "verdict", "slowdown_pct", "regression",
            "geomean_template_speedup", "templates_compared", "summary",
        ]  # fmt: skip
        with p.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for c in self.configurations:
                row = asdict(c)
                writer.writerow(["" if row[k] is None else row[k] for k in columns])
        return p

    def png_bytes(self) -> bytes:
        """The plot: run-time distributions per configuration, per-template speedups."""
        if self._png is None:
            self._png = _plot(self)
        return self._png

    def write_png(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_bytes(self.png_bytes())
        return p

    def html(self) -> str:
        """A self-contained HTML page (the plot inlined as base64 PNG)."""
        return _html(self)

    def write_html(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.html(), encoding="utf-8")
        return p

    def render(self, console: Console) -> None:
        """The rich table, the per-template changes and the notes."""
        _render(self, console)


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report (report.schema.json)."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


# -- building ---------------------------------------------------------------------------


def method_of(spec: BenchSpec) -> dict[str, Any]:
    conf = 1 - spec.alpha
    return {
        "order": "interleaved rounds: each round runs every configuration once, in the "
        "given order; the first warmup rounds are not counted",
        "servers": (
            "one server per backend; before a run of another configuration the pristine "
            "state is restored (DbSession.restore) and the configuration applied"
            if spec.one_server
            else "one server per distinct server-side configuration (backend, knobs, "
            "indexes), each launched from the state cache (a fresh copy of the same "
            "pristine state) with its knobs and indexes applied once; configurations "
            "differing only in hints or replay mode share a server"
        )
        + (
            "; every run starts from a restore of its configuration's state"
            if spec.restore == "always"
            else "; a writing workload restores its configuration's state before every run"
            if spec.restore == "auto"
            else ""
        ),
        "statistic": "workload time: the replay's elapsed seconds (median over runs)",
        "speedup": "median time of the first configuration / median time of this one (> 1: faster)",
        "ci": f"percentile bootstrap of the ratio of medians, {spec.bootstrap} resamples, "
        f"{conf:.0%} (two-sided, not adjusted for multiplicity)",
        "test": "two-sided Mann-Whitney U test of the run times against the first "
        "configuration (exact distribution without ties, else the normal approximation "
        "with tie and continuity corrections; the p-values of scipy.stats.mannwhitneyu)",
        "correction": "Holm-Bonferroni over the comparisons with the first configuration",
        "significant": f"corrected p < {spec.alpha:g} and the interval excludes 1",
        "outliers": "Tukey's fences (1.5 IQR beyond the quartiles)",
        "template_speedups": "per template: ratio of the medians of the template's summed "
        "statement latency per run; geometric mean over the templates measured in both",
        "alpha": spec.alpha,
        "confidence": conf,
        "bootstrap_resamples": spec.bootstrap,
        "seed": spec.seed,
        "repeat": spec.repeat,
        "warmup": spec.warmup,
        "cache": spec.cache,
        "statement_timeout": spec.statement_timeout,
    }


def build(m: Measurements, *, host: dict[str, Any] | None = None) -> BenchReport:
    """The report of the measurements `m` (statistics, notes, metadata)."""
    from dbgym.provenance import host_facts

    spec = m.spec
    rng = np.random.default_rng(spec.seed)
    n_cfg = len(spec.configs)
    measured: list[list[float]] = [[] for _ in range(n_cfg)]
    tmats: list[list[np.ndarray[Any, np.dtype[np.float64]]]] = [[] for _ in range(n_cfg)]
    results: list[ConfigResult] = []
    server_name = {i: s.key for s in m.servers for i in s.configs}
    for i, config in enumerate(spec.configs):
        mode = spec.replay_for(config)
        runs = [r for r in m.runs if r.config == i]
        res = ConfigResult(
            name=config.name,
            description=config.description,
            summary=config.summary(),
            config=config.to_dict(),
            server=server_name.get(i, ""),
            backend=spec.instance_for(config).backend,
            replay=mode.to_dict(),
            times_s=[r.seconds for r in runs if not r.warmup],
            warmup_times_s=[r.seconds for r in runs if r.warmup],
        )
        ok = [r for r in runs if not r.warmup and r.seconds is not None]
        measured[i] = [float(r.seconds) for r in ok if r.seconds is not None]
        tmats[i] = [r.template_s for r in ok if r.template_s is not None]
        res.runs = len(ok)
        res.failed_runs = sum(1 for r in runs if not r.warmup and r.seconds is None)
        res.timed_out_runs = sum(1 for r in ok if r.timed_out)
        errors: dict[str, int] = {}
        for r in runs:
            if not r.warmup:
                for code, n in r.errors_by_sqlstate.items():
                    errors[code] = errors.get(code, 0) + n
        res.errors_by_sqlstate = errors
        summary = stats.summarize(measured[i])
        if summary is not None:
            res.median_s, res.p95_s = summary.median, summary.p95
            res.min_s, res.max_s = summary.min, summary.max
            res.mean_s, res.stdev_s, res.cv = summary.mean, summary.stdev, finite(summary.cv)
            thr = [t for t in (r.throughput for r in ok) if t is not None]
            res.throughput_per_s = float(np.median(thr)) if thr else None
            outliers, notes = stats.outlier_notes(measured[i])
            res.outlier_runs = [k + 1 for k in outliers]
            res.notes.extend(notes)
        if res.failed_runs:
            details = sorted({r.detail for r in runs if r.seconds is None and r.detail})
            res.notes.append(
                f"{res.failed_runs} measured run(s) failed: " + "; ".join(details)[:400]
            )
        if res.timed_out_runs:
            res.notes.append(
                f"{res.timed_out_runs} run(s) had statements cancelled by the statement "
                "timeout: their times are lower bounds"
            )
        if errors:
            total = sum(errors.values())
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
            res.notes.append(
                f"{total} statement(s) failed over the measured runs (SQLSTATE {codes}); "
                "failed statements count in the time but not in the throughput"
            )
        results.append(res)

    base = measured[0]
    comparisons = [i for i in range(1, n_cfg) if measured[i] and base]
    raw = {i: stats.mann_whitney_p(base, measured[i]) for i in comparisons}
    adjusted = dict(zip(comparisons, stats.holm([raw[i] for i in comparisons]), strict=True))
    if results[0].runs:
        results[0].verdict = "baseline"
        results[0].speedup = 1.0
    for i in comparisons:
        res = results[i]
        sp = stats.speedup(base, measured[i])
        low, high = stats.bootstrap_ratio_ci(
            base, measured[i], alpha=spec.alpha, resamples=spec.bootstrap, rng=rng
        )
        res.speedup, res.ci_low, res.ci_high = finite(sp), finite(low), finite(high)
        res.p_value_raw, res.p_value = raw[i], adjusted[i]
        excludes_one = (
            res.ci_low is not None
            and res.ci_high is not None
            and not res.ci_low <= 1 <= res.ci_high
        )
        res.significant = bool(adjusted[i] < spec.alpha and excludes_one)
        if res.significant:
            res.verdict = "faster" if sp > 1 else "slower"
        else:
            res.verdict = "no significant difference"
            if excludes_one:
                res.notes.append(
                    f"the interval excludes 1 but the corrected p-value {adjusted[i]:.3g} is "
                    f"not below {spec.alpha:g}: not significant"
                )
        if sp > 0 and math.isfinite(sp):
            res.slowdown_pct = (1 / sp - 1) * 100
        limit = spec.fail_if_slower
        res.regression = bool(
            limit is not None
            and res.significant
            and res.slowdown_pct is not None
            and res.slowdown_pct > limit
        )
        _template_changes(res, m, tmats[0], tmats[i])

    notes = list(m.notes)
    if m.interrupted:
        done = sum(1 for r in m.runs if not r.warmup)
        notes.insert(
            0,
            f"interrupted (Ctrl-C) after {len(m.runs)} runs ({done} measured of "
            f"{spec.repeat * n_cfg}): the statistics cover what was measured",
        )
    if n_cfg > 1:
        need = spec.alpha / max(1, len(comparisons))
        smallest = stats.min_p_value(spec.repeat, spec.repeat)
        if smallest >= need:
            notes.append(
                f"with {spec.repeat} runs per configuration the smallest possible p-value is "
                f"{smallest:.3g}, not below {need:.3g} (alpha after Holm's correction for the "
                "first comparison): no difference can be significant; use more --repeat"
            )
    if m.writes:
        notes.append(
            "the workload writes (e.g. "
            + repr((m.writing_example or "")[:80])
            + "): "
            + (
                "every run starts from a restore of its configuration's state"
                if m.restore_each_run
                else "runs follow each other without a restore (--restore never)"
            )
        )
    counts = {tuple(sorted(r.errors_by_sqlstate.items())) for r in results if r.runs}
    if len(counts) > 1:
        notes.append(
            "the configurations failed different statements (see each one's notes): "
            "their times measure different work"
        )

    templates = []
    for col, (tid, text, count) in enumerate(m.templates):
        entry: dict[str, Any] = {"id": tid, "text": text, "statements": count, "median_s": {}}
        for i, config in enumerate(spec.configs):
            if tmats[i]:
                entry["median_s"][config.name] = float(np.median(np.stack(tmats[i])[:, col]))
        templates.append(entry)

    regressions = [r.name for r in results if r.regression]
    host_info = host if host is not None else host_facts()
    servers = []
    for s in m.servers:
        facts = dict(s.facts)
        settings = facts.pop("settings", {}) or {}
        knob_names = sorted({str(k).lower() for i in s.configs for k in spec.configs[i].knobs})
        servers.append(
            {
                "name": s.key,
                "instance": s.instance,
                "configurations": [spec.configs[i].name for i in s.configs],
                **facts,
                "knobs_in_force": {k: settings.get(k) for k in knob_names},
                "settings": settings,
            }
        )
    metadata = {
        "host": host_info,
        "servers": servers,
        "cache": {"mode": spec.cache, "os_page_cache": m.cache_drop},
        "seed": spec.seed,
        "sample_seed": spec.seed if spec.sample else None,
    }
    workload = {
        "source": spec.workload.source if hasattr(spec.workload, "source") else None,
        "spec": spec.workload.to_dict(),
        "statements": m.statements,
        "templates": len(m.templates),
        "writes": m.writes,
        "restore_each_run": m.restore_each_run,
    }
    timing = {k: round(v, 6) for k, v in m.timing.items()}
    return BenchReport(
        name=spec.name or " vs ".join(c.name for c in spec.configs)[:120],
        started=m.started,
        ended=m.ended,
        duration_s=timing.get("measure_total_s", 0.0),
        interrupted=m.interrupted,
        spec=spec,
        method=method_of(spec),
        workload=workload,
        configurations=results,
        templates=templates,
        regressions=regressions,
        notes=notes,
        metadata=metadata,
        timing=timing,
    )


def _template_changes(
    res: ConfigResult,
    m: Measurements,
    base: list[np.ndarray[Any, np.dtype[np.float64]]],
    other: list[np.ndarray[Any, np.dtype[np.float64]]],
) -> None:
    if not base or not other:
        return
    b = np.median(np.stack(base), axis=0)
    o = np.median(np.stack(other), axis=0)
    changes = []
    for col, (tid, text, count) in enumerate(m.templates):
        if b[col] > 0 and o[col] > 0:
            changes.append(
                TemplateChange(
                    id=tid,
                    text=text[:300],
                    statements=count,
                    baseline_median_s=float(b[col]),
                    median_s=float(o[col]),
                    speedup=float(b[col] / o[col]),
                )
            )
    res.templates_compared = len(changes)
    res.geomean_template_speedup = stats.geometric_mean([c.speedup for c in changes])
    ranked = sorted(changes, key=lambda c: -c.speedup)
    res.top_speedups = [c for c in ranked if c.speedup > 1][:TOP_TEMPLATES]
    res.top_regressions = [c for c in reversed(ranked) if c.speedup < 1][:TOP_TEMPLATES]


# -- rendering --------------------------------------------------------------------------


def _s(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f} s"
    if v >= 1:
        return f"{v:.3g} s"
    if v >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} µs"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}x"


def _p(v: float | None) -> str:
    if v is None:
        return "-"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def speedup_text(c: ConfigResult) -> str:
    if c.verdict == "baseline":
        return "1 (baseline)"
    if c.speedup is None:
        return "-"
    return f"{_x(c.speedup)} [{_x(c.ci_low)}, {_x(c.ci_high)}]"


def _render(report: BenchReport, console: Console) -> None:
    from rich.table import Table

    spec = report.spec
    w = report.workload
    title = (
        f"dbgym bench: {w['statements']} statements, {spec.repeat} runs + {spec.warmup} "
        f"warm-up per configuration, {spec.cache} cache"
        + (" (interrupted)" if report.interrupted else "")
    )
    conf = f"{1 - spec.alpha:.0%}"
    table = Table(title=title)
    table.add_column("configuration", overflow="fold")
    table.add_column("median", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("min … max", justify="right")
    table.add_column("runs", justify="right")
    table.add_column(f"speedup [{conf} CI]", justify="right")
    table.add_column("p (Holm)", justify="right")
    table.add_column("verdict")
    any_thr = any(c.throughput_per_s for c in report.configurations)
    if any_thr:
        table.add_column("stmts/s", justify="right")
    for c in report.configurations:
        style = {"faster": "green", "slower": "red"}.get(c.verdict, "")
        verdict = c.verdict + (" [bold red](regression)[/]" if c.regression else "")
        row = [
            c.name,
            _s(c.median_s),
            _s(c.p95_s),
            f"{_s(c.min_s)} … {_s(c.max_s)}",
            f"{c.runs}" + (f" ({c.failed_runs} failed)" if c.failed_runs else ""),
            speedup_text(c),
            _p(c.p_value),
            f"[{style}]{verdict}[/]" if style else verdict,
        ]
        if any_thr:
            thr = c.throughput_per_s
            row.append("-" if thr is None else f"{thr:,.0f}" if thr >= 100 else f"{thr:.3g}")
        table.add_row(*row)
    console.print(table)
    for c in report.configurations:
        console.print(f"  [bold]{c.name}[/]: {c.summary}", highlight=False)
    for c in report.configurations[1:]:
        if not c.templates_compared:
            continue
        console.print(
            f"[bold]{c.name}[/] per template: geometric mean speedup "
            f"{_x(c.geomean_template_speedup)} over {c.templates_compared} templates"
        )
        for label, changes in (("faster", c.top_speedups[:3]), ("slower", c.top_regressions[:3])):
            for t in changes:
                text = " ".join(t.text.split())[:70]
                console.print(
                    f"  {label} {_x(t.speedup):>8}  template {t.id} ({t.statements} stmts, "
                    f"{_s(t.baseline_median_s)} -> {_s(t.median_s)}): {text}",
                    highlight=False,
                    markup=False,
                )
    for c in report.configurations:
        for note in c.notes:
            console.print(f"[yellow]note[/] ({c.name}): {note}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    m = report.method
    console.print(
        f"[dim]speedup: {m['speedup']}; interval: {m['ci']}; test: two-sided Mann-Whitney U, "
        f"{m['correction'].split(' over')[0]}-corrected; significant: {m['significant']}[/]"
    )
    tm = report.timing
    if "overhead_pct" in tm:
        console.print(
            f"[dim]time: {tm['total_s']:.1f} s, of which replays {tm['replay_s']:.1f} s; "
            f"overhead {tm['overhead_s']:.2f} s ({tm['overhead_pct']:.1f}% of the replays)[/]"
        )
    if report.regressions:
        console.print(
            f"[bold red]regression[/]: {', '.join(report.regressions)} slower than "
            f"{report.baseline.name} by more than {spec.fail_if_slower:g}%"
        )


def _plot(report: BenchReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    configs = report.configurations
    others = [c for c in configs[1:] if c.templates_compared]
    fig, axes = plt.subplots(
        1, 2, figsize=(13, max(3.5, 0.5 * len(configs) + 2.5)), width_ratios=[1, 1.2]
    )
    ax = axes[0]
    data = [[t for t in c.times_s if t is not None] for c in configs]
    positions = list(range(len(configs), 0, -1))
    shown = [(d, p) for d, p in zip(data, positions, strict=True) if d]
    if shown:
        ax.boxplot(
            [d for d, _ in shown],
            positions=[p for _, p in shown],
            vert=False,
            widths=0.5,
            showfliers=False,
        )
        rng = np.random.default_rng(0)
        for d, p in shown:
            ax.scatter(d, p + rng.uniform(-0.15, 0.15, len(d)), s=12, alpha=0.6, zorder=3)
    ax.set_yticks(positions, [c.name[:28] for c in configs])
    flat = [t for d in data for t in d if t > 0]
    if flat and max(flat) > 20 * min(flat):
        ax.set_xscale("log")
    ax.set_xlabel("workload time per run (s)")
    ax.set_title("run times per configuration")
    ax.grid(axis="x", alpha=0.3)
    ax = axes[1]
    if others:
        texts: dict[int, str] = {}
        speed: dict[tuple[str, int], float] = {}
        for c in others:
            for t in [*c.top_speedups, *c.top_regressions]:
                texts[t.id] = t.text
                speed[(c.name, t.id)] = t.speedup
        largest = {i: max(abs(math.log(v)) for (_, j), v in speed.items() if j == i) for i in texts}
        ids = sorted(texts, key=lambda i: -largest[i])[:15]
        height = 0.8 / len(others)
        for k, c in enumerate(others):
            ys = [n - k * height for n in range(len(ids), 0, -1)]
            xs = [speed.get((c.name, i), 1.0) for i in ids]
            ax.barh(ys, [x - 1 for x in xs], left=1, height=height, label=c.name[:28])
        ax.axvline(1, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(
            [n - 0.4 + height / 2 for n in range(len(ids), 0, -1)],
            [f"#{i} {' '.join(texts[i].split())[:30]}" for i in ids],
            fontsize=7,
        )
        ax.set_xlabel(f"speedup against {configs[0].name[:28]} (log scale, > 1: faster)")
        ax.set_title("largest per-template changes")
        ax.legend(fontsize=7, loc="best")
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.text(0.5, 0.5, "no per-template comparison", ha="center", va="center")
        ax.set_axis_off()
    fig.suptitle(report.name[:100])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
.faster{color:#080;font-weight:bold} .slower{color:#b00;font-weight:bold}
.note{color:#850} code{font-size:12px} img{max-width:100%}
"""


def _html(report: BenchReport) -> str:
    e = html.escape
    png = base64.b64encode(report.png_bytes()).decode("ascii")
    spec = report.spec
    conf = f"{1 - spec.alpha:.0%}"
    rows = []
    for c in report.configurations:
        cls = c.verdict if c.verdict in ("faster", "slower") else ""
        rows.append(
            "<tr>"
            f"<td><b>{e(c.name)}</b><br><small>{e(c.summary)}</small></td>"
            f"<td class=n>{e(_s(c.median_s))}</td><td class=n>{e(_s(c.p95_s))}</td>"
            f"<td class=n>{e(_s(c.min_s))} … {e(_s(c.max_s))}</td>"
            f"<td class=n>{c.runs}</td><td class=n>{e(speedup_text(c))}</td>"
            f"<td class=n>{e(_p(c.p_value))}</td>"
            f"<td class='{cls}'>{e(c.verdict)}{' (regression)' if c.regression else ''}</td>"
            "</tr>"
        )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>dbgym bench: {e(report.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>dbgym bench: {e(report.name)}</h1>",
        f"<p>{report.workload['statements']} statements ({report.workload['templates']} "
        f"templates) from <code>{e(str(report.workload.get('source')))}</code>; "
        f"{spec.repeat} measured runs and {spec.warmup} warm-up per configuration, "
        f"interleaved; {e(spec.cache)} cache. Started {e(report.started)}."
        + (" <b>Interrupted</b>: partial results." if report.interrupted else "")
        + "</p>",
        "<table><tr><th>configuration</th><th>median</th><th>p95</th><th>min … max</th>"
        f"<th>runs</th><th>speedup [{conf} CI]</th><th>p (Holm)</th><th>verdict</th></tr>",
        *rows,
        "</table>",
        f"<img alt='run times and per-template speedups' src='data:image/png;base64,{png}'>",
    ]
    for c in report.configurations[1:]:
        if not c.templates_compared:
            continue
        parts.append(
            f"<h3>{e(c.name)}: per template (geometric mean speedup "
            f"{e(_x(c.geomean_template_speedup))} over {c.templates_compared} templates)</h3>"
        )
        parts.append(
            "<table><tr><th></th><th>template</th><th>statements</th><th>baseline</th>"
            "<th>this</th><th>speedup</th></tr>"
        )
        for label, changes in (("faster", c.top_speedups), ("slower", c.top_regressions)):
            for t in changes:
                parts.append(
                    f"<tr><td class='{label}'>{label}</td><td><code>{e(t.text[:200])}</code>"
                    f" (#{t.id})</td><td class=n>{t.statements}</td>"
                    f"<td class=n>{e(_s(t.baseline_median_s))}</td>"
                    f"<td class=n>{e(_s(t.median_s))}</td><td class=n>{e(_x(t.speedup))}</td></tr>"
                )
        parts.append("</table>")
    notes = [f"{c.name}: {n}" for c in report.configurations for n in c.notes] + report.notes
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f"<li class=note>{e(n)}</li>" for n in notes)
        parts.append("</ul>")
    parts.append("<h2>Method</h2><table>")
    for k, v in report.method.items():
        parts.append(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>")
    parts.append("</table><h2>Machine and versions</h2><table>")
    host = report.metadata.get("host", {})
    for k, v in host.items():
        shown = json.dumps(v) if isinstance(v, dict) else str(v)
        parts.append(f"<tr><th>{e(k)}</th><td>{e(shown)}</td></tr>")
    for s in report.metadata.get("servers", []):
        what = {
            k: s.get(k)
            for k in ("backend", "version", "image", "image_id", "server_binary_sha256")
            if s.get(k) is not None
        }
        what["configurations"] = ", ".join(s.get("configurations", []))
        what["knobs in force"] = json.dumps(s.get("knobs_in_force", {}))
        parts.append(
            f"<tr><th>{e(s['name'])}</th><td>"
            + "<br>".join(f"{e(k)}: {e(str(v))}" for k, v in what.items())
            + "</td></tr>"
        )
    cache = report.metadata.get("cache", {})
    parts.append(f"<tr><th>OS page cache</th><td>{e(str(cache.get('os_page_cache')))}</td></tr>")
    parts.append("</table><h2>Timing</h2><table>")
    for k, v in report.timing.items():
        parts.append(f"<tr><th>{e(k)}</th><td class=n>{v:.3f}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
