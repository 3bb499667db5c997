"""The Rust core's parallel work keeps working in a forked child (gymnasium's
AsyncVectorEnv forks its workers by default): rayon runs on a pool per process id, so a
child does not wait forever on the parent's pool threads."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from dbgym import _core

BLOCK, CHUNK = 8192, 1 << 20


def _hash(path: str) -> bytes:
    return bytes(_core.block_hashes(path, BLOCK, CHUNK))


def _child(path: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    queue.put(_hash(path))


def test_parallel_work_after_fork(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(bytes(range(256)) * (16 * CHUNK // 256))  # 16 chunks: parallel
    parent = _hash(str(data))  # the parent's pool now exists
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_child, args=(str(data), queue))
    proc.start()
    proc.join(60)
    alive = proc.is_alive()
    if alive:
        proc.kill()
    assert not alive, "the forked child hung in parallel work"
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == parent
