"""The knob action (dbgym.envs.knob_space) on a real PostgreSQL 15 server: decode/encode
round trips are idempotent for every default knob and every numeric/bool/enum knob of
the catalog, sampled actions apply (restarting only when shared_buffers changes) and
applying one again changes nothing, the observation shares the action's scale, memory
and CPU caps keep every action within the server, user ranges override the defaults,
and bad knobs and actions are refused with what is wrong."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

import dbgym
from dbgym.dbms.knobs import MANAGED, check_memory, memory_limit_bytes, validate
from dbgym.dbms.spec import InstanceSpec
from dbgym.envs.knob_space import DEFAULT_KNOBS, KnobSpace, server_limits
from dbgym.envs.spec import KnobRange
from dbgym.errors import InvalidArgumentError, KnobError
from dbgym.observe.knobs import KnobStateObserver

GIB = 2**30


@pytest.fixture(scope="module")
def inst() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as i:
        yield i


@pytest.fixture(scope="module")
def defaults(inst: dbgym.PostgresInstance) -> dict[str, str]:
    """The fresh server's settings (every test that applies knobs requests this first)."""
    return _settings(inst)


def _settings(inst: dbgym.PostgresInstance) -> dict[str, str]:
    with inst.connect() as conn:
        rows = conn.execute("SELECT name, setting FROM pg_settings").fetchall()
    return {str(n): str(v) for n, v in rows}


def _assert_idempotent(ks: KnobSpace, inst: dbgym.PostgresInstance, samples: int) -> None:
    """decode(encode(decode(a))) == decode(a) knob by knob, for seeded samples and the
    edges, and every decoded value is one the server accepts."""
    ks.space.seed(15721)
    k = len(ks.names)
    edges = [np.zeros(k), np.ones(k), np.full(k, 0.5), np.full(k, np.nextafter(1.0, 0.0))]
    edges += [np.full(k, np.float32(1e-7)), np.full(k, np.float32(1 - 1e-7))]
    actions = [np.asarray(e, np.float32) for e in edges]
    actions += [ks.space.sample() for _ in range(samples)]
    for a in actions:
        values = ks.decode(a)
        again = ks.decode(ks.encode(values))
        diff = {n: (values[n], again[n]) for n in ks.names if values[n] != again[n]}
        assert not diff, f"not idempotent at {a.tolist()}: {diff}"
        validate(inst.knob_catalog, dict(values))  # every value is valid for the server


LIMITS = [  # (memory bytes, cpus, container limit)
    (2 * GIB, 2.0, False),
    (memory_limit_bytes("512m"), 1.5, True),
    (80 * 2**20, 1.0, True),
    (1024 * GIB, 64.0, False),
]


@pytest.mark.parametrize(("memory", "cpus", "limited"), LIMITS)
def test_default_knobs_round_trip_idempotently(
    inst: dbgym.PostgresInstance, memory: int, cpus: float, limited: bool
) -> None:
    ks = KnobSpace(inst.knob_catalog, memory_bytes=memory, cpus=cpus, limited=limited)
    assert ks.names == tuple(k.name for k in DEFAULT_KNOBS)
    assert ks.restart == ("shared_buffers",)
    assert ks.space.shape == (len(DEFAULT_KNOBS),) and ks.space.dtype == np.float32
    _assert_idempotent(ks, inst, samples=1000)
    low = ks.decode(np.zeros(len(ks.names), np.float32))
    high = ks.decode(np.ones(len(ks.names), np.float32))
    for name, (lo, hi) in ks.ranges.items():  # the ends of the action are the range's ends
        assert float(low[name]) == pytest.approx(lo, rel=1e-3), name
        assert float(high[name]) == pytest.approx(hi, rel=1e-3), name
    # enums in pg_settings' order: local, remote_write, remote_apply, on, off
    assert (low["synchronous_commit"], high["synchronous_commit"]) == ("local", "off")


