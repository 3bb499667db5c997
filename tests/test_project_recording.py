"""The training-data format (issue 11): RecordEpisodes on a real dbgym estimate-mode
environment and on CartPole, the Parquet tables read back with pyarrow, pandas and
polars, the Minari dataset read by minari, load_dataset's numpy arrays, and crash safety
(a recording process killed with SIGKILL loses at most about a second of steps)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from gymnasium import spaces

import dbgym  # noqa: F401 (registers the dbgym/ ids)
from dbgym.errors import InvalidArgumentError
from dbgym.plans.featurize import featurize
from dbgym.project.data_schema import META_TABLE, META_VERSION, SCHEMA_VERSION
from dbgym.project.dataset import read_recordings
from dbgym.project.recording import (
    RecordEpisodes,
    RecordingError,
    build_minari,
    part_files,
    template_id,
)
from tests.env_fixtures import tpch_gym_spec

ROOT = Path(__file__).resolve().parent.parent


def _files(calls: list[tuple[str, str, int, int]], kind: str) -> list[tuple[str, int]]:
    return [(p, n) for k, p, n, _ in calls if k == kind]


# -- a plain gymnasium environment -----------------------------------------------------
def test_cartpole_recorded_read_back_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sims" / "cart"
    calls: list[tuple[str, str, int, int]] = []
    env = RecordEpisodes(
        gym.make("CartPole-v1"),
        folder,
        flush_interval=0.05,
        on_file=lambda *a: calls.append(a),
        dataset_id="dbgym/cartpole-v0",
    )
    seen_obs: list[list[np.ndarray]] = []
    seen_act: list[list[int]] = []
    seen_rew: list[list[float]] = []
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        seen_obs.append([obs.copy()])
        seen_act.append([])
        seen_rew.append([])
        env.action_space.seed(ep)
        done = False
        while not done:
            a = env.action_space.sample()
            obs, r, term, trunc, _ = env.step(a)
            seen_obs[-1].append(obs.copy())
            seen_act[-1].append(int(a))
            seen_rew[-1].append(float(r))
            done = term or trunc
            time.sleep(0.001)
    env.close()
    n_steps = sum(len(a) for a in seen_act)

    # on_file saw recording.json, every part with its rows, and the Minari dataset
    assert calls[0] == ("recording", "recording.json", 0, SCHEMA_VERSION)
    steps_parts = _files(calls, "steps")
    assert len(steps_parts) >= 2, "50 ms flushes over the run: several parts"
    assert sum(n for _, n in steps_parts) == n_steps + 3
    assert sorted(p for p, _ in steps_parts) == [
        p.relative_to(folder).as_posix() for p in part_files(folder, "steps")
    ]
    assert _files(calls, "minari") == [("minari/dbgym/cartpole-v0", n_steps)]
    assert not _files(calls, "templates") and not _files(calls, "plans")

    # Parquet: versioned, readable by pyarrow, pandas and polars
    first = pq.read_table(part_files(folder, "steps")[0])
    assert first.schema.metadata[META_TABLE] == b"steps"
    assert first.schema.metadata[META_VERSION] == str(SCHEMA_VERSION).encode()
    frame = pd.read_parquet(folder / "steps")
    assert len(frame) == n_steps + 3
    assert frame["reward"].sum() == pytest.approx(sum(map(sum, seen_rew)))
    resets = frame[frame["step"] == 0]
    assert list(resets["seed"]) == [0, 1, 2] and resets["action"].isna().all()
    assert frame["value"].isna().all() and frame["config"].isna().all()
    polars_frame = pl.read_parquet(folder / "steps" / "*.parquet")
    assert polars_frame.height == n_steps + 3
    assert polars_frame.filter(pl.col("step") > 0)["action"].to_list()[:3] == [
        json.dumps(a) for a in seen_act[0][:3]
    ]

    # Minari: minari.load_dataset reads it from the recording's minari/ folder
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(folder / "minari"))
    data = minari.load_dataset("dbgym/cartpole-v0")
    assert data.total_episodes == 3 and data.total_steps == n_steps
    for ep, episode in enumerate(data.iterate_episodes()):
        np.testing.assert_array_equal(episode.observations, np.stack(seen_obs[ep]))
        np.testing.assert_array_equal(episode.actions, seen_act[ep])
        np.testing.assert_array_equal(episode.rewards, seen_rew[ep])
        assert bool(episode.terminations[-1] or episode.truncations[-1])
        assert np.isnan(episode.infos["value"]).all()
    assert data.recover_environment().spec.id == "CartPole-v1"

    # load_dataset's numpy view: transitions line up with what the loop saw
    ds = read_recordings({"cart": folder})
    t = ds.transitions()
    assert len(t) == n_steps and t.observations.shape == (n_steps, 4)
    assert t.actions.shape == (n_steps, 2)  # Discrete(2) flattened: one-hot
    np.testing.assert_array_equal(t.actions.argmax(axis=1), [a for ep in seen_act for a in ep])
    np.testing.assert_array_equal(t.observations[0], seen_obs[0][0])
    np.testing.assert_array_equal(t.next_observations[0], seen_obs[0][1])
    np.testing.assert_array_equal(t.rewards, [r for ep in seen_rew for r in ep])
    assert ds.observations().shape == (n_steps + 3, 4)


class _FaultyInfoEnv(gym.Env[np.ndarray, np.int64]):
    """A small environment whose info looks like an execute-mode dbgym step with timeouts
    and failed statements (what the estimate-mode environment never produces)."""

    observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {"baseline": 2.0, "plans": [None, '[{"Plan": {}}]']}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        info = {
            "time": 3.5,
            "value": 3.5,
            "baseline": 2.0,
            "per_template": {0: 0.25, 1: 1.5},
            "timeouts": {1: 2, -1: 1},
            "statement_errors": {"42P01": 3},
            "config": {"knobs": {"work_mem": "64MB"}},
            "restarted": True,
            "error": "measure: server crashed (recovered: previous configuration)",
            "plans": [None, None],
            "notes": ["a note"],
            "weird": {(1, 2): np.float32(0.5)},
        }
        return np.full(2, 0.5, np.float32), -1.0, True, False, info


def test_dbgym_shaped_info_lands_in_its_columns(tmp_path: Path) -> None:
    env = RecordEpisodes(_FaultyInfoEnv(), tmp_path / "f", dataset_id="faulty-v0")
    env.reset(seed=3)
    env.step(2)
    env.close()
    ds = read_recordings([tmp_path / "f"])
    steps = ds.to_pandas("steps").set_index("step")
    assert steps.loc[1, "value"] == 3.5 and steps.loc[1, "unit"] == "s"
    assert steps.loc[0, "baseline"] == 2.0 and steps.loc[1, "restart"]
    assert steps.loc[1, "error"].startswith("measure: server crashed")
    assert json.loads(steps.loc[1, "config"]) == {"knobs": {"work_mem": "64MB"}}
    rest = json.loads(steps.loc[1, "info"])
    assert rest == {"notes": ["a note"], "weird": {"(1, 2)": 0.5}}
    tpl = ds.to_polars("templates").sort(["slot"], nulls_last=True)
    assert tpl["slot"].to_list() == [-1, 0, 1, None]
    assert tpl["latency"].to_list() == [None, 0.25, 1.5, None]
    assert tpl["timeouts"].to_list() == [1, 0, 2, 0]
    assert tpl["timed_out"].to_list() == [True, False, True, False]
    assert tpl["sqlstate"].to_list() == ["57014", None, "57014", "42P01"]
    assert tpl["errors"].to_list() == [0, 0, 0, 3]
    plans = ds.to_pandas("plans")
    assert list(zip(plans["step"], plans["slot"], strict=True)) == [(0, 1)]
    # Minari's infos: the same per-step scalars for every environment
    episode = next(iter(ds.minari(ds.sim_ids[0]).iterate_episodes()))
    assert list(episode.infos["value"][1:]) == [3.5] and np.isnan(episode.infos["value"][0])
    assert list(episode.infos["failed"]) == [False, True]


def test_wrong_arguments_and_failures_are_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="flush_interval"):
        RecordEpisodes(gym.make("CartPole-v1"), tmp_path / "a", flush_interval=0)
    with pytest.raises(InvalidArgumentError, match="not a Minari dataset id"):
        RecordEpisodes(gym.make("CartPole-v1"), tmp_path / "a", dataset_id="no version")
    # a second run into the same folder continues its episode numbers
    for _ in range(2):
        env = RecordEpisodes(gym.make("CartPole-v1"), tmp_path / "b")
        env.reset(seed=1)
        env.step(0)
        env.close()
    steps = read_recordings([tmp_path / "b"]).to_pandas()
    assert sorted(set(steps["episode"])) == [0, 1]
    assert read_recordings([tmp_path / "b"]).minari("b").total_episodes == 2
    # ...but another environment's spaces are refused
    with pytest.raises(InvalidArgumentError, match="another observation_space"):
        RecordEpisodes(gym.make("MountainCar-v0"), tmp_path / "b")

    def refuse(kind: str, relpath: str, rows: int, version: int) -> None:
        if kind == "steps":
            raise OSError("the index is gone")

    env = RecordEpisodes(
        gym.make("CartPole-v1"), tmp_path / "c", flush_interval=0.01, on_file=refuse
    )
    env.reset(seed=1)
    deadline = time.monotonic() + 10
    with pytest.raises(RecordingError, match="the index is gone"):
        while time.monotonic() < deadline:
            env.step(0)
            time.sleep(0.005)
    with pytest.raises(RecordingError, match="the index is gone"):
        env.close()


def test_load_dataset_from_a_project(tmp_path: Path) -> None:
    """Simulations of a real project database, found by id prefix or by key and state,
    their parts indexed through on_file; a crashed run's Minari view rebuilt on demand."""
    from dbgym.project.dataset import load_dataset
    from dbgym.project.manager import ProjectManager
    from dbgym.project.records import StatusCode, StatusSubcode

    project = ProjectManager(tmp_path / "proj", reconcile=False)
    records = project.records
    ids = []
    for n, key in enumerate(["cart", "cart", "other"]):
        sim_id = records.create_simulation(
            name=f"sim{n}",
            sim_key=key,
            config=None,
            start_kwargs=None,
            sim_type_name="T",
            sim_module_name="m",
        )
        records.mark_started(sim_id, pid=os.getpid(), pid_start_time=None, host="here")
        if key == "cart":

            def index(kind: str, relpath: str, rows: int, version: int, sid: str = sim_id) -> None:
                records.add_file(sid, kind, relpath, rows, version)

            env = RecordEpisodes(
                gym.make("CartPole-v1"), project.sim_folder(sim_id, create=True), on_file=index
            )
            env.reset(seed=n)
            for _ in range(5 + n):
                env.step(1)
            env.close()
        ok = (StatusCode.SUCCESS, StatusSubcode.NONE, "done", None)
        records.finish(sim_id, status=ok)
        ids.append(sim_id)
    kinds = {f["kind"]: f["rows"] for f in records.files(ids[0])}
    assert kinds == {"recording": 0, "steps": 6, "minari": 5}

    ds = load_dataset(project, key="cart", state="done")
    assert ds.sim_ids == ids[:2]
    assert ds.steps.column_names[0] == "sim_id"
    counts = ds.to_polars().group_by("sim_id").len()
    assert dict(zip(counts["sim_id"], counts["len"], strict=True)) == {ids[0]: 6, ids[1]: 7}
    assert len(ds.transitions()) == 11
    # the third simulation has no recording: skipped by a filter, refused by its id
    assert load_dataset(project).sim_ids == ids[:2]
    with pytest.raises(InvalidArgumentError, match="has no recording"):
        load_dataset(project, [ids[2]])
    by_prefix = load_dataset(str(tmp_path / "proj"), [ids[1][:8]])
    assert by_prefix.sim_ids == [ids[1]] and by_prefix.steps.num_rows == 7
    assert load_dataset(project, [ids[1]], state="failed").sim_ids == []
    # a run that died before close() has no Minari dataset: built from the parts on demand
    shutil.rmtree(project.sim_folder(ids[0]) / "minari")
    assert ds.minari(ids[0]).total_steps == 5
    project.close()


