"""The Rust featurizer on plans captured from a real PostgreSQL server (tests/plan_corpus.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import dbgym
from dbgym.errors import InvalidArgumentError, PlanFormatError
from dbgym.observe.plans import explain_one
from dbgym.plans import PlanBatch, PlanCatalog, featurize, parse_plans_only
from dbgym.plans.reference import featurize_reference
from tests.plan_corpus import CapturedPlan, corpus, corpus_server


@pytest.fixture(scope="module")
def plans() -> tuple[CapturedPlan, ...]:
    return corpus()


@pytest.fixture(scope="module")
def catalog() -> PlanCatalog:
    with corpus_server().connect() as conn:
        return PlanCatalog.from_connection(conn)


def preorder(text: str) -> Iterator[dict[str, Any]]:
    doc = json.loads(text)
    for st in doc if isinstance(doc, list) else [doc]:
        stack = [st["Plan"]]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.get("Plans", [])))


def assert_same(a: PlanBatch, b: PlanBatch) -> None:
    assert a.feature_names == b.feature_names
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.node_type, b.node_type)
    np.testing.assert_array_equal(a.parent, b.parent)
    np.testing.assert_array_equal(a.relationship, b.relationship)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for x, y in [(a.left, b.left), (a.right, b.right), (a.targets, b.targets)]:
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.planning_time, b.planning_time)
    np.testing.assert_array_equal(a.execution_time, b.execution_time)


def test_corpus_covers_the_plan_shapes_the_issue_names(plans: tuple[CapturedPlan, ...]) -> None:
    types = {n["Node Type"] for p in plans for n in preorder(p.text)}
    for needed in [
        "Hash Join", "Merge Join", "Nested Loop", "Index Scan", "Index Only Scan",
        "Bitmap Heap Scan", "Bitmap Index Scan", "Gather", "Gather Merge", "CTE Scan",
        "WindowAgg", "ModifyTable", "Recursive Union", "WorkTable Scan", "SetOp", "Memoize",
        "LockRows", "Incremental Sort",
    ]:  # fmt: skip
        assert needed in types, needed
    rels = {n.get("Parent Relationship") for p in plans for n in preorder(p.text)}
    assert {"Outer", "Inner", "InitPlan", "SubPlan", "Subquery", "Member"} <= rels
    ops = {n.get("Operation") for p in plans for n in preorder(p.text)}
    assert {"Insert", "Update", "Delete"} <= ops


@pytest.mark.parametrize("encoding", ["qppnet", "tcnn"])
def test_node_counts_equal_the_json(
    plans: tuple[CapturedPlan, ...], catalog: PlanCatalog, encoding: str
) -> None:
    batch = featurize([p.text for p in plans], catalog=catalog, encoding=encoding)  # type: ignore[arg-type]
    counts = [sum(1 for _ in preorder(p.text)) for p in plans]
    assert batch.n_plans == len(plans)
    np.testing.assert_array_equal(np.diff(batch.offsets), counts)
    assert batch.features.shape == (sum(counts), len(batch.feature_names))
    assert batch.features.dtype == np.float32 and batch.features.flags.c_contiguous
    assert parse_plans_only([p.text for p in plans]) == sum(counts)


@pytest.mark.parametrize("encoding", ["qppnet", "tcnn"])
def test_matches_the_python_reference_exactly(
    plans: tuple[CapturedPlan, ...], catalog: PlanCatalog, encoding: str
) -> None:
    texts = [p.text for p in plans]
    assert_same(
        featurize(texts, catalog=catalog, encoding=encoding),  # type: ignore[arg-type]
        featurize_reference(texts, catalog, encoding),  # type: ignore[arg-type]
    )


def test_feature_names_line_up_with_columns(
    plans: tuple[CapturedPlan, ...], catalog: PlanCatalog
) -> None:
    batch = featurize([p.text for p in plans], catalog=catalog)
    nodes = [n for p in plans for n in preorder(p.text)]
    f32 = np.float32
    np.testing.assert_array_equal(
        batch.column("est_rows"), np.array([math.log1p(n["Plan Rows"]) for n in nodes], f32)
    )
    np.testing.assert_array_equal(
        batch.column("est_total_cost"), np.array([math.log1p(n["Total Cost"]) for n in nodes], f32)
    )
    np.testing.assert_array_equal(
        batch.column("est_width"), np.array([math.log1p(n["Plan Width"]) for n in nodes], f32)
    )
    for i, n in enumerate(nodes):
        row = dict(zip(batch.feature_names, batch.features[i].tolist(), strict=True))
        assert row[f"type={n['Node Type']}"] == 1.0
        assert batch.layout.node_type_names[batch.node_type[i]] == n["Node Type"]
        if "Relation Name" in n:
            assert row[f"relation={n['Relation Name']}"] == 1.0  # every relation is in the catalog
        if "Index Name" in n:
            assert row[f"index={n['Index Name']}"] == 1.0
        if "Join Type" in n:
            assert row[f"join_type={n['Join Type']}"] == 1.0
        if "Parent Relationship" in n:
            assert row[f"relationship={n['Parent Relationship']}"] == 1.0
        if "Hash Buckets" in n:
            assert row["hash_buckets"] == np.float32(math.log1p(n["Hash Buckets"]))
        if "Sort Method" in n:
            assert row[f"sort_method={n['Sort Method']}"] == 1.0
        # a node sets only the columns its operator type can have (QPPNet's per-type inputs)
        set_cols = np.flatnonzero(batch.features[i])
        assert batch.layout.type_mask[batch.node_type[i], set_cols].all()
    assert batch.column("relation=<other>").sum() == 0
    assert batch.column("type=<other>").sum() == 0


def test_parents_follow_the_json_tree(plans: tuple[CapturedPlan, ...]) -> None:
    batch = featurize([p.text for p in plans])
    for i in range(batch.n_plans):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        parent = batch.parent[lo:hi]
        assert parent[0] == -1
        assert ((parent[1:] >= lo) & (parent[1:] < np.arange(lo + 1, hi))).all()  # pre-order


def test_targets_come_from_analyze(plans: tuple[CapturedPlan, ...]) -> None:
    batch = featurize([p.text for p in plans])
    assert batch.targets is not None
    assert batch.layout.target_names == (
        "actual_startup_time", "actual_total_time", "actual_rows", "actual_loops"
    )  # fmt: skip
    for i, p in enumerate(plans):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        t = batch.targets[lo:hi]
        nodes = list(preorder(p.text))
        if p.options == "plain":
            assert np.isnan(t).all() and math.isnan(batch.execution_time[i])
            assert math.isnan(batch.planning_time[i])  # plain EXPLAIN prints no timing
        else:
            np.testing.assert_array_equal(t[:, 2], [n["Actual Rows"] for n in nodes])
            np.testing.assert_array_equal(t[:, 3], [n["Actual Loops"] for n in nodes])
            np.testing.assert_array_equal(t[:, 1], [n["Actual Total Time"] for n in nodes])
            assert batch.execution_time[i] == json.loads(p.text)[0]["Execution Time"]
            assert batch.planning_time[i] == json.loads(p.text)[0]["Planning Time"]


def test_deterministic_and_batch_independent(
    plans: tuple[CapturedPlan, ...], catalog: PlanCatalog
) -> None:
    texts = [p.text for p in plans]
    a = featurize(texts, catalog=catalog, encoding="tcnn")
    assert_same(a, featurize(texts, catalog=catalog, encoding="tcnn"))
    # bytes in, same out; one plan at a time, same rows
    assert_same(a, featurize([t.encode() for t in texts], catalog=catalog, encoding="tcnn"))
    for i in [0, 17, len(texts) - 1]:
        assert_same(a.plan(i), featurize(texts[i], catalog=catalog, encoding="tcnn"))
    # decoded JSON is accepted too
    assert_same(a.plan(3), featurize([json.loads(texts[3])], catalog=catalog, encoding="tcnn"))


def test_pg17_keys_do_not_change_features(plans: tuple[CapturedPlan, ...]) -> None:
    doc = json.loads(plans[-1].text)
    doc[0]["Memory"] = {"Used": 23, "Allocated": 48}
    doc[0]["Serialization"] = {"Time": 0.01, "Output Volume": 3, "Format": "text"}
    doc[0]["Plan"]["Disabled"] = False
    assert_same(featurize(plans[-1].text), featurize(json.dumps(doc)))


def test_tcnn_children_on_hand_checked_plans() -> None:
    with corpus_server().connect(autocommit=True) as conn:
        join = explain_one(
            conn,
            "select * from nation join region on n_regionkey = r_regionkey",
            planner_settings={"enable_mergejoin": "off", "enable_nestloop": "off"},
        )
        initplan = explain_one(
            conn,
            "select * from nation where n_regionkey = (select max(r_regionkey) from region)",
            planner_settings={"enable_indexscan": "off", "enable_bitmapscan": "off"},
        )
    shape = [(n["Node Type"], n.get("Parent Relationship")) for n in preorder(join)]
    assert shape == [
        ("Hash Join", None),
        ("Seq Scan", "Outer"),
        ("Hash", "Inner"),
        ("Seq Scan", "Outer"),
    ]
    shape = [(n["Node Type"], n.get("Parent Relationship")) for n in preorder(initplan)]
    assert shape == [("Seq Scan", None), ("Aggregate", "InitPlan"), ("Seq Scan", "Outer")]
    b = featurize([join, initplan], encoding="tcnn")
    assert b.left is not None and b.right is not None
    # rows: 0 HJ, 1 Seq nation, 2 Hash, 3 Seq region | 4 Seq nation, 5 Agg, 6 Seq region
    # links are 1-based (0 = the zero padding row of padded_features())
    assert b.left.tolist() == [2, 0, 4, 0, 6, 7, 0]
    assert b.right.tolist() == [3, 0, 0, 0, 0, 0, 0]
    padded = b.padded_features()
    assert not padded[0].any()
    np.testing.assert_array_equal(padded[b.left[0]], b.features[1])


def test_malformed_real_plans_name_index_and_path(plans: tuple[CapturedPlan, ...]) -> None:
    texts = [p.text for p in plans[:30]]
    doc = json.loads(texts[17])
    doc[0]["Plan"]["Plans"][0]["Total Cost"] = "12.5"
    bad = [*texts[:17], json.dumps(doc), *texts[18:]]
    with pytest.raises(PlanFormatError) as err:
        featurize(bad)
    assert err.value.plan_index == 17
    assert err.value.path == '$[0].Plan.Plans[0]["Total Cost"]'
    assert str(err.value).startswith(
        'plan 17: $[0].Plan.Plans[0]["Total Cost"]: expected number, got string "12.5"'
    )
    truncated = [*texts[:5], texts[5][: len(texts[5]) // 2]]
    with pytest.raises(PlanFormatError, match=r"^plan 5: \$\[0\]\.Plan.*EOF while parsing"):
        featurize(truncated)
    doc[0]["Plan"]["Plans"][0]["Total Cost"] = 12.5
    del doc[0]["Plan"]["Plans"][0]["Node Type"]
    with pytest.raises(
        PlanFormatError, match=r'^plan 0: \$\[0\]\.Plan\.Plans\[0\]: missing key "Node Type"'
    ):
        parse_plans_only([json.dumps(doc)])
    with pytest.raises(PlanFormatError, match="plan 2: expected str or bytes") as err:
        featurize([texts[0], texts[1], 42])  # type: ignore[list-item]
    assert err.value.plan_index == 2
    with pytest.raises(InvalidArgumentError, match="encoding must be"):
        featurize(texts[0], encoding="bao")  # type: ignore[arg-type]
    # decoded JSON is accepted and gives the same features as its text
    decoded = featurize([json.loads(texts[0]), texts[1]])
    np.testing.assert_array_equal(decoded.features, featurize(texts[:2]).features)


def test_catalog_from_a_real_database_round_trips(catalog: PlanCatalog, tmp_path: Any) -> None:
    assert {"lineitem", "orders", "pgbench_accounts"} <= set(catalog.relations)
    assert {"lineitem_pkey", "orders_custkey_idx", "pgbench_accounts_pkey"} <= set(catalog.indexes)
    assert "lineitem.l_shipdate" in catalog.columns
    assert PlanCatalog.from_json(catalog.to_json()) == catalog
    catalog.save(tmp_path / "cat.json")
    back = PlanCatalog.load(tmp_path / "cat.json")
    assert back == catalog and hash(back) == hash(catalog)
    assert dbgym.PlanCatalog is PlanCatalog and dbgym.featurize is featurize


def test_key_order_and_escapes_do_not_matter(plans: tuple[CapturedPlan, ...]) -> None:
    texts = [p.text for p in plans[:40]]
    reordered = [json.dumps(json.loads(t), sort_keys=True) for t in texts]  # "Plans" first
    escaped = [json.dumps(json.loads(t), ensure_ascii=True, indent=None) for t in texts]
    base = featurize(texts, encoding="tcnn")
    assert_same(base, featurize(reordered, encoding="tcnn"))
    assert_same(base, featurize(escaped, encoding="tcnn"))


def test_catalog_from_instance_matches_from_connection(catalog: PlanCatalog) -> None:
    assert PlanCatalog.from_instance(corpus_server()) == catalog


def test_featurize_releases_the_gil(plans: tuple[CapturedPlan, ...]) -> None:
    import threading
    import time

    texts = [p.text for p in plans] * 6
    stamps: list[float] = []
    running = True

    def spin() -> None:
        n = 0
        while running:
            n += 1
            if n % 200 == 0:
                stamps.append(time.perf_counter())

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        t0 = time.perf_counter()
        featurize(texts)
        t1 = time.perf_counter()
    finally:
        running = False
        t.join()
    # Another Python thread ran in the middle of the call: impossible if the GIL were held.
    margin = (t1 - t0) * 0.2
    inside = [s for s in stamps if t0 + margin < s < t1 - margin]
    assert len(inside) > 10, (len(inside), t1 - t0)
