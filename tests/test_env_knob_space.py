"""The knob action on a real server: decode/encode round trips, every sampled action
applies (restarting only for shared_buffers) and applying it again changes nothing,
memory caps, user ranges, and clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import dbgym
from dbgym.dbms.knobs import check_memory, memory_limit_bytes
from dbgym.dbms.spec import InstanceSpec
from dbgym.envs.knob_space import DEFAULT_KNOBS, KnobSpace, server_limits
from dbgym.envs.spec import KnobRange
from dbgym.errors import InvalidArgumentError, KnobError


@pytest.fixture(scope="module")
def inst() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as i:
        yield i


def _settings(inst: dbgym.PostgresInstance, names: tuple[str, ...]) -> dict[str, str]:
    with inst.connect() as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(names),)
        ).fetchall()
    return {str(n): str(v) for n, v in rows}


def test_round_trip_is_idempotent(inst: dbgym.PostgresInstance) -> None:
    mem, cpus = server_limits(InstanceSpec())
    ks = KnobSpace(inst.knob_catalog, memory_bytes=mem, cpus=cpus)
    assert ks.names == tuple(k.name for k in DEFAULT_KNOBS)
    ks.space.seed(0)
    for _ in range(300):
        a = ks.space.sample()
        values = ks.decode(a)
        again = ks.decode(ks.encode(values))
        assert again == values
    for edge in (np.zeros(len(ks.names)), np.ones(len(ks.names))):
        values = ks.decode(edge.astype(np.float32))
        assert ks.decode(ks.encode(values)) == values
    defaults = _settings(inst, ks.names)
    assert ks.decode(ks.default_action(defaults)) == {n: defaults[n] for n in ks.names}


def test_sampled_actions_apply_and_reapply_changes_nothing(inst: dbgym.PostgresInstance) -> None:
    mem, cpus = server_limits(InstanceSpec())
    # keep shared_buffers modest so 20 restarts stay quick on a busy machine
    knobs = tuple(
        KnobRange("shared_buffers", 2048, 32768) if k.name == "shared_buffers" else k
        for k in DEFAULT_KNOBS
    )
    ks = KnobSpace(inst.knob_catalog, knobs, memory_bytes=mem, cpus=cpus)
    ks.space.seed(1)
    restarts = 0
    for _ in range(20):
        values = ks.decode(ks.space.sample())
        change = inst.apply_knobs(values)
        restarts += change.restarted
        assert inst.alive()
        now = _settings(inst, ks.names)
        assert {n: now[n] for n in ks.names} == values
        again = inst.apply_knobs(values)
        assert not again.restarted
        assert _settings(inst, ks.names) == now
    assert restarts >= 1  # shared_buffers moved at least once


def test_memory_caps_keep_every_action_in_the_memory() -> None:
    with dbgym.PostgresInstance.launch() as inst:
        limit = memory_limit_bytes("512m")
        ks = KnobSpace(inst.knob_catalog, memory_bytes=limit, cpus=1.0, limited=True)
        top = ks.decode(np.ones(len(ks.names), dtype=np.float32))
        check_memory({"shared_buffers": top["shared_buffers"]}, limit, "512m")
        assert int(top["shared_buffers"]) * 8192 <= limit // 4
        assert int(top["work_mem"]) * 1024 <= limit // 64
        assert int(top["max_parallel_workers_per_gather"]) <= 1
        # a user range above the cap is capped too
        big = KnobSpace(
            inst.knob_catalog,
            [KnobRange("shared_buffers", 16, 10_000_000)],
            memory_bytes=limit,
            cpus=1.0,
            limited=True,
        )
        assert big.ranges["shared_buffers"][1] * 8192 <= limit // 4


def test_user_ranges_and_errors(inst: dbgym.PostgresInstance) -> None:
    ks = KnobSpace(
        inst.knob_catalog,
        [KnobRange("random_page_cost", 1.5, 2.5), KnobRange("enable_hashjoin")],
        memory_bytes=2**30,
        cpus=2,
    )
    assert ks.decode(np.array([0.0, 0.0], np.float32)) == {
        "random_page_cost": "1.5",
        "enable_hashjoin": "off",
    }
    assert ks.decode(np.array([1.0, 1.0], np.float32))["random_page_cost"] == "2.5"
    with pytest.raises(KnobError) as e:
        KnobSpace(inst.knob_catalog, [KnobRange("no_such_knob")], memory_bytes=2**30, cpus=2)
    assert e.value.knob == "no_such_knob"
    with pytest.raises(KnobError) as e:
        KnobSpace(inst.knob_catalog, [KnobRange("search_path")], memory_bytes=2**30, cpus=2)
    assert e.value.knob == "search_path"
    with pytest.raises(KnobError, match="outside"):
        KnobSpace(
            inst.knob_catalog,
            [KnobRange("random_page_cost", -1.0, 2.0)],
            memory_bytes=2**30,
            cpus=2,
        )
    with pytest.raises(InvalidArgumentError, match="shape"):
        ks.decode(np.zeros(3, np.float32))
    with pytest.raises(InvalidArgumentError, match=r"random_page_cost.*\[0, 1\]"):
        ks.decode(np.array([1.5, 0.0], np.float32))
    with pytest.raises(InvalidArgumentError, match="must be in"):
        ks.decode(np.array([np.nan, 0.0], np.float32))