def test_every_catalog_knob_round_trips_idempotently(inst: dbgym.PostgresInstance) -> None:
    """Beyond the defaults: every numeric, bool and enum knob on its pg_settings range
    (e.g. the planner costs up to 1.79769e+308, timeouts, -1 sentinels)."""
    names = [
        s.name
        for s in inst.knob_catalog.values()
        if s.vartype != "string" and s.context != "internal" and s.name.lower() not in MANAGED
    ]
    assert len(names) > 200
    ks = KnobSpace(inst.knob_catalog, [KnobRange(n) for n in names], memory_bytes=4 * GIB, cpus=4.0)
    assert len(ks.names) == len(names)
    _assert_idempotent(ks, inst, samples=300)


def test_default_action_decodes_to_the_server_defaults(
    inst: dbgym.PostgresInstance, defaults: dict[str, str]
) -> None:
    ks = KnobSpace(inst.knob_catalog, memory_bytes=8 * GIB, cpus=4.0)
    action = ks.default_action(defaults)
    assert ks.space.contains(action)
    assert ks.decode(action) == {n: defaults[n] for n in ks.names}
    assert ks.describe(defaults) == {
        "shared_buffers": "128 MiB",
        "work_mem": "4 MiB",
        "maintenance_work_mem": "64 MiB",
        "effective_cache_size": "4 GiB",
        "random_page_cost": "4",
        "effective_io_concurrency": "1",
        "max_parallel_workers_per_gather": "2",
        "max_wal_size": "1 GiB",
        "checkpoint_completion_target": "0.9",
        "bgwriter_lru_maxpages": "100",
        "synchronous_commit": "on",
    }
    # values with a unit encode like their base-unit form
    with_units = {**defaults, "shared_buffers": "128MB", "work_mem": "4MB"}
    assert np.array_equal(ks.encode(with_units), action)


def test_sampled_actions_apply_and_reapply_changes_nothing(
    inst: dbgym.PostgresInstance, defaults: dict[str, str]
) -> None:
    # the defaults on a 2 GiB server: shared_buffers up to 512MB keeps restarts quick
    ks = KnobSpace(inst.knob_catalog, memory_bytes=2 * GIB, cpus=2.0)
    ks.space.seed(1)
    observer = KnobStateObserver(inst, ks.names, ranges=ks.ranges)
    try:
        assert observer.scales == ks.scales  # one scale for the action and the observation
        assert np.array_equal(observer.observe(), ks.encode(defaults))
        restarts = 0
        shared = defaults["shared_buffers"]
        for _ in range(20):
            values = ks.decode(ks.space.sample())
            change = inst.apply_knobs(values)
            assert change.restarted == (values["shared_buffers"] != shared)
            shared = values["shared_buffers"]
            restarts += change.restarted
            assert inst.alive()
            now = _settings(inst)
            assert {n: now[n] for n in ks.names} == values  # the server runs the decoded values
            assert change.applied == values
            # what the agent then observes decodes to what it asked for
            seen = observer.observe()
            assert np.array_equal(seen, ks.encode(values))
            assert ks.decode(seen) == values
            again = inst.apply_knobs(ks.decode(seen))
            assert not again.restarted
            assert again.applied == values
            assert _settings(inst) == now
        assert restarts >= 10  # shared_buffers moves with almost every sample
    finally:
        observer.close()


