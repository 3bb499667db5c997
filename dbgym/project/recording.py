"""RecordEpisodes: record every reset and step of any Gymnasium environment in the standard
training-data format (docs/project.md, "Training-data format"; schemas in
dbgym.project.data_schema).

    env = RecordEpisodes(gym.make("CartPole-v1"), "run1/")
    ... reset/step as usual ...
    env.close()            # last rows written, Minari dataset built under run1/minari/

The wrapper only keeps references to what the environment returned (like Minari's own
DataCollector: an environment must not mutate an observation it returned; the action is
copied, as agents may reuse their action arrays) and a writer thread turns them into
Parquet parts every `flush_interval` seconds: written under a temporary name, fsynced,
renamed. A process killed at any moment leaves every step completed about
`flush_interval` before the kill readable. `close()` writes the last part and builds the
Minari dataset from the parts; `build_minari(folder)` rebuilds it for a run that died.

For dbgym environments the info's measured value, per-template latencies, timeouts,
errors, configuration and EXPLAIN plans land in their tables; for any other environment
those columns stay null and the whole info is kept as JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.errors import DbgymError, InvalidArgumentError
from dbgym.project.data_schema import (
    KINDS,
    MINARI_DIR,
    RECORDING_FILE,
    RECORDING_FORMAT,
    SCHEMA_VERSION,
    TIMEOUT_SQLSTATE,
    binary_column,
    binary_matrix,
    schema,
)

#: on_file(kind, relpath, rows, schema_version): called for each file written
#: ("recording", "steps", "templates", "plans", "minari"); relpath is relative to the folder.
OnFile = Callable[[str, str, int, int], None]

#: info keys that have their own column or table (left out of the `info` JSON column).
_PART = re.compile(r"^part-(\d+)\.parquet$")
_DATASET_NAME = re.compile(r"[^-_\w]")


class RecordingError(DbgymError):
    """Writing a recording failed (the disk, or the on_file callback): raised by the next
    reset/step/close after the writer thread met it."""


def template_id(text: str) -> str:
    """A stable id of a template text (16 hex digits of its SHA-1), the same in every
    recording and across runs."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# -- flattening ------------------------------------------------------------------------
class Layout:
    """How values of a space are flattened (gymnasium.spaces.flatten) into rows of one dtype."""

    def __init__(self, space: spaces.Space[Any]) -> None:
        self.space = space
        self.why_not: str | None = None
        try:
            flat = spaces.flatten_space(space)
        except (NotImplementedError, ValueError, TypeError) as e:
            flat = None
            self.why_not = f"{space} cannot be flattened: {e}"
        if flat is not None and not isinstance(flat, spaces.Box):
            self.why_not = f"{space} does not flatten to a fixed-size array ({flat})"
            flat = None
        self.size = int(flat.shape[0]) if flat is not None else 0
        self.dtype = np.dtype(flat.dtype) if flat is not None else np.dtype(np.float32)
        self.ok = flat is not None

    def block(self, values: Sequence[Any]) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """(len(values), size) array of the flattened values; rows of None stay zero and
        are False in the returned mask."""
        n = len(values)
        valid = np.fromiter((x is not None for x in values), dtype=bool, count=n)
        present = list(values) if valid.all() else [x for x in values if x is not None]
        dense = np.zeros((len(present), self.size), dtype=self.dtype)
        if present:
            _fill_batch(self.space, present, dense)
        if len(present) == n:
            return dense, valid
        out = np.zeros((n, self.size), dtype=self.dtype)
        out[valid] = dense
        return out, valid

    def rows(self, block: NDArray[Any]) -> Any:
        """The batch of space values (n, ...) per leaf (Minari's layout) of a flat block."""
        return _unflatten_batch(self.space, block)


def _fill_batch(space: spaces.Space[Any], xs: Sequence[Any], out: NDArray[Any]) -> None:
    """Flatten the values `xs` of `space` into the rows of `out` (len(xs), flatdim), a
    whole column at a time (numpy stacks the arrays)."""
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        if out.shape[1] > 4096:  # large leaves: one copy each, no stacked temporary
            for i, x in enumerate(xs):
                out[i] = np.asarray(x).reshape(-1)
        else:
            out[:] = np.asarray(xs).reshape(len(xs), -1)
    elif isinstance(space, (spaces.Dict, spaces.Tuple)):
        off = 0
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        for key, sub in items:
            k = spaces.flatdim(sub)
            _fill_batch(sub, [x[key] for x in xs], out[:, off : off + k])
            off += k
    else:
        for i, x in enumerate(xs):
            out[i] = np.asarray(spaces.flatten(space, x)).reshape(-1)