# -- a real dbgym environment ----------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """DbGym-v0 (knobs, indexes, hints; estimate mode) recorded for 2 episodes of 4 steps,
    with what the loop saw."""
    folder = tmp_path_factory.mktemp("sims") / "sim-estimate"
    inner = gym.make(
        "dbgym/DbGym-v0",
        gym_spec=tpch_gym_spec(),
        evaluation="estimate",
        max_episode_steps=4,
        max_plan_nodes=32,
    )
    calls: list[tuple[str, str, int, int]] = []
    env = RecordEpisodes(inner, folder, on_file=lambda *a: calls.append(a))
    seen: dict[str, Any] = {"obs": [], "act": [], "infos": [], "rewards": []}
    try:
        for ep in range(2):
            obs, info = env.reset(seed=ep)
            seen["obs"].append(obs)
            seen["infos"].append(info)
            env.action_space.seed(ep)
            done = False
            while not done:
                action = env.action_space.sample()
                obs, reward, term, trunc, info = env.step(action)
                seen["obs"].append(obs)
                seen["act"].append(action)
                seen["infos"].append(info)
                seen["rewards"].append(float(reward))
                done = term or trunc
        catalog = inner.unwrapped.plan_catalog  # type: ignore[attr-defined]
        slots = inner.unwrapped.slots.slots  # type: ignore[attr-defined]
        spaces_ = (env.observation_space, env.action_space)
    finally:
        env.close()
    yield {
        "folder": folder,
        "calls": calls,
        "seen": seen,
        "catalog": catalog,
        "slots": slots,
        "spaces": spaces_,
        "dataset_id": env.dataset_id,
    }


def test_dbgym_steps_templates_plans_tables(recorded: dict[str, Any]) -> None:
    folder, seen = recorded["folder"], recorded["seen"]
    ds = read_recordings({"sim-estimate": folder})
    steps = ds.to_pandas("steps")
    assert len(steps) == 10  # 2 resets + 8 steps
    moves = steps[steps["step"] > 0]
    infos = [i for i in seen["infos"] if "value" in i]
    assert list(moves["unit"]) == ["cost"] * 8
    np.testing.assert_allclose(moves["value"], [i["value"] for i in infos])
    np.testing.assert_allclose(moves["baseline"], [i["baseline"] for i in infos])
    np.testing.assert_allclose(moves["reward"], seen["rewards"])
    assert [json.loads(c) for c in moves["config"]] == [i["config"] for i in infos]
    first = json.loads(moves["action"].iloc[0])
    assert sorted(first) == ["hints", "indexes", "knobs"]
    assert first["indexes"] == seen["act"][0]["indexes"].tolist()
    assert moves["error"].isna().all() and not moves["restart"].any()
    assert "phases" in json.loads(moves["info"].iloc[0])
    # templates: one row per slot each step reported, with the template's stable id
    tpl = ds.to_polars("templates")
    assert tpl.height == sum(len(i["per_template"]) for i in infos)
    slots = recorded["slots"]
    row = tpl.row(0, named=True)
    assert row["latency"] == pytest.approx(infos[0]["per_template"][row["slot"]])
    assert row["template_id"] == template_id(slots[row["slot"]].text)
    assert ds.templates_text()[row["template_id"]] == slots[row["slot"]].text
    # plans: every slot's EXPLAIN JSON of every reset and step, raw
    plans = ds.to_pandas("plans")
    assert len(plans) == sum(sum(p is not None for p in i["plans"]) for i in seen["infos"])
    last = plans[(plans["episode"] == 1) & (plans["step"] == 4)].sort_values("slot")
    assert list(last["plan"]) == [p for p in seen["infos"][-1]["plans"] if p is not None]
    # indexed through on_file, part by part
    kinds = {k for k, *_ in recorded["calls"]}
    assert kinds == {"recording", "steps", "templates", "plans", "minari"}


def test_dbgym_minari_dataset(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, seen = recorded["folder"], recorded["seen"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(folder / "minari"))
    data = minari.load_dataset(recorded["dataset_id"])
    obs_space, act_space = recorded["spaces"]
    assert data.observation_space == obs_space and data.action_space == act_space
    assert data.total_episodes == 2 and data.total_steps == 8
    episodes = list(data.iterate_episodes())
    for ep, episode in enumerate(episodes):
        for key, space in obs_space.spaces.items():
            want = np.stack([o[key] for o in seen["obs"][ep * 5 : ep * 5 + 5]])
            np.testing.assert_array_equal(episode.observations[key], want)
            assert want.shape[1:] == space.shape
        for key in act_space.spaces:
            want = np.stack([a[key] for a in seen["act"][ep * 4 : ep * 4 + 4]])
            np.testing.assert_array_equal(episode.actions[key], want)
        np.testing.assert_allclose(episode.rewards, seen["rewards"][ep * 4 : ep * 4 + 4])
        assert episode.truncations[-1] and not episode.terminations.any()
    # the same dataset, rebuilt from the Parquet parts (as for a run that died)
    path, steps = build_minari(folder, dataset_id="rebuilt-v0") or (None, 0)
    assert steps == 8 and path == folder / "minari" / "rebuilt-v0"
    again = list(minari.load_dataset("rebuilt-v0").iterate_episodes())
    np.testing.assert_array_equal(
        again[1].observations["plan_features"], episodes[1].observations["plan_features"]
    )


def test_dbgym_numpy_arrays(recorded: dict[str, Any]) -> None:
    folder, seen = recorded["folder"], recorded["seen"]
    obs_space, act_space = recorded["spaces"]
    ds = read_recordings({"sim-estimate": folder})
    t = ds.transitions()
    assert len(t) == 8
    assert t.observations.shape == (8, spaces.flatdim(obs_space))
    assert t.actions.shape == (8, spaces.flatdim(act_space))
    assert t.observations.dtype == np.float32
    np.testing.assert_array_equal(t.next_observations[0], spaces.flatten(obs_space, seen["obs"][1]))
    back = spaces.unflatten(act_space, t.actions[0])
    np.testing.assert_array_equal(back["hints"], seen["act"][0]["hints"])
    assert list(t.episode) == [0] * 4 + [1] * 4 and list(t.step) == [1, 2, 3, 4] * 2
    # plans featurized with the environment's own catalog, each with its measured cost
    pf = ds.plan_features()
    infos = [i for i in seen["infos"] if "value" in i]
    assert pf.unit == "cost" and len(pf) == pf.batch.n_plans
    assert len(pf) == sum(len(i["per_template"]) for i in infos)
    k = 5
    info = infos[(pf.episode[k]) * 4 + pf.step[k] - 1]
    assert pf.latency[k] == pytest.approx(info["per_template"][pf.slot[k]])
    alone = featurize(info["plans"][pf.slot[k]], catalog=recorded["catalog"])
    np.testing.assert_array_equal(pf.batch.plan(k).features, alone.features)
    assert not np.isnan(pf.latency).any()
    everything = ds.plan_features(measured_only=False)
    assert len(everything) == len(ds.plans) > len(pf)  # the resets' plans have no latency


# -- crash safety ----------------------------------------------------------------------
CHILD = """
import sys, time, gymnasium as gym
from dbgym.project.recording import RecordEpisodes
env = RecordEpisodes(gym.make("CartPole-v1"), sys.argv[1], flush_interval=1.0)
episode = -1
while True:
    env.reset(seed=episode + 1)
    episode += 1
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        print(episode, time.time(), flush=True)
        done = term or trunc
        time.sleep(0.004)