def test_memory_caps_keep_every_action_within_a_small_server(
    inst: dbgym.PostgresInstance, defaults: dict[str, str]
) -> None:
    limit, cpus = server_limits(InstanceSpec(backend="docker", memory="512m", cpus=1.5))
    assert (limit, cpus) == (512 * 2**20, 1.5)
    ks = KnobSpace(inst.knob_catalog, memory_bytes=limit, cpus=cpus, limited=True)
    top = ks.decode(np.ones(len(ks.names), np.float32))
    check_memory(dict(top), limit, "512m")
    assert int(top["shared_buffers"]) * 8192 == limit // 4
    assert int(top["work_mem"]) * 1024 <= limit // 64
    assert int(top["maintenance_work_mem"]) * 1024 <= limit // 8
    assert int(top["effective_cache_size"]) * 8192 <= limit * 0.9
    assert top["max_parallel_workers_per_gather"] == "1"
    ks.space.seed(3)
    for _ in range(200):
        check_memory(dict(ks.decode(ks.space.sample())), limit, "512m")
    # the largest action applies on a real server
    assert inst.apply_knobs(top).applied == top

    # wal_buffers tuned too: shared_buffers + 16MB of WAL buffers still fit
    with_wal = KnobSpace(
        inst.knob_catalog,
        (*DEFAULT_KNOBS, KnobRange("wal_buffers")),
        memory_bytes=limit,
        cpus=cpus,
        limited=True,
    )
    check_memory(dict(with_wal.decode(np.ones(len(with_wal.names), np.float32))), limit, "512m")

    # a tiny container: the reserve binds (tightly), and the curated low end yields
    tiny = 80 * 2**20
    ks = KnobSpace(inst.knob_catalog, memory_bytes=tiny, cpus=0.5, limited=True)
    top = ks.decode(np.ones(len(ks.names), np.float32))
    check_memory(dict(top), tiny, "80m")
    with pytest.raises(KnobError, match="does not fit"):
        check_memory({"shared_buffers": str(int(top["shared_buffers"]) + 16)}, tiny, "80m")
    assert ks.ranges["shared_buffers"][0] == inst.knob_catalog["shared_buffers"].min_val
    assert ks.ranges["max_parallel_workers_per_gather"] == (0.0, 0.0)

    # a user range above a cap is capped; a user low end above it is refused
    big = KnobSpace(
        inst.knob_catalog,
        [KnobRange("shared_buffers", 16, 10_000_000)],
        memory_bytes=limit,
        cpus=1.0,
        limited=True,
    )
    assert big.ranges["shared_buffers"] == (16.0, limit / 4 / 8192)
    with pytest.raises(KnobError, match="memory and CPUs allow at most") as e:
        KnobSpace(
            inst.knob_catalog,
            [KnobRange("shared_buffers", 1_000_000)],
            memory_bytes=limit,
            cpus=1.0,
            limited=True,
        )
    assert e.value.knob == "shared_buffers"

    # a big machine: per-operation memory stops at 2GB, CPUs bound the workers
    huge = KnobSpace(inst.knob_catalog, memory_bytes=1024 * GIB, cpus=64.0)
    assert huge.ranges["work_mem"][1] == huge.ranges["maintenance_work_mem"][1] == 2 * 2**20
    assert huge.ranges["shared_buffers"][1] == 256 * GIB / 8192
    assert huge.ranges["max_parallel_workers_per_gather"] == (0.0, 64.0)


def test_server_limits_of_a_local_server() -> None:
    memory, cpus = server_limits(InstanceSpec())
    assert memory == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert cpus == len(os.sched_getaffinity(0))


def test_user_ranges_override_the_defaults(inst: dbgym.PostgresInstance) -> None:
    ks = KnobSpace(
        inst.knob_catalog,
        [
            KnobRange("random_page_cost", 1.5, 2.5),
            KnobRange("Work_Mem", high=8192),  # names are case-insensitive
            KnobRange("geqo_threshold"),  # not a default knob: pg_settings' range
            KnobRange("enable_hashjoin"),
        ],
        memory_bytes=4 * GIB,
        cpus=2.0,
    )
    assert ks.names == ("random_page_cost", "work_mem", "geqo_threshold", "enable_hashjoin")
    geqo = inst.knob_catalog["geqo_threshold"]
    assert ks.ranges == {
        "random_page_cost": (1.5, 2.5),
        "work_mem": (64.0, 8192.0),  # the curated low end, the user's high end
        "geqo_threshold": (geqo.min_val, geqo.max_val),
    }
    assert ks.decode(np.zeros(4, np.float32)) == {
        "random_page_cost": "1.5",
        "work_mem": "64",
        "geqo_threshold": "2",
        "enable_hashjoin": "off",
    }
    assert ks.decode(np.ones(4, np.float32)) == {
        "random_page_cost": "2.5",
        "work_mem": "8192",
        "geqo_threshold": "2147483647",
        "enable_hashjoin": "on",
    }
    observer = KnobStateObserver(inst, ks.names, ranges=ks.ranges)
    try:
        assert observer.scales == ks.scales
    finally:
        observer.close()