def _unflatten_batch(space: spaces.Space[Any], block: NDArray[Any]) -> Any:
    n = block.shape[0]
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        shape = space.shape or ()
        return block.reshape(n, *shape).astype(space.dtype, copy=False)
    if isinstance(space, spaces.Dict):
        out: dict[str, Any] = {}
        off = 0
        for key, sub in space.spaces.items():
            k = spaces.flatdim(sub)
            out[key] = _unflatten_batch(sub, block[:, off : off + k])
            off += k
        return out
    if isinstance(space, spaces.Tuple):
        parts = []
        off = 0
        for sub in space.spaces:
            k = spaces.flatdim(sub)
            parts.append(_unflatten_batch(sub, block[:, off : off + k]))
            off += k
        return tuple(parts)
    if isinstance(space, spaces.Discrete):
        return (np.argmax(block, axis=1) + int(space.start)).astype(space.dtype)
    rows = [spaces.unflatten(space, block[i]) for i in range(n)]
    return np.stack([np.asarray(r) for r in rows]) if rows else np.zeros((0,), dtype=block.dtype)


def _copy_action(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, Mapping):
        return {k: _copy_action(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_copy_action(v) for v in x)
    if isinstance(x, list):
        return [_copy_action(v) for v in x]
    return x


# -- JSON ------------------------------------------------------------------------------
def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _plain(o: Any) -> Any:
    """`o` with every mapping's keys made strings (json.dumps refuses tuple keys)."""
    if isinstance(o, Mapping):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    return o


def to_json(o: Any) -> str:
    """JSON text of an action/info/config (numpy arrays as lists, NaN kept as NaN)."""
    try:
        return json.dumps(o, default=_json_default, separators=(",", ":"))
    except TypeError:
        return json.dumps(_plain(o), default=_json_default, separators=(",", ":"))


_COMPACT = json.JSONEncoder(separators=(",", ":"), default=_json_default)
_COMMA, _OPEN, _CLOSE, _ZERO = ord(","), ord("["), ord("]"), ord("0")


#: Bytes a JSON string may hold unescaped (printable ASCII but the quote and backslash).
_SAFE = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))


def _plain_ascii(text: str) -> bool:
    """Whether `text` needs no JSON escaping (checked in C: cheaper than json's encoder)."""
    return text.isascii() and not text.encode("ascii").translate(None, _SAFE)


def _one_json(v: Any) -> str:
    kind = type(v)
    if kind is str:
        return f'"{v}"' if _plain_ascii(v) else _COMPACT.encode(v)
    if kind is list and v:
        try:
            joined = "".join(v)  # a TypeError unless all are str
        except TypeError:
            joined = None
        if joined is not None and _plain_ascii(joined):
            return '["' + '","'.join(v) + '"]'
    if (
        kind is dict
        and v
        and all(type(k) is str and type(x) is str for k, x in v.items())
        and _plain_ascii("".join(v) + "".join(v.values()))
    ):
        return "{" + ",".join([f'"{k}":"{x}"' for k, x in v.items()]) + "}"
    try:
        return _COMPACT.encode(v)
    except (TypeError, ValueError):  # keys json refuses (tuples): made strings
        return to_json(v)


def _digit_rows(values: Sequence[Any]) -> list[str] | None:
    """JSON lists of 1-D integer arrays of one length whose values are all 0-9 (binary
    actions, hint choices, masks), built for the whole column at once; None otherwise."""
    first = values[0]
    if first.ndim != 1 or first.dtype.kind not in "iu":
        return None
    if not all(isinstance(v, np.ndarray) and v.shape == first.shape for v in values):
        return None
    m = np.stack(values)
    if m.dtype.kind not in "iu" or (m.size and (m.min() < 0 or m.max() > 9)):
        return None
    n, width = m.shape[0], 2 * m.shape[1] + 1
    if m.shape[1] == 0:
        return ["[]"] * n
    buf = np.full((n, width), _COMMA, dtype=np.uint8)
    buf[:, 0], buf[:, -1] = _OPEN, _CLOSE
    buf[:, 1::2] = m + _ZERO
    text = buf.tobytes().decode("ascii")
    return [text[i * width : (i + 1) * width] for i in range(n)]


def _number_rows(values: Sequence[Any], kind: type) -> list[str] | None:
    """JSON numbers of a column of finite floats (or of ints), from one repr of the list
    (done in C); None when the column holds anything else."""
    if not all(type(v) is kind for v in values):
        return None
    if kind is float and not np.isfinite(np.fromiter(values, dtype=np.float64)).all():
        return None
    return repr(list(values))[1:-1].split(", ")


