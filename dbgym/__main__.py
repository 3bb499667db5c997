from __future__ import annotations

from dbgym.cli import main

main()
