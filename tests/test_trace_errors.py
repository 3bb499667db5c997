"""Malformed workload sources: clear TraceParseError (file, line, byte offset), or skipped and
counted lines with lenient=True. Inputs are real server logs (rust/trace/testdata, written by
PostgreSQL 15 with log_statement = 'all') corrupted on purpose."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from dbgym import Workload
from dbgym.errors import TraceParseError, WorkloadError

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


def _line_of(data: bytes | bytearray, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def test_truncated_csvlog_names_file_line_and_offset(tmp_path: Path) -> None:
    data = (DATA / "pg15.csv").read_bytes()
    # Cut inside the quoted, multi-line text of an execute record.
    cut = data.index(b"  from t1\n") + 4
    path = tmp_path / "cut.csv"
    path.write_bytes(data[:cut])
    record_start = data.rindex(b"\n2026-", 0, cut) + 1
    quote = data.index(b'"', data.index(b",LOG,00000,", record_start))
    with pytest.raises(TraceParseError) as exc:
        Workload.from_log(path)
    msg = str(exc.value)
    assert f"{path}:{_line_of(data, quote)}: byte offset {quote}:" in msg
    assert "unterminated quoted field" in msg


def test_invalid_utf8_and_garbled_lines(tmp_path: Path) -> None:
    data = bytearray((DATA / "pg15.csv").read_bytes())
    at = data.index(b"statement: create table t1") + len(b"statement: ")
    data[at] = 0xFF
    path = tmp_path / "bad.csv"
    path.write_bytes(bytes(data))
    with pytest.raises(
        TraceParseError, match=rf"bad.csv:{_line_of(data, at)}: byte offset {at}: invalid UTF-8"
    ):
        Workload.from_log(path)
    w = Workload.from_log(path, lenient=True)
    assert w.skipped_lines == 1
    assert len(w) == 65  # the statement with the bad byte is skipped


def test_stderr_prefix_mismatch_and_lenient_counts(tmp_path: Path) -> None:
    data = (DATA / "pg15.log").read_bytes()
    lines = data.split(b"\n")
    noise = [b"kernel: something unrelated", b"another stray line"]
    k = next(i for i in range(10, len(lines)) if not lines[i].startswith(b"\t"))
    corrupted = b"\n".join(lines[:k] + noise + lines[k:])
    path = tmp_path / "pg.log"
    path.write_bytes(corrupted)
    offset = len(b"\n".join(lines[:k])) + 1
    prefix = "%m [%p] %q%u@%d/%c "
    with pytest.raises(TraceParseError) as exc:
        Workload.from_log(path, log_line_prefix=prefix)
    assert f"pg.log:{k + 1}: byte offset {offset}: line does not match log_line_prefix" in str(
        exc.value
    )
    w = Workload.from_log(path, log_line_prefix=prefix, lenient=True)
    assert w.skipped_lines == 2
    assert len(w) == 66
    assert w.stats is not None and w.stats.first_skipped is not None
    assert f"pg.log:{k + 1}:" in w.stats.first_skipped
    # A prefix that matches nothing at all.
    with pytest.raises(TraceParseError, match=r"pg.log:1: byte offset 0: line does not match"):
        Workload.from_log(path, log_line_prefix="%t <%u> ")


def test_bad_arguments_and_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(TraceParseError, match="file not found"):
        Workload.from_log(tmp_path / "nope.csv")
    with pytest.raises(TraceParseError, match="unknown log format"):
        Workload.from_log(DATA / "pg15.csv", format="xml")
    with pytest.raises(TraceParseError, match="invalid log_line_prefix"):
        Workload.from_log(DATA / "pg15.log", log_line_prefix="%u%d ")
    (tmp_path / "noise.log").write_text("hello\nworld\n")
    with pytest.raises(TraceParseError, match="cannot detect the log_line_prefix"):
        Workload.from_log(tmp_path / "noise.log")
    with pytest.raises(TraceParseError, match="is a directory"):
        Workload.from_log(tmp_path)
    with pytest.raises(TraceParseError, match="file not found"):
        Workload.from_sql(tmp_path / "missing.sql")
    with pytest.raises(WorkloadError):
        Workload.from_log(DATA / "pg15.csv").sample(-1)


def test_wrong_format_forced_is_an_error_not_a_panic(tmp_path: Path) -> None:
    with pytest.raises(TraceParseError, match=r"not a jsonlog record.*looks like csvlog") as exc:
        Workload.from_log(DATA / "pg15.csv", format="jsonlog")
    assert (exc.value.line, exc.value.offset) == (1, 0)
    assert exc.value.path == str(DATA / "pg15.csv")
    with pytest.raises(TraceParseError, match="garbled csvlog record"):
        Workload.from_log(DATA / "pg15.json", format="csvlog")
    w = Workload.from_log(DATA / "pg15.json", format="csvlog", lenient=True)
    assert len(w) == 0
    assert w.skipped_lines == (DATA / "pg15.json").read_bytes().count(b"\n")


def test_random_bytes_never_crash(tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    for i in range(30):
        path = tmp_path / f"r{i}.log"
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
        for fmt in ("stderr", "csvlog", "jsonlog"):
            for lenient in (False, True):
                with contextlib.suppress(TraceParseError):
                    Workload.from_log(path, format=fmt, lenient=lenient, log_line_prefix="%m ")


def test_progress_is_reported_and_an_exception_in_it_cancels(tmp_path: Path) -> None:
    """Ctrl-C safety: a parse is a job polled by dbgym.jobs.run_job; its progress grows to
    the file's size, and an exception while it runs (KeyboardInterrupt on Ctrl-C) cancels
    the parse, which stops at its next block, and propagates."""
    from benches.csvlog_synth import write_csvlog
    from dbgym import _core
    from dbgym.jobs import run_job

    path = tmp_path / "big.csv"
    write_csvlog(path, 40_000_000)
    size = path.stat().st_size
    seen: list[tuple[int, int]] = []

    def record(done: dict[str, int], totals: dict[str, int]) -> None:
        seen.append((done[path.name], totals[path.name]))

    job = _core.parse_log_start(path, threads=1)
    trace, stats = run_job(job, title="reading", progress=False, on_progress=record).result()
    assert seen[-1] == (size, size) == (stats.bytes, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert job.done and job.kind == "parse"

    def interrupt(done: dict[str, int], totals: dict[str, int]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(_core.parse_log_start(path, threads=2), title="reading", on_progress=interrupt)

    job = _core.parse_log_start(path, threads=1)
    job.cancel()  # the parse stops at its next block
    t0 = time.monotonic()
    assert job.wait(5.0) and time.monotonic() - t0 < 5.0
    with pytest.raises(WorkloadError, match="cancelled"):
        job.result()
    # The bar variant of the public API.
    w = Workload.from_log(path, progress=True)
    assert len(w) == len(trace)
