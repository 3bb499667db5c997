"""The README's Python examples run as written, against real servers, and show what they say.

Each block checks itself (it holds an `assert` on what it did), and what it prints is what
its objects hold: every `print(...)` of the block, evaluated again afterwards in the
block's namespace, appears in the captured output. A printed replay summary carries the
per-template percentiles the README promises.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import dbgym

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def top_level_prints(tree: ast.Module) -> list[ast.Call]:
    """print(...) calls run once each: statements of the block, inside `with`/`if` but not
    inside loops or functions (their arguments can be evaluated again afterwards)."""
    out: list[ast.Call] = []

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                if isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print":
                    out.append(stmt.value)
            elif isinstance(stmt, ast.With | ast.If):
                visit(stmt.body)
                if isinstance(stmt, ast.If):
                    visit(stmt.orelse)

    visit(tree.body)
    return out


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    block = BLOCKS[index]
    tree = ast.parse(block)
    assert any(isinstance(n, ast.Assert) for n in ast.walk(tree)), (
        f"README block {index} checks nothing: add an assert on what it shows"
    )
    monkeypatch.setenv("DBGYM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(tree, f"README.md python block {index}", "exec"), namespace)
    out = capsys.readouterr().out
    for call in top_level_prints(tree):
        values = [
            eval(compile(ast.Expression(a), "<print arg>", "eval"), namespace) for a in call.args
        ]
        shown = " ".join(str(v) for v in values)
        assert shown in out, f"README block {index}: {ast.unparse(call)} printed something else"
        for value in values:
            if isinstance(value, dbgym.ReplaySummary):
                assert_per_template_percentiles(value, shown)


def assert_per_template_percentiles(summary: dbgym.ReplaySummary, text: str) -> None:
    """The README says the summary shows per-template p50..p99: it does, for its top
    templates, with the summary's own figures."""
    ranked = summary.top(summary.top_templates)
    assert ranked, "a README replay that succeeded in nothing"
    for tid, st in ranked:
        line = next((x for x in text.splitlines() if x.strip().startswith(f"template {tid}:")), "")
        for name, value in (("p50", st.p50_ms), ("p95", st.p95_ms), ("p99", st.p99_ms)):
            assert f"{name} {value:.3f}" in line, (tid, line)
