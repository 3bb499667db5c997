"""The versioned Arrow schemas of the training-data format (docs/project.md, "Training-data
format").

A recording (one simulation's folder, or any folder `RecordEpisodes` writes to) holds:

- `recording.json`: what is needed to read the parts (spaces, flattened layouts, the plan
  catalog, the template slots), `RECORDING_FORMAT` with its `SCHEMA_VERSION`;
- `steps/part-NNNNN.parquet`, `templates/part-NNNNN.parquet`, `plans/part-NNNNN.parquet`:
  one part of each table per flush, same NNNNN for the rows of one flush; each Parquet
  file carries `dbgym.table` and `dbgym.schema_version` in its key-value metadata;
- `minari/<dataset_id>/data/`: the reinforcement-learning view as a Minari dataset.

Schema versions only grow: a reader accepts every version up to `SCHEMA_VERSION` and
refuses a newer one with a message naming the file, never guessing.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

#: The version of the three tables and of recording.json (one number for the format).
SCHEMA_VERSION: Final = 1
RECORDING_FORMAT: Final = "dbgym.recording"
RECORDING_FILE: Final = "recording.json"
MINARI_DIR: Final = "minari"
KINDS: Final = ("steps", "templates", "plans")
#: Parquet key-value metadata keys of every part.
META_TABLE: Final = b"dbgym.table"
META_VERSION: Final = b"dbgym.schema_version"

#: SQLSTATE of a statement cancelled by its statement_timeout (PostgreSQL's query_canceled).
TIMEOUT_SQLSTATE: Final = "57014"

#: One row per `reset` (step 0) and per `step` (1, 2, ...) of the recorded environment.
STEPS_FIELDS: Final = [
    pa.field("episode", pa.int64(), nullable=False),  # 0, 1, ... in the order of resets
    pa.field("step", pa.int64(), nullable=False),  # 0: the reset; k: the k-th step
    pa.field("time", pa.string(), nullable=False),  # ISO 8601 UTC, when the call returned
    pa.field("duration", pa.float64(), nullable=False),  # seconds the env call took
    pa.field("seed", pa.int64()),  # reset rows: the seed given (null: none)
    pa.field("action", pa.string()),  # step rows: the action as JSON (arrays as lists)
    pa.field("reward", pa.float64()),  # step rows
    pa.field("terminated", pa.bool_(), nullable=False),
    pa.field("truncated", pa.bool_(), nullable=False),
    pa.field("value", pa.float64()),  # info["value"]: measured seconds, or planner cost
    pa.field("unit", pa.string()),  # "s" (info has "time") or "cost" (info has "cost")
    pa.field("baseline", pa.float64()),  # info["baseline"], same unit
    pa.field("restart", pa.bool_()),  # info["restarted"]: the server restarted
    pa.field("error", pa.string()),  # info["error"]: what failed in the step, if anything
    pa.field("config", pa.string()),  # info["config"] as JSON: the configuration in force
    pa.field("info", pa.string()),  # the rest of info as JSON (plans, per-template: tables)
    pa.field("obs", pa.large_binary()),  # gymnasium.spaces.flatten(observation) raw bytes
    pa.field("act", pa.large_binary()),  # step rows: gymnasium.spaces.flatten(action) bytes
]

#: One row per template slot measured in a step (info["per_template"] and
#: info["timeouts"]), plus one row per SQLSTATE of statements that failed otherwise
#: (info["statement_errors"], counted by SQLSTATE only: slot is null).
TEMPLATES_FIELDS: Final = [
    pa.field("episode", pa.int64(), nullable=False),
    pa.field("step", pa.int64(), nullable=False),
    pa.field("slot", pa.int32()),  # the env's template slot; -1: templates without a slot
    pa.field("template_id", pa.string()),  # stable id of the template text (recording.json)
    pa.field("latency", pa.float64()),  # mean seconds (execute) or cost (estimate) per stmt
    pa.field("unit", pa.string()),
    pa.field("timeouts", pa.int32(), nullable=False),  # statements cancelled by timeout
    pa.field("timed_out", pa.bool_(), nullable=False),
    pa.field("sqlstate", pa.string()),  # "57014" when timed out; an error row's SQLSTATE
    pa.field("errors", pa.int32(), nullable=False),  # error rows: statements failed so
]

#: One row per template slot with an EXPLAIN plan in a reset or step (info["plans"]).
PLANS_FIELDS: Final = [
    pa.field("episode", pa.int64(), nullable=False),
    pa.field("step", pa.int64(), nullable=False),
    pa.field("slot", pa.int32(), nullable=False),
    pa.field("template_id", pa.string()),
    pa.field("plan", pa.string(), nullable=False),  # raw EXPLAIN (FORMAT JSON) text
]


def schema(kind: str) -> pa.Schema:
    """The Arrow schema of table `kind` ("steps", "templates", "plans"), with its metadata."""
    fields = {"steps": STEPS_FIELDS, "templates": TEMPLATES_FIELDS, "plans": PLANS_FIELDS}[kind]
    return pa.schema(
        fields, metadata={META_TABLE: kind.encode(), META_VERSION: str(SCHEMA_VERSION).encode()}
    )


def binary_column(block: NDArray[Any], valid: NDArray[np.bool_] | None = None) -> pa.Array:
    """A large_binary array whose row i is the bytes of `block[i]` (a 2-D C-contiguous
    array), null where `valid` is False; built without copying the valid rows' bytes."""
    n = block.shape[0]
    width = block.shape[1] * block.dtype.itemsize if block.ndim == 2 else 0
    if valid is None or bool(valid.all()):
        data = np.ascontiguousarray(block)
        offsets = np.arange(n + 1, dtype=np.int64) * width
        return pa.Array.from_buffers(
            pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
    data = np.ascontiguousarray(block[valid])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(valid.astype(np.int64) * width, out=offsets[1:])
    bitmap = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(
        pa.large_binary(),
        n,
        [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=int(n - valid.sum()),
    )


def binary_matrix(column: pa.Array | pa.ChunkedArray, dtype: Any, width: int) -> NDArray[Any]:
    """The (n, width) array of `dtype` a binary column of n non-null equal-sized rows holds
    (what `binary_column` wrote). Raises ValueError for nulls or rows of another size."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.type != pa.large_binary():
        arr = arr.cast(pa.large_binary())
    n = len(arr)
    dt = np.dtype(dtype)
    if n == 0:
        return np.zeros((0, width), dtype=dt)
    if arr.null_count:
        raise ValueError(f"{arr.null_count} null rows in a binary column of {n}")
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    row = width * dt.itemsize
    if not np.array_equal(np.diff(offsets), np.full(n, row, dtype=np.int64)):
        raise ValueError(f"rows are not all {row} bytes ({width} x {dt})")
    if bufs[2] is None:  # every row is empty (width 0)
        return np.zeros((n, width), dtype=dt)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
    out: NDArray[Any] = data.view(dt).reshape(n, width)
    return out
