# Type stubs for the Rust extension (rust/python/). Keep in step with it: CI runs
# `python -m mypy.stubtest dbgym._core` (.ci/test) against the compiled module.
#
# Every class is final (PyO3 classes cannot be subclassed). Options
# with a fixed set of values are Literals; results are typed classes, not dicts.

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Generic, Literal, TypeVar, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_PLAN_DEPTH",
    "TPCH_MAX_SCALE",
    "TPCH_MIN_SCALE",
    "FeatureColumns",
    "Job",
    "ParseStats",
    "PlanCatalog",
    "PlanFeatures",
    "ReplayColumns",
    "ReplayHandle",
    "Statement",
    "TpchGenerator",
    "Trace",
    "__version__",
    "block_hashes",
    "feature_layout",
    "featurize_plans",
    "parse_log_start",
    "parse_plans_only",
    "parse_sql",
    "pgbench_trace",
    "replay_start",
    "sync_file_blocks",
    "sync_file_hashed",
    "templatize",
    "tpch_query",
    "tpch_template",
    "tpch_trace",
    "trace_from_statements",
]

__version__: str

#: Log formats `parse_log` reads ("csv"/"json" are accepted spellings of csvlog/jsonlog).
_LogFormat = Literal["stderr", "csvlog", "jsonlog", "csv", "json"]
#: Plan encodings of the featurizer.
_Encoding = Literal["qppnet", "tcnn"]
#: Whose login a replayed session uses.
_Identity = Literal["dsn", "logged"]
#: pgbench's built-in scripts ("tpcb" = "tpcb-like") and protocols.
_PgbenchScript = Literal["tpcb-like", "tpcb", "select-only"]
_PgbenchProtocol = Literal["simple", "extended"]

# --- traces (rust/python/trace.rs) ---

@final
class Trace:
    """An immutable workload trace held by Rust (wrapped by dbgym.Workload).

    Pickles as its compact `to_bytes` form (no re-parsing in worker processes).
    """

    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Trace: ...
    def __reduce__(self) -> tuple[Callable[[bytes], Trace], tuple[bytes]]: ...
    def __len__(self) -> int: ...
    def templates(self) -> list[tuple[int, str, int]]: ...
    def sessions(self) -> list[tuple[str, str, str]]: ...
    def template_ids(self) -> npt.NDArray[np.uint32]: ...
    def session_ids(self) -> npt.NDArray[np.uint32]: ...
    def timestamps_us(self) -> npt.NDArray[np.int64]: ...
    def durations_us(self) -> npt.NDArray[np.int64]: ...
    def statement(self, i: int) -> Statement: ...
    def constants(self, i: int) -> list[str]: ...
    def sample(self, n: int, seed: int) -> Trace: ...
    def subset(self, indices: Sequence[int] | npt.NDArray[np.integer]) -> Trace: ...

@final
class Statement:
    """One statement of a trace (see rust/python/trace.rs)."""

    def __new__(
        cls,
        session: int,
        timestamp_us: int,
        template_id: int,
        sql: str,
        params: list[str | None] = ...,
        duration_us: int | None = None,
    ) -> Statement: ...
    @property
    def session(self) -> int: ...
    @property
    def timestamp_us(self) -> int: ...
    @property
    def template_id(self) -> int: ...
    @property
    def sql(self) -> str: ...
    @property
    def params(self) -> list[str | None]: ...
    @property
    def duration_us(self) -> int | None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __reduce__(
        self,
    ) -> tuple[type[Statement], tuple[int, int, int, str, list[str | None], int | None]]: ...

@final
class ParseStats:
    """What reading a log saw besides the statements."""

    @property
    def format(self) -> Literal["stderr", "csvlog", "jsonlog"]: ...
    @property
    def log_line_prefix(self) -> str | None: ...
    @property
    def bytes(self) -> int: ...
    @property
    def records(self) -> int: ...
    @property
    def skipped_lines(self) -> int: ...
    @property
    def first_skipped(self) -> str | None: ...

def parse_log_start(
    path: str | PathLike[str],
    format: _LogFormat | None = None,
    log_line_prefix: str | None = None,
    lenient: bool = False,
    threads: int = 0,
) -> Job[tuple[Trace, ParseStats]]: ...
def parse_sql(path: str | PathLike[str]) -> Trace: ...
def templatize(sql: str) -> tuple[str, list[str]]: ...

# --- long-running work (rust/python/job.rs) ---

_T = TypeVar("_T")

@final
class Job(Generic[_T]):
    """Work on a Rust thread: poll `progress()`/`wait()`, `cancel()`, take `result()` once
    (see dbgym/jobs.py)."""

    @property
    def kind(self) -> str: ...
    @property
    def done(self) -> bool: ...
    def progress(self) -> list[tuple[str, int, int]]: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def result(self) -> _T: ...

# --- replay (rust/python/replay.rs) ---

@final
class ReplayHandle:
    """A replay running on its own thread (see dbgym/replayer/run.py)."""

    @property
    def total(self) -> int: ...
    def done(self) -> int: ...
    def progress(self) -> list[tuple[str, int, int]]: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def result(self) -> ReplayColumns: ...

