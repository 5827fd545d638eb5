"""The projection holds exactly the store's edges, with properties aligned."""

from __future__ import annotations

import random

import networkx as nx
import pyarrow as pa

from kg.model import Label, RelType
from kg.projection import Projection
from kg.store import GraphStore


def _random_ownership(store: GraphStore, seed: int) -> nx.DiGraph:
    rng = random.Random(seed)
    companies = [f"C{i}" for i in range(40)]
    persons = [f"P{i}" for i in range(20)]
    store.upsert_nodes(Label.COMPANY, pa.table({"id": companies, "name": companies}))
    store.upsert_nodes(Label.PERSON, pa.table({"id": persons, "name": persons}))
    oracle = nx.DiGraph()
    for _ in range(150):
        holder = rng.choice(companies + persons)
        company = rng.choice(companies)
        if holder != company:
            oracle.add_edge(holder, company, share_pct=float(rng.randint(1, 100)))
    store.upsert_edges(
        RelType.HOLDS_SHARES,
        pa.table(
            {
                "src": [u for u, _ in oracle.edges],
                "dst": [v for _, v in oracle.edges],
                "key": [""] * oracle.number_of_edges(),
                "share_pct": [d["share_pct"] for *_, d in oracle.edges(data=True)],
            }
        ),
    )
    return oracle


def test_projection_edges_and_weights_match_the_store(store: GraphStore) -> None:
    oracle = _random_ownership(store, seed=7)
    projection = Projection.from_store(store, [RelType.HOLDS_SHARES])
    assert projection.num_nodes == 60
    rel = projection.relations["HOLDS_SHARES"]
    got = {
        (projection.ids[s], projection.ids[d]): w
        for s, d, w in zip(rel.sources(), rel.indices, rel.props["share_pct"], strict=True)
    }
    expected = {(u, v): d["share_pct"] for u, v, d in oracle.edges(data=True)}
    assert got == expected


def test_igraph_view_has_the_same_strong_components_as_networkx(store: GraphStore) -> None:
    oracle = _random_ownership(store, seed=11)
    projection = Projection.from_store(store, [RelType.HOLDS_SHARES])
    graph = projection.igraph(["HOLDS_SHARES"])
    ours = {
        frozenset(str(projection.ids[v]) for v in comp)
        for comp in graph.connected_components(mode="strong")
        if len(comp) > 1
    }
    theirs = {frozenset(c) for c in nx.strongly_connected_components(oracle) if len(c) > 1}
    assert ours == theirs


def test_label_mask_selects_persons(store: GraphStore) -> None:
    _random_ownership(store, seed=3)
    projection = Projection.from_store(store, [])
    persons = {str(i) for i in projection.ids[projection.label_mask(Label.PERSON)]}
    assert persons == {f"P{i}" for i in range(20)}