def json_objects(
    dicts: Sequence[Mapping[str, Any]], keys: Sequence[str], *, depth: int = 0
) -> list[str]:
    """JSON objects of `keys` (each in every dict) of each dict, built key by key
    (json_column on each key's values, `depth` levels further)."""
    if not keys:
        return ["{}"] * len(dicts)
    names = [_COMPACT.encode(k) + ":" for k in keys]
    prefixed = [
        [name + t for t in json_column([d[k] for d in dicts], depth=depth)]
        for name, k in zip(names, keys, strict=True)
    ]
    return ["{" + ",".join(parts) + "}" for parts in zip(*prefixed, strict=True)]


def json_column(values: Sequence[Any], *, depth: int = 1) -> list[str]:
    """JSON text of each value (as `to_json` gives it), computed column-wise: mappings
    with string keys key by key (to `depth` levels), integer arrays in one numpy pass,
    and a value equal to the previous one reuses its text."""
    n = len(values)
    if n == 0:
        return []
    first = values[0]
    if isinstance(first, np.ndarray):
        digits = _digit_rows(values)
        if digits is not None:
            return digits
    kind = type(first)
    if kind is float or (kind is int and first is not True and first is not False):
        numbers = _number_rows(values, kind)
        if numbers is not None:
            return numbers
    groups: dict[tuple[str, ...], list[int]] = {}
    if depth > 0 and isinstance(first, Mapping) and all(isinstance(v, Mapping) for v in values):
        for i, v in enumerate(values):
            groups.setdefault(tuple(v), []).append(i)
        if not all(type(k) is str for keys in groups for k in keys):
            groups = {}
    if groups:
        out = [""] * n
        for keys, rows in groups.items():
            for i, text in zip(
                rows, json_objects([values[i] for i in rows], keys, depth=depth - 1), strict=True
            ):
                out[i] = text
        return out
    texts: list[str] = []
    last: Any = _UNSET
    last_text = ""
    for v in values:
        if v is not last:
            same = False
            if type(v) is type(last) and not isinstance(v, np.ndarray):
                try:
                    same = bool(v == last)
                except Exception:
                    same = False
            if not same:
                last_text = _one_json(v)
            last = v
        texts.append(last_text)
    return texts


_UNSET = object()


def _number(x: Any) -> float | None:
    if isinstance(x, (bool, np.bool_)) or x is None:
        return None
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    return None


# -- spaces in recording.json ----------------------------------------------------------
def _serialize_space(space: spaces.Space[Any]) -> tuple[str | None, str | None]:
    """(Minari's serialized form, None) or (None, why it cannot be serialized)."""
    from minari.serialization import serialize_space

    try:
        return str(serialize_space(space)), None
    except (NotImplementedError, TypeError, ValueError) as e:
        return None, f"{type(space).__name__} is not serializable by Minari: {e}"


def _deserialize_space(text: str) -> spaces.Space[Any]:
    from minari.serialization import deserialize_space

    return deserialize_space(text)  # type: ignore[no-any-return]


def default_dataset_id(folder: Path) -> str:
    """The Minari dataset id a recording in `folder` gets by default: dbgym-<name>-v0."""
    name = _DATASET_NAME.sub("_", folder.resolve().name) or "recording"
    return f"dbgym-{name}-v0"


def check_dataset_id(dataset_id: str) -> str:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        raise InvalidArgumentError(
            f"dataset_id {dataset_id!r} is not a Minari dataset id "
            "([namespace/]name-v<version>, e.g. 'dbgym/tpch-random-v0')"
        ) from None
    return dataset_id


# -- files -----------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def part_files(folder: Path, kind: str) -> list[Path]:
    """The complete part files of table `kind` in a recording folder, in part order
    (temporary files of a write in progress are not listed)."""
    d = Path(folder) / kind
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _PART.match(p.name))]
    return [p for _, p in sorted(found)]


def read_recording_meta(folder: Path) -> dict[str, Any]:
    """recording.json of a recording folder (DbgymError if absent or of a newer format)."""
    path = Path(folder) / RECORDING_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"{folder} holds no recording ({RECORDING_FILE} missing)"
        ) from None
    except (OSError, ValueError) as e:
        raise DbgymError(f"cannot read {path}: {e}") from e
    if meta.get("format") != RECORDING_FORMAT:
        raise DbgymError(f"{path} is not a dbgym recording (format {meta.get('format')!r})")
    if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
        raise DbgymError(
            f"{path} has schema version {meta['schema_version']}, newer than this dbgym reads "
            f"({SCHEMA_VERSION}): upgrade dbgym"
        )
    return dict(meta)