@pytest.mark.parametrize(
    ("knob", "named", "match"),
    [
        (KnobRange("no_such_knob"), "no_such_knob", "unknown knob"),
        (KnobRange("work_mam"), "work_mam", "did you mean work_mem"),
        (KnobRange("search_path"), "search_path", "string setting"),
        (KnobRange("port"), "port", "managed by dbgym"),
        (KnobRange("block_size"), "block_size", "read-only"),
        (KnobRange("jit", 0, 1), "jit", "low/high do not apply"),
        (KnobRange("random_page_cost", -1.0, 2.0), "random_page_cost", "outside"),
        (KnobRange("work_mem", high=10.0**12), "work_mem", "outside"),
    ],
)
def test_bad_knobs_are_refused_with_their_name(
    inst: dbgym.PostgresInstance, knob: KnobRange, named: str, match: str
) -> None:
    with pytest.raises(KnobError, match=match) as e:
        KnobSpace(inst.knob_catalog, [KnobRange("bgwriter_delay"), knob], memory_bytes=GIB, cpus=2)
    assert e.value.knob == named


def test_a_knob_listed_twice_is_refused(inst: dbgym.PostgresInstance) -> None:
    with pytest.raises(KnobError, match="listed twice") as e:
        KnobSpace(
            inst.knob_catalog,
            [KnobRange("work_mem"), KnobRange("WORK_MEM")],
            memory_bytes=GIB,
            cpus=2,
        )
    assert e.value.knob == "work_mem"


def test_bad_actions_and_settings_are_refused(inst: dbgym.PostgresInstance) -> None:
    ks = KnobSpace(
        inst.knob_catalog,
        [KnobRange("random_page_cost", 1.5, 2.5), KnobRange("enable_hashjoin")],
        memory_bytes=GIB,
        cpus=2,
    )
    bad = [
        (np.zeros(3, np.float32), r"shape \(2,\).*got \(3,\)"),
        (np.zeros((1, 2), np.float32), r"shape \(2,\)"),
        ([0.5, 1.5], r"action\[1\] \(enable_hashjoin\) = 1.5: must be in \[0, 1\]"),
        ([-0.25, 0.0], r"action\[0\] \(random_page_cost\) = -0.25"),
        ([np.nan, 0.0], r"action\[0\] \(random_page_cost\) = nan"),
        ([0.0, np.inf], r"action\[1\] \(enable_hashjoin\) = inf"),
        (["a", "b"], r"expected 2 numbers"),
    ]
    for action, match in bad:
        with pytest.raises(InvalidArgumentError, match=match):
            ks.decode(action)
    with pytest.raises(InvalidArgumentError, match="missing for: enable_hashjoin"):
        ks.encode({"random_page_cost": "2"})
    with pytest.raises(KnobError, match="enable_hashjoin") as e:
        ks.encode({"random_page_cost": "2", "enable_hashjoin": "maybe"})
    assert e.value.knob == "enable_hashjoin"
    with pytest.raises(KnobError) as e:
        ks.encode({"random_page_cost": "cheap", "enable_hashjoin": "on"})
    assert e.value.knob == "random_page_cost"
