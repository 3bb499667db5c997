"""Plan observation spaces on real plans: every observation is in its space, sample() works,
and observations round-trip through gymnasium's flatten/unflatten."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from dbgym.errors import ObservationError
from dbgym.plans import PlanBatch, PlanCatalog, featurize
from dbgym.spaces import GraphPlanObservation, PaddedPlanObservation
from tests.plan_corpus import corpus, corpus_server


@pytest.fixture(scope="module", params=["qppnet", "tcnn"])
def batch(request: pytest.FixtureRequest) -> PlanBatch:
    with corpus_server().connect() as conn:
        catalog = PlanCatalog.from_connection(conn)
    return featurize([p.text for p in corpus()], catalog=catalog, encoding=request.param)


def test_graph_observations_are_in_the_space_and_round_trip(batch: PlanBatch) -> None:
    obs = GraphPlanObservation(batch.layout, seed=1)
    for i in range(batch.n_plans):
        g = obs.observation(batch, i)
        assert obs.space.contains(g), i
        n = int(batch.offsets[i + 1] - batch.offsets[i])
        assert np.asarray(g.nodes).shape == (n, batch.layout.n_features)
        if n == 1:
            assert g.edges is None and g.edge_links is None
        else:
            assert g.edge_links is not None and g.edge_links.shape == (n - 1, 2)  # a tree
        flat = spaces.flatten(obs.space, g)
        back = spaces.unflatten(obs.space, flat)
        np.testing.assert_array_equal(back.nodes, g.nodes)
        if g.edges is not None:
            assert back.edges is not None
            np.testing.assert_array_equal(back.edges, g.edges)
        np.testing.assert_array_equal(back.edge_links, g.edge_links)
    sample = obs.space.sample(num_nodes=5, num_edges=4)
    assert obs.space.contains(sample)


def test_graph_edges_point_from_child_to_parent(batch: PlanBatch) -> None:
    g = GraphPlanObservation(batch.layout).observation(batch, 0)
    lo = int(batch.offsets[0])
    assert g.edge_links is not None and g.edges is not None
    for (child, parent), rel in zip(g.edge_links, g.edges, strict=True):
        assert batch.parent[lo + child] == lo + parent
        assert batch.relationship[lo + child] == rel


def test_padded_observations_are_in_the_space_and_round_trip(batch: PlanBatch) -> None:
    max_nodes = int(np.diff(batch.offsets).max())
    obs = PaddedPlanObservation(batch.layout, max_nodes=max_nodes, seed=2)
    stacked = obs.observations(batch)
    flat_space = spaces.flatten_space(obs.space)
    for i in range(batch.n_plans):
        one = obs.observation(batch, i)
        assert obs.space.contains(one), i
        for key, value in one.items():
            np.testing.assert_array_equal(stacked[key][i], value)
        flat = spaces.flatten(obs.space, one)
        assert isinstance(flat, np.ndarray) and isinstance(flat_space, spaces.Box)
        assert flat.shape == (spaces.flatdim(obs.space),)
        assert flat_space.contains(flat.astype(flat_space.dtype))
        back = spaces.unflatten(obs.space, flat)
        for key, value in one.items():
            np.testing.assert_array_equal(back[key], value)
    sample = obs.space.sample()
    assert obs.space.contains(sample)


def test_padded_rows_match_the_batch(batch: PlanBatch) -> None:
    obs = PaddedPlanObservation(batch.layout, max_nodes=64)
    i = batch.n_plans - 1
    one = obs.observation(batch, i)
    lo, hi = int(batch.offsets[i]), int(batch.offsets[i + 1])
    n = hi - lo
    assert one["mask"].sum() == n and one["mask"][:n].all()
    np.testing.assert_array_equal(one["features"][:n], batch.features[lo:hi])
    assert not one["features"][n:].any()
    assert one["parent"][0] == -1 and (one["parent"][n:] == -1).all()
    if batch.left is not None:
        alone = batch.plan(i)
        assert alone.left is not None
        np.testing.assert_array_equal(one["left"][:n], alone.left)


def test_plans_larger_than_the_padding_are_refused(batch: PlanBatch) -> None:
    sizes = np.diff(batch.offsets)
    big = int(sizes.argmax())
    obs = PaddedPlanObservation(batch.layout, max_nodes=int(sizes.max()) - 1)
    with pytest.raises(ObservationError, match=f"plan {big} has {int(sizes.max())} nodes"):
        obs.observation(batch, big)
    with pytest.raises(ObservationError, match="holds at most"):
        obs.observations(batch)
    other = featurize([], encoding="tcnn" if batch.encoding == "qppnet" else "qppnet")
    with pytest.raises(ObservationError, match="different layout"):
        PaddedPlanObservation(batch.layout, 8).observation(other, 0)