def _existing(folder: Path) -> tuple[int, int]:
    """(next part number, next episode number) after the parts already in `folder`."""
    part, episode = 0, 0
    for kind in KINDS:
        files = part_files(folder, kind)
        if files:
            m = _PART.match(files[-1].name)
            assert m is not None
            part = max(part, int(m.group(1)) + 1)
    for p in part_files(folder, "steps"):
        col = pq.read_table(p, columns=["episode"]).column("episode")
        if len(col):
            episode = max(episode, int(pc.max(col).as_py()) + 1)
    return part, episode


def _steps_dataset(folder: Path) -> pds.Dataset:
    return pds.dataset([str(p) for p in part_files(folder, "steps")], format="parquet")


_NONE = type(None)


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


def _numbers(values: list[Any]) -> list[float | None] | None:
    """The values as floats (None kept) if they are all numbers or None, else None."""
    if _types(values) <= {float, _NONE}:
        return values
    out: list[float | None] = []
    for x in values:
        if x is None:
            out.append(None)
        elif isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
            x, (bool, np.bool_)
        ):
            out.append(float(x))
        else:
            return None
    return out


class _InfoColumns:
    """The columns and tables taken from the infos (see data_schema), filled group by
    group of rows whose infos have the same keys."""

    def __init__(self, n: int) -> None:
        self.value: list[float | None] = [None] * n
        self.unit: list[str | None] = [None] * n
        self.baseline: list[float | None] = [None] * n
        self.restart: list[bool | None] = [None] * n
        self.error: list[str | None] = [None] * n
        self.config: list[str | None] = [None] * n
        self.rest: list[str] = ["{}"] * n
        self.per_slot: list[Mapping[int, Any] | None] = [None] * n  # latency by slot
        self.timeouts: list[list[int] | None] = [None] * n  # aligned with per_slot's keys
        self.errors: list[tuple[int, str, int]] = []  # (row, SQLSTATE, statements)
        self.plan_rows: list[int] = []
        self.plan_slots: list[int] = []
        self.plan_texts: list[str] = []

    def add(self, infos: list[Mapping[Any, Any]], keys: tuple[Any, ...], idx: list[int]) -> None:
        present = set(keys)
        moved: set[Any] = set()

        def column(key: str) -> list[Any]:
            return [info[key] for info in infos]

        if "value" in present and (values := _numbers(column("value"))) is not None:
            moved.add("value")
            unit = None
            for key, name in (("time", "s"), ("cost", "cost")):
                if key in present and _numbers(column(key)) == values:
                    unit = name
                    moved.add(key)
            for i, v in zip(idx, values, strict=True):
                self.value[i] = v
                self.unit[i] = unit
        if "baseline" in present and (values := _numbers(column("baseline"))) is not None:
            moved.add("baseline")
            for i, v in zip(idx, values, strict=True):
                self.baseline[i] = v
        if "restarted" in present:
            flags = column("restarted")
            if _types(flags) <= {bool, np.bool_}:
                moved.add("restarted")
                for i, f in zip(idx, flags, strict=True):
                    self.restart[i] = bool(f)
        if "error" in present:
            errs = column("error")
            if _types(errs) <= {str, _NONE}:
                moved.add("error")
                for i, e in zip(idx, errs, strict=True):
                    self.error[i] = e
        if "config" in present:
            moved.add("config")
            for i, text in zip(idx, json_column(column("config"), depth=2), strict=True):
                self.config[i] = text
        if {"per_template", "timeouts", "statement_errors"} <= present:
            per, touts, errs = (
                column("per_template"),
                column("timeouts"),
                column("statement_errors"),
            )
            if _types(per) | _types(touts) | _types(errs) <= {dict} or all(
                isinstance(x, Mapping) for x in (*per, *touts, *errs)
            ):
                moved |= {"per_template", "timeouts", "statement_errors"}
                for i, p, t, e in zip(idx, per, touts, errs, strict=True):
                    if t:  # slots that only timed out have no latency
                        merged = dict(p)
                        for s in t:
                            merged.setdefault(s, None)
                        p = merged
                        self.timeouts[i] = [int(t.get(s, 0)) for s in merged]
                    self.per_slot[i] = p
                    self.errors.extend((i, str(state), int(c)) for state, c in e.items())
        if "plans" in present:
            plans = column("plans")
            if _types(plans) <= {list, tuple} and all(_types(ps) <= {str, _NONE} for ps in plans):
                moved.add("plans")
                for i, ps in zip(idx, plans, strict=True):
                    for slot, text in enumerate(ps):
                        if text is not None:
                            self.plan_rows.append(i)
                            self.plan_slots.append(slot)
                            self.plan_texts.append(text)
        rest = [k for k in keys if k not in moved]
        if all(type(k) is str for k in rest):
            texts = json_objects(infos, rest, depth=1)
        else:  # keys JSON cannot hold as they are: each info on its own
            texts = [to_json({k: info[k] for k in rest}) for info in infos]
        for i, text in zip(idx, texts, strict=True):
            self.rest[i] = text


