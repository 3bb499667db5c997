"""`dbgym run`, the README's main job: a model on the environment for N steps, a summary
table with the best configuration, JSON output, RunSpec files, clear errors, and Ctrl-C
stopping cleanly with the summary so far and no server left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import minari
import pytest

from dbgym.dbms import instance_registry
from dbgym.envs.spec import EnvSpec
from dbgym.project.dataset import load_dataset
from dbgym.project.manager import ProjectManager
from dbgym.runner.run import RunSpec, run
from tests.env_fixtures import tpch_gym_spec

DBGYM = [sys.executable, "-m", "dbgym"]


def test_run_prints_the_best_configuration_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [*DBGYM, "run", "--benchmark", "tpch", "--scale", "0.01", "--model", "random",
         "--steps", "6", "--seed", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for word in ("baseline", "best", "improvement", "knobs", "indexes", "hints"):
        assert word in proc.stdout, proc.stdout
    data = json.loads(out.read_text())
    assert len(data["steps"]) == 6
    assert data["baseline"] > 0 and data["interrupted"] is False
    spec = RunSpec.from_dict(data["spec"])
    assert spec.steps == 6 and spec.seed == 3
    assert set(data["best_config"]) >= {"knobs", "indexes", "hints"}
    # the run is a tracked simulation: rows, environment, recorded steps, the CLI call
    project = ProjectManager(os.environ["DBGYM_PROJECT_DIR"], reconcile=False)
    (row,) = project.records.list()
    assert row.state == "done" and row.sim_key == "dbgym-run"
    assert (row.progress_done, row.progress_total) == (6, 6)
    assert row.result["best_bench_config"]["name"].startswith("best of run")
    assert row.environment["seeds"]["run"] == 3
    assert row.environment["server"]["settings"]["shared_buffers"]
    statuses = project.records.statuses(row.sim_id)
    assert statuses[0].details.startswith("started pid") and statuses[-1].code.name == "SUCCESS"
    kinds = {f["kind"] for f in project.records.files(row.sim_id)}
    assert {"steps", "templates", "plans"} <= kinds
    # its recording loads as Arrow tables and as a Minari dataset (minari's own loader)
    recorded = load_dataset(project, [row.sim_id])
    assert len(recorded.to_pandas("steps")) == 7  # the reset and six steps
    minari_root = project.sim_folder(row.sim_id) / "minari"
    (dataset_id,) = [p.name for p in minari_root.iterdir()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_root))
        (episode,) = list(minari.load_dataset(dataset_id).iterate_episodes())
    assert len(episode.rewards) == 6
    assert list(episode.rewards) == pytest.approx([s["reward"] for s in data["steps"]])
    (call,) = project.records.api_calls("cli.run")
    assert call["code"] == 0 and call["details"]["arguments"]["spec"]["steps"] == 6


def test_run_spec_in_python_estimate_mode() -> None:
    spec = RunSpec(
        gym=tpch_gym_spec(),
        env=EnvSpec(evaluation="estimate", tune=("indexes",)),
        model="random",
        model_kwargs={"seed": 1},
        steps=12,
        episode_steps=5,
    )
    seen = []
    result = run(spec, on_step=lambda rec, res: seen.append(rec.step))
    assert seen == list(range(12))
    assert {s.episode for s in result.steps} == {0, 1, 2}
    assert result.best_value is not None and result.best_value <= result.baseline * 2
    assert RunSpec.from_json(spec.to_json()) == spec


def test_run_refuses_bad_options_with_exit_code_2() -> None:
    proc = subprocess.run(
        [*DBGYM, "run", "--benchmark", "tpch", "--scale", "0.01", "--tune", "knobz"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "tune" in proc.stderr and "knobz" in proc.stderr
    proc = subprocess.run([*DBGYM, "run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--benchmark" in proc.stderr


def test_ctrl_c_stops_cleanly_with_the_summary_so_far() -> None:
    proc = subprocess.Popen(
        [*DBGYM, "run", "--benchmark", "tpch", "--scale", "0.01", "--steps", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        # the run is a tracked simulation: wait until its row shows a few steps done
        project = ProjectManager(os.environ["DBGYM_PROJECT_DIR"], reconcile=False)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            rows = project.records.list()
            if rows and (rows[-1].progress_done or 0) >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and "baseline" in stdout, stdout
    (row,) = project.records.list()
    # no server of the simulation's child process is left
    assert not [e for _, e in instance_registry.read_entries() if e.get("owner_pid") == row.pid]
    assert row.state == "cancelled" and row.result["interrupted"]
    assert project.records.statuses(row.sim_id)[-1].subcode.name == "STOPPED"
