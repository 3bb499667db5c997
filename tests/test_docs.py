"""The Python examples of docs/*.md run as written against real servers (blocks marked
```python no-run are shown, not run). Each block checks what it shows with an assert."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCKS = [
    (path.name, i, block)
    for path in sorted(DOCS.glob("*.md"))
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))
]


def test_docs_have_examples() -> None:
    names = {name for name, _, _ in BLOCKS}
    assert "environment.md" in names


@pytest.mark.parametrize(("doc", "index", "block"), BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
def test_doc_example_runs(
    doc: str, index: int, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ast.parse(block)
    assert any(isinstance(n, ast.Assert) for n in ast.walk(tree)), (
        f"{doc} python block {index} checks nothing: add an assert on what it shows"
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{index}"}
    exec(compile(tree, f"{doc} python block {index}", "exec"), namespace)
