from __future__ import annotations

import subprocess
import sys

import dbgym


def test_core_extension_loads_and_matches_package_version() -> None:
    assert dbgym.core_version == dbgym.__version__


def test_cli_version_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dbgym", "version"], check=True, capture_output=True, text=True
    )
    assert f"dbgym {dbgym.__version__}" in out.stdout
