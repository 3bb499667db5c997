"""SimulationExporter round trips: a user-defined simulation type in a module of its own
(off the child's import path) and one defined in a script run as __main__, each run by a
real child process; what is recorded (module, qualname, file; nothing pickled)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbgym.errors import InvalidArgumentError
from dbgym.project.exporter import SimulationExporter, exported_types, load_exported
from dbgym.project.manager import ProjectManager
from dbgym.project.registry import SimulationRegistry, script_module_name
from dbgym.project.simulation import Simulation, SimulationContext
from dbgym.project.tracker import SimulationTracker

ROOT = Path(__file__).resolve().parent.parent

USER_MODULE = """
from __future__ import annotations

import os

from dbgym.project.simulation import Simulation, SimulationContext


class Greeter(Simulation):
    def run(self, ctx: SimulationContext) -> None:
        who = self.config.kwargs_dict().get("who", "world")
        ctx.post(f"hello {who} from {__name__}")
        ctx.record_result({"module": __name__, "pid": os.getpid()})
"""

USER_SCRIPT = """
from __future__ import annotations

import json
import sys

from dbgym.project.exporter import SimulationExporter
from dbgym.project.manager import ProjectManager
from dbgym.project.simulation import Simulation, SimulationContext
from dbgym.project.tracker import SimulationTracker

MAIN_RAN = []


class ScriptSim(Simulation):
    def run(self, ctx: SimulationContext) -> None:
        ctx.post(f"script type loaded as {__name__}")
        ctx.record_result({"module": __name__, "main_ran_here": bool(MAIN_RAN)})


if __name__ == "__main__":
    MAIN_RAN.append(1)
    project = ProjectManager(sys.argv[1])
    SimulationExporter.prepare_for_export("script-sim", ScriptSim)
    SimulationExporter.export_sims(project)
    with SimulationTracker(project) as tracker:
        sim_id = tracker.start_sim("script-sim", kwargs={"n": 1})
        tracker.join(timeout=120)
    print(json.dumps({"sim_id": sim_id}))
"""

UNGUARDED_SCRIPT = """
from dbgym.project.manager import ProjectManager
from dbgym.project.simulation import Simulation, SimulationContext
from dbgym.project.exporter import SimulationExporter
from dbgym.project.tracker import SimulationTracker
import sys


class Loose(Simulation):
    def run(self, ctx: SimulationContext) -> None:
        ctx.post("ran")


project = ProjectManager(sys.argv[1] if len(sys.argv) > 1 else ".")
SimulationExporter.prepare_for_export("loose", Loose)
SimulationExporter.export_sims(project)
with SimulationTracker(project) as tracker:
    sid = tracker.start_sim("loose")
    tracker.join(timeout=120)
print(sid)
"""


@pytest.fixture
def project(tmp_path: Path) -> ProjectManager:
    return ProjectManager(tmp_path / "proj")


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[type[Simulation]]:
    """A module `usersims_h2` in a directory only this process has on sys.path."""
    src = tmp_path / "userpkg"
    src.mkdir()
    (src / "usersims_h2.py").write_text(USER_MODULE)
    sys.path.insert(0, str(src))
    try:
        module = importlib.import_module("usersims_h2")
        cls = module.Greeter
        assert isinstance(cls, type) and issubclass(cls, Simulation)
        yield cls
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("usersims_h2", None)
        SimulationRegistry.unregister("greeter")


def test_a_type_in_a_separate_module_round_trips(
    project: ProjectManager, user_module: type[Simulation], tmp_path: Path
) -> None:
    location = SimulationExporter.prepare_for_export("greeter", user_module)
    assert (location.module, location.qualname) == ("usersims_h2", "Greeter")
    assert SimulationExporter.export_sims(project) == ["greeter"]
    assert SimulationExporter.pending() == {}
    calls = project.records.api_calls("exporter.export_sims")
    assert len(calls) == 1 and calls[0]["code"] == 0
    recorded = exported_types(project)["greeter"]
    assert recorded == {
        "module": "usersims_h2",
        "qualname": "Greeter",
        "path": str(tmp_path / "userpkg" / "usersims_h2.py"),
    }
    # a child process, whose sys.path lacks userpkg/, imports it from the recorded file
    with SimulationTracker(project) as tracker:
        sim_id = tracker.start_sim("greeter", kwargs={"who": "child"})
        assert tracker.wait(sim_id, timeout=60)
    row = project.records.get(sim_id)
    assert row.state == "done", project.records.statuses(sim_id)
    assert row.result is not None and row.result["module"] == "usersims_h2"
    assert "hello child from usersims_h2" in [s.details for s in project.records.statuses(sim_id)]
    assert (row.sim_type_name, row.sim_module_name) == ("Greeter", "usersims_h2")
    # another process (a fresh registry) finds it through the project too
    SimulationRegistry.unregister("greeter")
    assert "greeter" in load_exported(project)
    assert SimulationRegistry.location("greeter").target == "usersims_h2:Greeter"


def test_a_type_defined_in_a_script_run_as_main_round_trips(
    project: ProjectManager, tmp_path: Path
) -> None:
    script = tmp_path / "my_experiment.py"
    script.write_text(USER_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(project.project_folder())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    import json

    sim_id = json.loads(done.stdout.splitlines()[-1])["sim_id"]
    row = project.records.get(sim_id)
    assert row.state == "done", project.records.statuses(sim_id)
    assert (row.sim_type_name, row.sim_module_name) == ("ScriptSim", "__main__")
    # the child loaded the script under a name of its own; its __main__ part did not run
    name = script_module_name(script)
    assert row.result == {"module": name, "main_ran_here": False}
    assert exported_types(project)["script-sim"] == {
        "module": "__main__",
        "qualname": "ScriptSim",
        "path": str(script.resolve()),
    }


def test_a_script_that_starts_simulations_at_import_is_refused_in_the_child(
    project: ProjectManager, tmp_path: Path
) -> None:
    script = tmp_path / "loose.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(project.project_folder())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    rows = project.records.list()
    assert len(rows) == 1  # no simulation started from the child's import of the script
    row = rows[0]
    assert row.state == "failed"
    failure = [s for s in project.records.statuses(row.sim_id) if s.error_trace]
    assert failure and "if __name__ == '__main__':" in failure[-1].details


def test_what_cannot_be_exported(project: ProjectManager) -> None:
    def local_factory() -> type[Simulation]:
        class Local(Simulation):
            def run(self, ctx: SimulationContext) -> None:
                pass

        return Local

    with pytest.raises(InvalidArgumentError, match="cannot be imported by a child"):
        SimulationExporter.prepare_for_export("local", local_factory())
    with pytest.raises(InvalidArgumentError, match="cannot be imported by a child"):
        SimulationExporter.prepare_for_export("lam", lambda cfg: Simulation(cfg))
    with pytest.raises(InvalidArgumentError, match="built in"):
        SimulationExporter.prepare_for_export("dbgym-run", Simulation)
    assert SimulationExporter.export_sims(project) == []
    assert exported_types(project) == {}


def test_nothing_is_written_outside_the_project(
    project: ProjectManager, user_module: type[Simulation]
) -> None:
    import site

    roots = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    before = {p: sorted(q.name for q in p.iterdir()) for p in roots}
    SimulationExporter.prepare_for_export("greeter", user_module)
    SimulationExporter.export_sims(project)
    assert {p: sorted(q.name for q in p.iterdir()) for p in roots} == before
    files = sorted(
        str(p.relative_to(project.project_folder()))
        for p in Path(project.project_folder()).rglob("*")
        if p.is_file()
    )
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]
