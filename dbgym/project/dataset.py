"""load_dataset: the recorded simulations of a project as Arrow tables and numpy arrays.

    ds = load_dataset(project, key="dbgym-run", state="done")
    ds.steps.to_pandas()                       # or polars.from_arrow(ds.steps)
    t = ds.transitions()                       # offline RL: (s, a, r, s', done) arrays
    pf = ds.plan_features()                    # featurized EXPLAIN plans + measured latency
    pf.batch.features, pf.latency              # a cost model's inputs and targets

Tables (schemas in dbgym.project.data_schema) are the recordings' Parquet parts
concatenated over the simulations, each row led by its `sim_id`. The parts on disk are
authoritative (a part written just before a crash is read even if its row in the project's
sim_files index was not), so a simulation killed mid-run loads with every step it
completed up to about a second before the kill.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from dbgym.errors import DbgymError, InvalidArgumentError
from dbgym.project.data_schema import (
    KINDS,
    META_VERSION,
    MINARI_DIR,
    RECORDING_FILE,
    SCHEMA_VERSION,
    binary_matrix,
    schema,
)
from dbgym.project.recording import build_minari, part_files, read_recording_meta

if TYPE_CHECKING:
    import pandas
    import polars

    from dbgym.plans.catalog import PlanCatalog
    from dbgym.plans.featurize import PlanBatch

Table = Literal["steps", "templates", "plans"]


class _Records(Protocol):
    def list(
        self, *, state: str | None = None, key: str | None = None, limit: int | None = None
    ) -> Sequence[Any]: ...

    def get(self, sim_id: str) -> Any: ...


class _Project(Protocol):
    @property
    def records(self) -> _Records: ...

    def sim_folder(self, sim_id: str, *, create: bool = False) -> Path: ...


@dataclass(frozen=True)
class Transitions:
    """One row per recorded step that follows its predecessor (the reset or the previous
    step) in the same episode: the offline-RL view as flat numpy arrays."""

    observations: NDArray[Any]  # (n, obs_size): gymnasium.spaces.flatten of s_t
    actions: NDArray[Any]  # (n, act_size): gymnasium.spaces.flatten of a_t
    rewards: NDArray[np.float64]
    next_observations: NDArray[Any]  # s_{t+1}
    terminations: NDArray[np.bool_]
    truncations: NDArray[np.bool_]
    sim_index: NDArray[np.int32]  # into Dataset.sim_ids
    episode: NDArray[np.int64]
    step: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.rewards.shape[0])


@dataclass(frozen=True)
class PlanFeatures:
    """Featurized plans (one per recorded plan row, in sim/episode/step/slot order) with the
    latency measured for that slot in that step (seconds, or planner cost per statement in
    estimate mode: `unit`)."""

    batch: PlanBatch
    latency: NDArray[np.float64]  # (plans,); NaN where not measured
    timed_out: NDArray[np.bool_]  # the slot's statements hit their timeout in that step
    unit: str | None
    sim_index: NDArray[np.int32]
    episode: NDArray[np.int64]
    step: NDArray[np.int64]
    slot: NDArray[np.int32]
    template_id: list[str | None]

    def __len__(self) -> int:
        return int(self.latency.shape[0])


class Dataset:
    """Recordings of several simulations (see the module docstring)."""

    def __init__(
        self,
        folders: Mapping[str, Path],
        recordings: Mapping[str, dict[str, Any]],
        tables: Mapping[str, pa.Table],
    ) -> None:
        self.sim_ids: list[str] = list(folders)
        self.folders: dict[str, Path] = dict(folders)
        #: recording.json of each simulation (spaces, layouts, plan catalog, templates)
        self.recordings: dict[str, dict[str, Any]] = dict(recordings)
        self.steps: pa.Table = tables["steps"]
        self.templates: pa.Table = tables["templates"]
        self.plans: pa.Table = tables["plans"]

    def __repr__(self) -> str:
        return (
            f"Dataset({len(self.sim_ids)} simulations, {self.steps.num_rows} step rows, "
            f"{self.templates.num_rows} template rows, {self.plans.num_rows} plan rows)"
        )

    def table(self, name: Table) -> pa.Table:
        if name not in KINDS:
            raise InvalidArgumentError(f"no table {name!r}: one of {', '.join(KINDS)}")
        return {"steps": self.steps, "templates": self.templates, "plans": self.plans}[name]

    def to_pandas(self, name: Table = "steps") -> pandas.DataFrame:
        return self.table(name).to_pandas()

    def to_polars(self, name: Table = "steps") -> polars.DataFrame:
        import polars

        frame = polars.from_arrow(self.table(name))
        assert isinstance(frame, polars.DataFrame)
        return frame

    def templates_text(self) -> dict[str, str]:
        """{template_id: template text} over the recordings."""
        out: dict[str, str] = {}
        for meta in self.recordings.values():
            for t in meta.get("templates") or []:
                if t.get("template_id") and isinstance(t.get("text"), str):
                    out[t["template_id"]] = t["text"]
        return out

    # -- numpy -------------------------------------------------------------------------
    def _layout(self, what: Literal["obs", "act"]) -> tuple[np.dtype[Any], int]:
        found = {
            (m.get(f"{what}_dtype"), m.get(f"{what}_size")): sim
            for sim, m in self.recordings.items()
        }
        if len(found) > 1:
            raise InvalidArgumentError(
                f"the simulations flatten their {'observations' if what == 'obs' else 'actions'}"
                f" differently ({', '.join(f'{s}: {k}' for k, s in found.items())}): "
                "load those of one environment together"
            )
        if not found:
            return np.dtype(np.float32), 0
        (dtype, size), sim = next(iter(found.items()))
        if dtype is None or size is None:
            raise InvalidArgumentError(
                f"simulation {sim}'s {what} space cannot be flattened: see its recording.json"
            )
        return np.dtype(dtype), int(size)

    def observations(self) -> NDArray[Any]:
        """(rows of `steps`, obs_size): each row's observation, flattened as
        gymnasium.spaces.flatten does (unflatten with the recording's observation space)."""
        dtype, size = self._layout("obs")
        return binary_matrix(self.steps.column("obs"), dtype, size)

    def transitions(self) -> Transitions:
        """(s, a, r, s', terminated, truncated) of every recorded step whose previous row
        (the reset or the previous step) was recorded too."""
        odt, osize = self._layout("obs")
        adt, asize = self._layout("act")
        index = {s: i for i, s in enumerate(self.sim_ids)}
        t = self.steps.sort_by(
            [("sim_id", "ascending"), ("episode", "ascending"), ("step", "ascending")]
        )
        sim = np.array([index[s] for s in t.column("sim_id").to_pylist()], dtype=np.int32)
        episode = t.column("episode").to_numpy()
        step = t.column("step").to_numpy()
        follows = np.zeros(len(step), dtype=bool)
        if len(step) > 1:
            follows[1:] = (
                (sim[1:] == sim[:-1]) & (episode[1:] == episode[:-1]) & (step[1:] == step[:-1] + 1)
            )
        follows &= step >= 1
        rows = np.flatnonzero(follows)
        obs = binary_matrix(t.column("obs"), odt, osize)
        act = binary_matrix(t.column("act").take(pa.array(rows)), adt, asize)
        return Transitions(
            observations=obs[rows - 1],
            actions=act,
            rewards=t.column("reward").take(pa.array(rows)).to_numpy().astype(np.float64),
            next_observations=obs[rows],
            terminations=t.column("terminated").take(pa.array(rows)).to_numpy(False),
            truncations=t.column("truncated").take(pa.array(rows)).to_numpy(False),
            sim_index=sim[rows],
            episode=episode[rows],
            step=step[rows],
        )

    def plan_catalog(self) -> PlanCatalog | None:
        """The plan catalog the recordings' observations were featurized with (their
        union, in first-seen order, when they differ); None when no recording has one."""
        from dbgym.plans.catalog import PlanCatalog

        texts = [m["plan_catalog"] for m in self.recordings.values() if m.get("plan_catalog")]
        catalogs = [PlanCatalog.from_json(t) for t in dict.fromkeys(texts)]
        if not catalogs:
            return None
        if len(catalogs) == 1:
            return catalogs[0]

        def union(parts: Iterable[tuple[str, ...]]) -> list[str]:
            return list(dict.fromkeys(x for p in parts for x in p))

        return PlanCatalog(
            union(c.relations for c in catalogs),
            union(c.indexes for c in catalogs),
            union(c.columns for c in catalogs),
        )

    def plan_features(
        self,
        *,
        encoding: Literal["qppnet", "tcnn"] = "qppnet",
        measured_only: bool = True,
        unit: str | None = None,
        catalog: PlanCatalog | None = None,
    ) -> PlanFeatures:
        """Every recorded plan featurized by dbgym.plans.featurize (the recordings' plan
        catalog unless `catalog` is given), with the latency measured for its slot in the
        same step. measured_only: only plans with a latency (not the reset's). unit: "s"
        or "cost", required when the simulations measured in both."""
        from dbgym.plans.featurize import featurize

        keys = ["sim_id", "episode", "step", "slot"]
        lat = self.templates.filter(pc.is_valid(self.templates.column("slot")))
        lat = lat.select([*keys, "latency", "unit", "timed_out"])
        joined = self.plans.join(lat, keys=keys, join_type="left outer")
        joined = joined.sort_by([(k, "ascending") for k in keys])
        if measured_only:
            joined = joined.filter(pc.is_valid(joined.column("latency")))
        units = sorted({u for u in joined.column("unit").to_pylist() if u is not None})
        if unit is not None:
            joined = joined.filter(pc.equal(joined.column("unit"), unit))
        elif len(units) > 1:
            raise InvalidArgumentError(
                f"the simulations measured latencies in {units}: pass unit= one of them"
            )
        chosen = unit if unit is not None else (units[0] if units else None)
        index = {s: i for i, s in enumerate(self.sim_ids)}
        texts: list[str] = joined.column("plan").to_pylist()
        batch = featurize(
            texts,
            catalog=catalog if catalog is not None else self.plan_catalog(),
            encoding=encoding,
        )
        latency = joined.column("latency").to_numpy(zero_copy_only=False).astype(np.float64)
        timed_out = np.array([bool(x) for x in joined.column("timed_out").to_pylist()], dtype=bool)
        return PlanFeatures(
            batch=batch,
            latency=latency,
            timed_out=timed_out,
            unit=chosen,
            sim_index=np.array(
                [index[s] for s in joined.column("sim_id").to_pylist()], dtype=np.int32
            ),
            episode=joined.column("episode").to_numpy(),
            step=joined.column("step").to_numpy(),
            slot=joined.column("slot").to_numpy().astype(np.int32),
            template_id=joined.column("template_id").to_pylist(),
        )

    def minari(self, sim_id: str) -> Any:
        """The Minari dataset (minari.MinariDataset) of one simulation, built from its
        parts first if the run died before writing it."""
        import minari

        if sim_id not in self.folders:
            raise InvalidArgumentError(f"simulation {sim_id} is not in this dataset")
        folder = self.folders[sim_id]
        dataset_id = self.recordings[sim_id]["dataset_id"]
        data = folder / MINARI_DIR / dataset_id / "data"
        if not data.is_dir() and build_minari(folder, dataset_id=dataset_id) is None:
            raise InvalidArgumentError(
                f"simulation {sim_id} has no Minari view: no complete episode step, or "
                f"{self.recordings[sim_id].get('minari_unsupported')}"
            )
        return minari.MinariDataset(data)


# -- reading ---------------------------------------------------------------------------
def _read_table(folder: Path, kind: str) -> pa.Table:
    target = schema(kind)
    parts = []
    for path in part_files(folder, kind):
        t = pq.read_table(path)
        version = int((t.schema.metadata or {}).get(META_VERSION, b"0"))
        if version > SCHEMA_VERSION:
            raise DbgymError(
                f"{path} has schema version {version}, newer than this dbgym reads "
                f"({SCHEMA_VERSION}): upgrade dbgym"
            )
        parts.append(t.select(target.names).cast(target))
    if not parts:
        return target.empty_table()
    return pa.concat_tables(parts)


def _with_sim(table: pa.Table, sim_id: str) -> pa.Table:
    col = pa.array(np.full(table.num_rows, sim_id, dtype=object), pa.string())
    return table.add_column(0, pa.field("sim_id", pa.string(), nullable=False), col)


def read_recordings(
    folders: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
) -> Dataset:
    """The recordings in `folders` ({sim_id: folder}, or folders named by their sim id) as
    one Dataset."""
    named: dict[str, Path] = (
        {str(k): Path(v).resolve() for k, v in folders.items()}
        if isinstance(folders, Mapping)
        else {Path(f).resolve().name: Path(f).resolve() for f in folders}
    )
    recordings = {sim: read_recording_meta(folder) for sim, folder in named.items()}
    tables: dict[str, pa.Table] = {}
    for kind in KINDS:
        per = [_with_sim(_read_table(folder, kind), sim) for sim, folder in named.items()]
        empty = _with_sim(schema(kind).empty_table(), "")
        tables[kind] = pa.concat_tables(per) if per else empty
    return Dataset(named, recordings, tables)


def _open_project(project: _Project | str | os.PathLike[str]) -> _Project:
    if isinstance(project, (str, os.PathLike)):
        manager = importlib.import_module("dbgym.project.manager")
        opened: _Project = manager.ProjectManager(project)
        return opened
    return project


def load_dataset(
    project: _Project | str | os.PathLike[str],
    sim_ids: str | Sequence[str] | None = None,
    *,
    key: str | None = None,
    state: str | None = None,
) -> Dataset:
    """The recordings of a project's simulations: those in `sim_ids` (ids or unique
    prefixes; each must have a recording), else every simulation the project lists with
    `key` (the simulation type's key, e.g. "dbgym-run") and `state` ("done", "failed",
    ...) that has a recording. `project` is a ProjectManager or its folder."""
    pm = _open_project(project)
    records = pm.records
    if sim_ids is None:
        rows = list(records.list(state=state, key=key))
        ids = [str(r.sim_id) for r in rows]
        found = {i: pm.sim_folder(i) for i in ids}
        found = {i: f for i, f in found.items() if (f / RECORDING_FILE).is_file()}
    else:
        wanted = [sim_ids] if isinstance(sim_ids, str) else list(sim_ids)
        found = {}
        for given in wanted:
            row = records.get(given)
            if state is not None and row.state != state:
                continue
            if key is not None and row.sim_key != key:
                continue
            folder = pm.sim_folder(str(row.sim_id))
            if not (folder / RECORDING_FILE).is_file():
                raise InvalidArgumentError(
                    f"simulation {row.sim_id} has no recording ({folder / RECORDING_FILE} "
                    "missing): it was not run under RecordEpisodes"
                )
            found[str(row.sim_id)] = folder
    return read_recordings(found)
