"""`dbgym workload state build|list|clear` on a real server and a temp cache."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dbgym.cli import app


def test_build_list_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    cache = ["--cache-dir", str(tmp_path)]
    empty = runner.invoke(app, ["workload", "state", "list", *cache])
    assert empty.exit_code == 0 and "no cached states" in empty.output
    built = runner.invoke(app, ["workload", "state", "build", "pgbench", "--scale", "1", *cache])
    assert built.exit_code == 0, built.output
    listed = runner.invoke(app, ["workload", "state", "list", *cache])
    (key,) = [line.split()[0] for line in listed.output.splitlines()]
    assert key.startswith("pgbench-") and "'scale': 1" in listed.output
    again = runner.invoke(app, ["workload", "state", "build", "pgbench", "--scale", "1", *cache])
    assert again.exit_code == 0 and key in again.output
    bad = runner.invoke(app, ["workload", "state", "build", "tpcc", *cache])
    assert bad.exit_code == 2 and "error: unknown benchmark 'tpcc'" in bad.output
    missing = runner.invoke(app, ["workload", "state", "clear", "nope", *cache])
    assert missing.exit_code == 2 and "error: no such cached state: nope" in missing.output
    cleared = runner.invoke(app, ["workload", "state", "clear", "--all", *cache])
    assert cleared.exit_code == 0 and f"removed {key}" in cleared.output
    assert list(tmp_path.iterdir()) == []
