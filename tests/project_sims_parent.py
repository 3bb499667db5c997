"""A tracker in a process of its own, for the parent-kill tests:

    python -m tests.project_sims_parent <project_dir> [--exit] <key>[:detached] ...

starts one simulation per argument (":detached" -> tie_to_parent=False), prints one JSON line
{"pid": its pid, "sims": [ids]} and then waits to be killed (it never joins); with --exit,
it waits until each posted a status row and exits without closing its tracker.
"""

from __future__ import annotations

import json
import os
import sys
import time

from dbgym.project.manager import ProjectManager
from dbgym.project.registry import SimulationRegistry
from dbgym.project.tracker import SimulationTracker
from tests import project_sims_fixture as fx

KEYS = {
    "t-sleeper": fx.Sleeper,
    "t-leaver": fx.Leaver,
    "t-quick": fx.Quick,
}


def main(argv: list[str]) -> None:
    project = ProjectManager(argv[0])
    for key, cls in KEYS.items():
        SimulationRegistry.register(key, cls)
    tracker = SimulationTracker(project)
    leave = "--exit" in argv[1:]
    ids = []
    for spec in [a for a in argv[1:] if a != "--exit"]:
        key, _, mode = spec.partition(":")
        ids.append(tracker.start_sim(key, tie_to_parent=mode != "detached"))
    print(json.dumps({"pid": os.getpid(), "sims": ids}), flush=True)
    while leave:
        if all(len(project.records.statuses(i)) >= 2 for i in ids):  # started, then posted
            return
        time.sleep(0.05)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1:])
