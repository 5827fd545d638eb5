"""Fraud-graph weights on a hand-built tiny bank, with the numbers worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from risk.rings.fraud_graph import FraudGraph, FraudGraphWeights, build_fraud_graph

SWITCHBOARD = "057188880000"
SHARED_MOBILE = "13800000001"
CROWD_PHONE = "057199990000"


def _people(ids: list[str], phones: list[str | None]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": ids,
            "name": [f"name {i}" for i in ids],
            "phone": phones,
            "region_code": ["330106"] * n,
            "_source": ["test"] * n,
            "_line": list(range(1, n + 1)),
            "_job": ["job"] * n,
        }
    )


def _edges(src: list[str], dst: list[str], **props: list[float]) -> pa.Table:
    n = len(src)
    return pa.table(
        {
            "src": src,
            "dst": dst,
            "key": [""] * n,
            **props,
            "_source": ["test"] * n,
            "_line": list(range(1, n + 1)),
            "_job": ["job"] * n,
        }
    )


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FraudGraph]:
    """40 staff behind one switchboard, three people sharing a mobile, 70 sharing a line
    (above the degree cap), a reciprocal flow pair and a one-way flow."""
    store = SQLiteStore(tmp_path_factory.mktemp("tiny") / "kg.db")
    staff = [f"S{i:02d}" for i in range(40)]
    trio = ["T0", "T1", "T2"]
    crowd = [f"K{i:02d}" for i in range(70)]
    flows = ["F0", "F1", "F2"]
    with store.transaction():
        store.upsert_nodes(
            Label.PERSON,
            _people(
                staff + trio + crowd + flows,
                [SWITCHBOARD] * 40 + [SHARED_MOBILE] * 3 + [CROWD_PHONE] * 70 + [None] * 3,
            ),
        )
        accounts = [f"A{p}" for p in flows]
        store.upsert_nodes(
            Label.ACCOUNT,
            pa.table({"id": accounts, "_source": ["t"] * 3, "_line": [1, 2, 3], "_job": ["j"] * 3}),
        )
        store.upsert_edges(RelType.OWNS_ACCOUNT, _edges(flows, accounts))
        # F0 <-> F1 both ways (a round trip), F1 -> F2 one way.
        store.insert_transactions(
            pa.table(
                {
                    "txn_id": ["t1", "t2", "t3"],
                    "from_account": ["AF0", "AF1", "AF1"],
                    "to_account": ["AF1", "AF0", "AF2"],
                    "amount": [100_000.0] * 3,
                    "ts": ["2026-01-01T00:00:00"] * 3,
                }
            )
        )
        store.rebuild_transfers()
    yield build_fraud_graph(store)
    store.close()


def _weight(graph: FraudGraph, a: str, b: str) -> float:
    i, j = graph.index_of(a), graph.index_of(b)
    assert i is not None and j is not None
    return float(graph.adjacency[i, j])


def test_a_phone_shared_by_three_gives_each_pair_one_half(graph: FraudGraph) -> None:
    # 1 / (3 - 1): each of the three draws weight 1 from the phone, split over two others.
    assert _weight(graph, "T0", "T1") == pytest.approx(0.5)
    assert _weight(graph, "T1", "T2") == pytest.approx(0.5)


def test_a_switchboard_of_forty_gives_each_pair_one_thirty_ninth(graph: FraudGraph) -> None:
    assert _weight(graph, "S00", "S39") == pytest.approx(1 / 39)
    assert _weight(graph, "S00", "S39") < _weight(graph, "T0", "T1") / 10


def test_every_sharer_draws_the_same_total_weight_from_its_phone(graph: FraudGraph) -> None:
    staff = graph.index_of("S07")
    trio = graph.index_of("T2")
    assert staff is not None and trio is not None
    assert graph.adjacency[staff].sum() == pytest.approx(1.0)
    assert graph.adjacency[trio].sum() == pytest.approx(1.0)


def test_a_phone_above_the_degree_cap_gives_no_pair_edges(graph: FraudGraph) -> None:
    assert FraudGraphWeights().max_identifier_degree < 70
    assert _weight(graph, "K00", "K01") == 0.0


def test_a_round_trip_weighs_more_than_a_one_way_flow(graph: FraudGraph) -> None:
    round_trip = _weight(graph, "F0", "F1")
    one_way = _weight(graph, "F1", "F2")
    assert one_way > 0
    # Both flows carry the same amount; the round trip adds the circular-flow weight twice
    # (one per direction) on top of two base weights.
    assert round_trip == pytest.approx(2 * one_way + 2 * FraudGraphWeights().circular_flow)
    circular = {
        (str(graph.ids[s]), str(graph.ids[d]))
        for s, d, c in zip(graph.flow_src, graph.flow_dst, graph.flow_circular, strict=True)
        if c
    }
    assert circular == {("F0", "F1"), ("F1", "F0")}


def test_the_graph_survives_a_save_and_load(graph: FraudGraph, tmp_path: Path) -> None:
    graph.save(tmp_path / "g.npz")
    loaded = FraudGraph.load(tmp_path / "g.npz")
    assert (loaded.adjacency != graph.adjacency).nnz == 0
    assert loaded.ids.tolist() == graph.ids.tolist()
    assert np.array_equal(loaded.identifier_degree, graph.identifier_degree)