"""


def test_sigkill_mid_run_loses_at_most_about_a_second(tmp_path: Path) -> None:
    """A child records CartPole (~200 steps/s) and is killed with SIGKILL at a random
    moment, three times: every step it completed more than 1.25 s before the kill is
    readable, the parts are whole, and the Minari dataset rebuilds from them."""
    rng = np.random.default_rng(11)
    lost_s: list[float] = []
    for round_ in range(3):
        folder = tmp_path / f"crash{round_}"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        done: list[tuple[int, float]] = []  # (episode, completion time) per step
        run_for = 2.2 + float(rng.random())  # after the first step
        kill_at = float("inf")
        try:
            assert child.stdout is not None
            for line in child.stdout:
                ep, t = line.split()
                done.append((int(ep), float(t)))
                if len(done) == 1:
                    kill_at = time.time() + run_for
                if time.time() >= kill_at:
                    break
        finally:
            killed = time.time()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        assert child.stdout is not None
        for line in child.stdout.read().splitlines():  # printed before the kill
            ep, t = line.split()
            done.append((int(ep), float(t)))
        child.stdout.close()
        ds = read_recordings([folder])
        steps = ds.to_pandas()
        moves = steps[steps["step"] > 0]
        # the k-th printed step is the k-th recorded step (recorded in order)
        on_disk = len(moves)
        must = sum(1 for _, t in done if t < killed - 1.25)
        assert on_disk >= must, f"round {round_}: {on_disk} steps readable, {must} expected"
        assert on_disk <= len(done) + 1
        newest_kept = done[on_disk - 1][1] if on_disk else done[0][1]
        lost_s.append(killed - newest_kept)
        assert must > 100, "the run lasted long enough for a few flushes"
        leftovers = [p.name for p in (folder / "steps").iterdir() if p.name.startswith(".")]
        assert all(p.endswith(".tmp") for p in leftovers)
        built = build_minari(folder)
        assert built is not None and built[1] == on_disk
        assert read_recordings([folder]).minari(folder.name).total_steps == built[1]
    print(
        f"\nSIGKILL mid-run: the newest readable step completed {max(lost_s):.2f} s before "
        f"the kill at most (rounds: {', '.join(f'{x:.2f}' for x in lost_s)} s; flush 1 s)"
    )
    assert max(lost_s) <= 1.5