@final
class ReplayColumns:
    """What a replay recorded, per statement (indexed like the trace) and in total."""

    @property
    def template_id(self) -> npt.NDArray[np.uint32]: ...
    @property
    def session(self) -> npt.NDArray[np.uint32]: ...
    @property
    def connection(self) -> npt.NDArray[np.int32]: ...
    @property
    def scheduled_ns(self) -> npt.NDArray[np.int64]: ...
    @property
    def start_ns(self) -> npt.NDArray[np.int64]: ...
    @property
    def end_ns(self) -> npt.NDArray[np.int64]: ...
    @property
    def sqlstate(self) -> npt.NDArray[np.bytes_]: ...
    @property
    def executed(self) -> int: ...
    @property
    def elapsed_ns(self) -> int: ...
    @property
    def cancelled(self) -> bool: ...

def replay_start(
    trace: Trace,
    dsn: str,
    *,
    speed: float | None = None,
    concurrency: int | None = None,
    statement_timeout_ms: int | None = None,
    template_settings: dict[int, dict[str, str]] | None = None,
    threads: int | None = None,
    identity: _Identity = "dsn",
) -> ReplayHandle: ...
def trace_from_statements(
    session_ids: list[str],
    timestamps_us: list[int],
    sql: list[str],
    params: list[list[str | None]] | None = None,
    template_ids: list[int] | None = None,
) -> Trace: ...

# --- built-in benchmarks (rust/python/benchmarks.rs) ---

TPCH_MIN_SCALE: float
TPCH_MAX_SCALE: float

@final
class TpchGenerator:
    """A deterministic TPC-H data generator at one scale factor and seed."""

    def __new__(cls, scale: float, seed: int) -> TpchGenerator: ...
    @property
    def scale(self) -> float: ...
    @property
    def seed(self) -> int: ...
    def rows(self) -> dict[str, int]: ...
    def table(self, table: str, start: int | None = None, end: int | None = None) -> bytes: ...
    def load_start(
        self,
        dsn: str,
        tables: list[str] | None = None,
        workers: int = 2,
        chunk_bytes: int = 1048576,
        schema: str | None = None,
    ) -> Job[dict[str, int]]: ...

def tpch_query(number: int, scale: float = 1.0, seed: int = 0, stream: int = 0) -> str: ...
def tpch_template(number: int) -> str: ...
def tpch_trace(
    scale: float,
    seed: int,
    streams: int = 1,
    queries: list[int] | None = None,
    shuffle: bool = True,
) -> Trace: ...
def pgbench_trace(
    script: _PgbenchScript,
    scale: int,
    clients: int,
    transactions: int,
    protocol: _PgbenchProtocol = "simple",
    rate: float | None = None,
    seed: int = 0,
) -> Trace: ...

# --- plan featurization (rust/python/featurize.rs) ---

MAX_PLAN_DEPTH: int

@final
class PlanCatalog:
    """Relations, indexes and columns fixing the featurizer's one-hot columns."""

    def __new__(
        cls, relations: list[str] = ..., indexes: list[str] = ..., columns: list[str] = ...
    ) -> PlanCatalog: ...
    @property
    def relations(self) -> list[str]: ...
    @property
    def indexes(self) -> list[str]: ...
    @property
    def columns(self) -> list[str]: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> PlanCatalog: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class PlanFeatures:
    """Featurized plans as numpy arrays (fields as dbgym.plans.featurize.PlanBatch)."""

    @property
    def encoding(self) -> _Encoding: ...
    @property
    def features(self) -> npt.NDArray[np.float32]: ...
    @property
    def node_type(self) -> npt.NDArray[np.int32]: ...
    @property
    def parent(self) -> npt.NDArray[np.int32]: ...
    @property
    def relationship(self) -> npt.NDArray[np.int8]: ...
    @property
    def offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def left(self) -> npt.NDArray[np.int32] | None: ...
    @property
    def right(self) -> npt.NDArray[np.int32] | None: ...
    @property
    def targets(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def planning_time(self) -> npt.NDArray[np.float64]: ...
    @property
    def execution_time(self) -> npt.NDArray[np.float64]: ...

@final
class FeatureColumns:
    """The columns an encoding produces under a catalog."""

    @property
    def type_mask(self) -> npt.NDArray[np.bool_]: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def node_type_names(self) -> list[str]: ...
    @property
    def relationship_names(self) -> list[str]: ...
    @property
    def target_names(self) -> list[str]: ...

#: One plan: EXPLAIN (FORMAT JSON) text, or its decoded JSON.
_Plan = str | bytes | list[object] | dict[str, object]

def featurize_plans(
    plans: _Plan | Sequence[_Plan], catalog: PlanCatalog, encoding: _Encoding
) -> PlanFeatures: ...
def parse_plans_only(plans: _Plan | Sequence[_Plan]) -> int: ...
def feature_layout(catalog: PlanCatalog, encoding: _Encoding) -> FeatureColumns: ...

# --- blocksync (rust/python/blocksync.rs) ---

def sync_file_blocks(
    src: str | PathLike[str], dst: str | PathLike[str], block: int = 8192, chunk: int = 1048576
) -> int:
    """Make the existing file dst equal to src writing only differing blocks; bytes written."""

def block_hashes(path: str | PathLike[str], block: int = 8192, chunk: int = 1048576) -> bytes:
    """xxh3-128 of every block of path, 16 bytes each."""

def sync_file_hashed(
    src: str | PathLike[str],
    dst: str | PathLike[str],
    hashes: bytes,
    block: int = 8192,
    chunk: int = 1048576,
) -> int:
    """Make dst equal to src given src's block_hashes, reading src only where needed."""