# -- the wrapper -----------------------------------------------------------------------
_Row = tuple[Any, ...]


class RecordEpisodes(gym.Wrapper[Any, Any, Any, Any]):
    """Record every reset/step of `env` into `folder` (see the module docstring).

    flush_interval: seconds between part files (the most a killed process loses).
    on_file(kind, relpath, rows, schema_version): called after each file is in place
    (from the writer thread for parts; e.g. a project's sim_files index). dataset_id: the
    Minari dataset's id (default `dbgym-<folder name>-v0`).
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        folder: str | os.PathLike[str],
        *,
        flush_interval: float = 1.0,
        on_file: OnFile | None = None,
        dataset_id: str | None = None,
    ) -> None:
        super().__init__(env)
        if not (isinstance(flush_interval, (int, float)) and flush_interval > 0):
            raise InvalidArgumentError(
                f"flush_interval must be a positive number of seconds, got {flush_interval!r}"
            )
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_interval = float(flush_interval)
        self.on_file = on_file
        self.dataset_id = check_dataset_id(dataset_id or default_dataset_id(self.folder))
        self._obs = Layout(env.observation_space)
        self._act = Layout(env.action_space)
        unwrapped = env.unwrapped
        slots = getattr(getattr(unwrapped, "slots", None), "slots", None)
        self._slot_ids: list[str | None] = []
        templates: list[dict[str, Any]] = []
        if isinstance(slots, Sequence):
            for i, s in enumerate(slots):
                text = getattr(s, "text", None)
                tid = template_id(text) if isinstance(text, str) else None
                self._slot_ids.append(tid)
                templates.append({"slot": i, "template_id": tid, "text": text})
        self.meta = self._write_meta(unwrapped, templates)
        self._part, next_episode = _existing(self.folder)
        self._episode = next_episode - 1  # a step before any reset counts to the next one
        self._step = 0
        self._rows: list[_Row] = []
        self._lock = threading.Lock()  # guards _rows
        self._convert_lock = threading.Lock()  # _rows -> _batches, in order
        self._batches: list[tuple[pa.Table, pa.Table, pa.Table]] = []
        self._write_lock = threading.Lock()  # one flush at a time
        self._error: BaseException | None = None
        self._closed = False
        self.steps_recorded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbgym-recorder", daemon=True)
        self._thread.start()

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._check()
        t0 = time.perf_counter()
        obs, info = self.env.reset(seed=seed, options=options)
        t1 = time.perf_counter()
        with self._lock:
            self._episode += 1
            self._step = 0
            self._rows.append(
                (self._episode, 0, time.time(), t1 - t0, seed, None, None, False, False, obs, info)
            )
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._check()
        kept = _copy_action(action)
        t0 = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        t1 = time.perf_counter()
        with self._lock:
            if self._episode < 0:
                self._episode = 0
            self._step += 1
            self._rows.append(
                (
                    self._episode,
                    self._step,
                    time.time(),
                    t1 - t0,
                    None,
                    kept,
                    float(reward),
                    bool(terminated),
                    bool(truncated),
                    obs,
                    info,
                )
            )
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Write the last part, build the Minari dataset, close the environment."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        failure: BaseException | None = self._error
        try:
            if failure is None:
                self.flush()
                built = build_minari(self.folder, dataset_id=self.dataset_id)
                if built is not None and self.on_file is not None:
                    path, steps = built
                    self.on_file(
                        "minari", path.relative_to(self.folder).as_posix(), steps, SCHEMA_VERSION
                    )
        except Exception as e:
            failure = e
        finally:
            super().close()
        if failure is not None:
            raise RecordingError(
                f"recording to {self.folder} failed: {type(failure).__name__}: {failure}"
            ) from failure

    # -- writing -----------------------------------------------------------------------
    def flush(self) -> int:
        """Write what was recorded since the last flush as one part per table now;
        returns the rows of the steps part (0: nothing to write)."""
        with self._write_lock:
            with self._convert_lock:
                self._convert_locked()
                batches, self._batches = self._batches, []
            if not batches:
                return 0
            part = self._part
            self._part += 1
            n = 0
            for k, kind in enumerate(KINDS):
                table = pa.concat_tables([b[k] for b in batches])
                if kind == "steps":
                    n = table.num_rows
                if table.num_rows:
                    self._write(kind, part, table)
            self.steps_recorded += n
            return n

    def _convert_locked(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            self._batches.append(self._tables(rows))

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except BaseException as e:  # kept for the next reset/step/close
                self._error = e
                return

    def _check(self) -> None:
        if self._error is not None:
            e = self._error
            raise RecordingError(
                f"recording to {self.folder} failed: {type(e).__name__}: {e}"
            ) from e
        if self._closed:
            raise InvalidArgumentError("the recording wrapper is closed")

    def _write(self, kind: str, part: int, table: pa.Table) -> None:
        d = self.folder / kind
        d.mkdir(exist_ok=True)
        name = f"part-{part:05d}.parquet"
        _write_atomic(
            d / name,
            lambda tmp: pq.write_table(
                table, str(tmp), compression="zstd", use_dictionary=_DICT_COLUMNS[kind]
            ),
        )
        if self.on_file is not None:
            self.on_file(kind, f"{kind}/{name}", table.num_rows, SCHEMA_VERSION)

    def _write_meta(self, unwrapped: Any, templates: list[dict[str, Any]]) -> dict[str, Any]:
        obs_text, obs_why = _serialize_space(self.env.observation_space)
        act_text, act_why = _serialize_space(self.env.action_space)
        catalog_json = getattr(getattr(unwrapped, "plan_catalog", None), "to_json", None)
        spec_json = getattr(getattr(unwrapped, "env_spec", None), "to_json", None)
        gym_spec: str | None = None
        if self.env.spec is not None:
            with contextlib.suppress(Exception):
                gym_spec = self.env.spec.to_json()
        unsupported = [w for w in (obs_why, act_why, self._obs.why_not, self._act.why_not) if w]
        meta: dict[str, Any] = {
            "format": RECORDING_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(),
            "dataset_id": self.dataset_id,
            "env_id": self.env.spec.id if self.env.spec is not None else None,
            "env_class": f"{type(unwrapped).__module__}.{type(unwrapped).__qualname__}",
            "gym_env_spec": gym_spec,
            "dbgym_env_spec": spec_json() if callable(spec_json) else None,
            "observation_space": obs_text,
            "action_space": act_text,
            "obs_dtype": self._obs.dtype.str if self._obs.ok else None,
            "obs_size": self._obs.size if self._obs.ok else None,
            "act_dtype": self._act.dtype.str if self._act.ok else None,
            "act_size": self._act.size if self._act.ok else None,
            "minari_unsupported": unsupported,
            "plan_catalog": catalog_json() if callable(catalog_json) else None,
            "templates": templates,
        }
        path = self.folder / RECORDING_FILE
        if path.exists():
            old = read_recording_meta(self.folder)
            same = ("observation_space", "action_space", "obs_dtype", "obs_size", "act_size")
            for key in same:
                if old.get(key) != meta[key]:
                    raise InvalidArgumentError(
                        f"{self.folder} already holds a recording with another {key}: record "
                        "this environment into another folder"
                    )
            meta["created"] = old.get("created", meta["created"])
        text = json.dumps(meta, separators=(",", ":"))

        def write(tmp: Path) -> None:
            tmp.write_text(text)

        _write_atomic(path, write)
        if self.on_file is not None:
            self.on_file("recording", RECORDING_FILE, 0, SCHEMA_VERSION)
        return meta

    # -- rows to tables ----------------------------------------------------------------
    def _tables(self, rows: list[_Row]) -> tuple[pa.Table, pa.Table, pa.Table]:
        """The rows as Arrow tables, built key by key over rows whose infos have the same
        keys (a dbgym environment's steps all do), not row by row."""
        n = len(rows)
        episode = pa.array(np.fromiter((r[0] for r in rows), dtype=np.int64, count=n))
        step_no = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        stamps = np.fromiter((r[2] for r in rows), dtype=np.float64, count=n)
        times = pc.strftime(
            pa.array((stamps * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            format="%Y-%m-%dT%H:%M:%S+00:00",
        )
        moves = np.flatnonzero(step_no != 0).tolist()
        actions: list[str | None] = [None] * n
        for i, text in zip(moves, json_column([rows[i][5] for i in moves]), strict=True):
            actions[i] = text
        cols = _InfoColumns(n)
        infos = [r[10] if isinstance(r[10], Mapping) else {"info": r[10]} for r in rows]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, info in enumerate(infos):
            groups.setdefault(tuple(info), []).append(i)
        for keys, idx in groups.items():
            cols.add([infos[i] for i in idx], keys, idx)
        if self._obs.ok:
            block, _ = self._obs.block([r[9] for r in rows])
            obs = binary_column(block)
        else:
            obs = pa.nulls(n, pa.large_binary())
        if self._act.ok:
            ablock, valid = self._act.block([None if r[1] == 0 else r[5] for r in rows])
            act = binary_column(ablock, valid)
        else:
            act = pa.nulls(n, pa.large_binary())
        step_a = pa.array(step_no)
        unit_a = pa.array(cols.unit, pa.string())
        steps = pa.Table.from_arrays(
            [
                episode,
                step_a,
                times,
                pa.array(np.fromiter((r[3] for r in rows), dtype=np.float64, count=n)),
                pa.array([r[4] for r in rows], pa.int64()),
                pa.array(actions, pa.string()),
                pa.array([r[6] for r in rows], pa.float64()),
                pa.array(np.fromiter((r[7] for r in rows), dtype=bool, count=n)),
                pa.array(np.fromiter((r[8] for r in rows), dtype=bool, count=n)),
                pa.array(cols.value, pa.float64()),
                unit_a,
                pa.array(cols.baseline, pa.float64()),
                pa.array(cols.restart, pa.bool_()),
                pa.array(cols.error, pa.string()),
                pa.array(cols.config, pa.string()),
                pa.array(cols.rest, pa.string()),
                obs,
                act,
            ],
            schema=schema("steps"),
        )
        templates = self._templates_table(
            episode, step_a, unit_a, cols.per_slot, cols.timeouts, cols.errors
        )
        rows_a = pa.array(np.array(cols.plan_rows, dtype=np.int64))
        slots_a = pa.array(np.array(cols.plan_slots, dtype=np.int32))
        plans_t = pa.Table.from_arrays(
            [
                episode.take(rows_a),
                step_a.take(rows_a),
                slots_a,
                self._template_ids(slots_a),
                pa.array(cols.plan_texts, pa.string()),
            ],
            schema=schema("plans"),
        )
        return steps, templates, plans_t

    def _template_ids(self, slots: pa.Array) -> pa.Array:
        """template_id of each slot (null for -1 and slots the env did not describe)."""
        ids = pa.array([*self._slot_ids, None], pa.string())
        s = np.asarray(slots.to_numpy(zero_copy_only=False), dtype=np.int64)
        s = np.where((s >= 0) & (s < len(self._slot_ids)), s, len(self._slot_ids))
        return ids.take(pa.array(s))

    def _templates_table(
        self,
        episode: pa.Array,
        step: pa.Array,
        unit: pa.Array,
        per_slot: list[Mapping[int, Any] | None],
        timeouts: list[list[int] | None],
        errors: list[tuple[int, str, int]],
    ) -> pa.Table:
        """One row per (step, slot) of info["per_template"] and ["timeouts"] (converted by
        Arrow, not row by row in Python), then the statement_errors rows."""
        kind = pa.map_(pa.int32(), pa.float64())
        try:
            by_row = pa.array(per_slot, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            by_row = pa.array(
                [
                    None if p is None else {int(s): _number(v) for s, v in p.items()}
                    for p in per_slot
                ],
                kind,
            )
        # (pc.list_parent_indices aborts on a map array in pyarrow 26: from the offsets)
        offsets = by_row.offsets.to_numpy()
        parent = pa.array(np.repeat(np.arange(len(per_slot), dtype=np.int64), np.diff(offsets)))
        slots = by_row.keys
        latency = by_row.items
        latency = pc.if_else(pc.is_nan(latency), pa.scalar(None, pa.float64()), latency)
        k = len(slots)
        if all(t is None for t in timeouts):
            counts = pa.array(np.zeros(k, dtype=np.int32))
        else:
            counts = pa.array(
                [
                    t if t is not None else [0] * (len(p) if p is not None else 0)
                    for t, p in zip(timeouts, per_slot, strict=True)
                ],
                pa.list_(pa.int32()),
            ).flatten()
        timed_out = pc.greater(counts, 0)
        measured = pa.Table.from_arrays(
            [
                episode.take(parent),
                step.take(parent),
                slots,
                self._template_ids(slots),
                latency,
                unit.take(parent),
                counts,
                timed_out,
                pc.if_else(timed_out, TIMEOUT_SQLSTATE, pa.scalar(None, pa.string())),
                pa.array(np.zeros(k, dtype=np.int32)),
            ],
            schema=schema("templates"),
        )
        if not errors:
            return measured
        rows = pa.array(np.array([e[0] for e in errors], dtype=np.int64))
        m = len(errors)
        failed = pa.Table.from_arrays(
            [
                episode.take(rows),
                step.take(rows),
                pa.nulls(m, pa.int32()),
                pa.nulls(m, pa.string()),
                pa.nulls(m, pa.float64()),
                unit.take(rows),
                pa.array(np.zeros(m, dtype=np.int32)),
                pa.array(np.zeros(m, dtype=bool)),
                pa.array([e[1] for e in errors], pa.string()),
                pa.array([e[2] for e in errors], pa.int32()),
            ],
            schema=schema("templates"),
        )
        return pa.concat_tables([measured, failed]).sort_by(
            [("episode", "ascending"), ("step", "ascending")]
        )


#: Dictionary-encode the columns that repeat (not the raw observation/action bytes).
_DICT_COLUMNS: dict[str, list[str] | bool] = {
    "steps": ["unit", "config", "error"],
    "templates": ["template_id", "unit", "sqlstate"],
    "plans": ["template_id", "plan"],
}


# -- the Minari view -------------------------------------------------------------------
def build_minari(
    folder: str | os.PathLike[str], *, dataset_id: str | None = None
) -> tuple[Path, int] | None:
    """Build (or rebuild) the Minari dataset of the recording in `folder` from its Parquet
    parts: folder/minari/<dataset_id>/data, read by `minari.load_dataset(dataset_id)` with
    MINARI_DATASETS_PATH=folder/minari, or by `minari.MinariDataset(path)`. Episodes are
    the recorded episodes that have their reset row and at least one step, renumbered
    0, 1, ... in order. Returns (dataset folder, steps), or None when the recording has no
    such episode or a space Minari cannot hold (recording.json's minari_unsupported)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    folder = Path(folder).resolve()  # (Minari's size count doubles a relative path)
    meta = read_recording_meta(folder)
    dataset_id = check_dataset_id(
        dataset_id or meta.get("dataset_id") or default_dataset_id(folder)
    )
    if meta.get("minari_unsupported") or not part_files(folder, "steps"):
        return None
    obs_space = _deserialize_space(meta["observation_space"])
    act_space = _deserialize_space(meta["action_space"])
    obs_layout, act_layout = Layout(obs_space), Layout(act_space)
    data = _steps_dataset(folder)
    index = data.to_table(columns=["episode", "step"])
    episodes: list[int] = sorted(pc.unique(index.column("episode")).to_pylist())
    env_spec = None
    if meta.get("gym_env_spec"):
        with contextlib.suppress(Exception):
            env_spec = gym.envs.registration.EnvSpec.from_json(meta["gym_env_spec"])
    root = folder / MINARI_DIR
    root.mkdir(exist_ok=True)
    tmp = root / f".build-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    total = 0
    try:
        storage = MinariStorage.new(
            tmp / "data",
            observation_space=obs_space,
            action_space=act_space,
            env_spec=env_spec,
            data_format="arrow",
        )
        storage.update_metadata(
            {
                "dataset_id": dataset_id,
                "minari_version": minari.__version__,
                "author": {"dbgym"},
                "description": (
                    f"dbgym recording of {meta.get('env_id') or meta.get('env_class')} "
                    f"(Parquet tables beside this folder: {', '.join(KINDS)})"
                ),
            }
        )
        n_out = 0
        columns = ["episode", "step", "seed", "reward", "terminated", "truncated", "value"]
        columns += ["baseline", "restart", "error", "duration", "obs", "act"]
        for e in episodes:
            t = data.to_table(columns=columns, filter=pds.field("episode") == int(e))
            t = t.sort_by([("step", "ascending")])
            step_no = t.column("step").to_numpy()
            # the reset row and the steps that follow it without a gap
            if len(step_no) < 2 or step_no[0] != 0:
                continue
            run = np.flatnonzero(np.diff(step_no) != 1)
            end = int(run[0]) + 1 if run.size else len(step_no)
            if end < 2:
                continue
            t = t.slice(0, end)
            obs = binary_matrix(t.column("obs"), obs_layout.dtype, obs_layout.size)
            acts = t.column("act").slice(1)
            act = binary_matrix(acts, act_layout.dtype, act_layout.size)
            n = end - 1
            value = t.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
            baseline = t.column("baseline").to_numpy(zero_copy_only=False).astype(np.float64)
            restart = [bool(x) for x in t.column("restart").to_pylist()]
            failed = [x is not None for x in t.column("error").to_pylist()]
            seed = t.column("seed")[0].as_py()
            storage.update_episodes(
                [
                    EpisodeBuffer(
                        id=n_out,
                        seed=seed,
                        observations=obs_layout.rows(obs),
                        actions=act_layout.rows(act),
                        rewards=t.column("reward").slice(1).to_numpy().astype(np.float64),
                        terminations=t.column("terminated").slice(1).to_numpy(zero_copy_only=False),
                        truncations=t.column("truncated").slice(1).to_numpy(zero_copy_only=False),
                        infos={
                            "value": [float(x) for x in value],
                            "baseline": [float(x) for x in baseline],
                            "restart": restart,
                            "failed": failed,
                            "duration": [float(x) for x in t.column("duration").to_pylist()],
                        },
                    )
                ]
            )
            n_out += 1
            total += n
        if n_out == 0:
            return None
        target = root / dataset_id
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return target, total
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
