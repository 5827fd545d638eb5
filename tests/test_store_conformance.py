"""The `GraphStore` contract, run against every store (SQLite and the real Neo4j server)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from kg.model import Direction, Label, RelType
from kg.store import SCHEMA_VERSION, GraphStore, StoreError


def _persons(store: GraphStore) -> None:
    store.upsert_nodes(
        Label.PERSON,
        pa.table(
            {
                "id": ["p1", "p2", "p3"],
                "name": ["张伟", "王芳", "李娜"],
                "id_number": ["11010519491231002X", None, None],
                "phone": ["13800000001", "13800000001", None],
                "_source": ["persons.csv"] * 3,
                "_line": [2, 3, 4],
                "_job": ["job-1"] * 3,
            }
        ),
    )
    store.upsert_nodes(
        Label.COMPANY,
        pa.table(
            {
                "id": ["c1", "c2"],
                "name": ["杭州西湖科技有限公司", "宁波港口物流有限公司"],
                "uscc": ["91330100MA27XXXX1X", None],
                "is_financial": [False, True],
                "_source": ["companies.csv"] * 2,
                "_line": [2, 3],
                "_job": ["job-1"] * 2,
            }
        ),
    )


def _holdings(store: GraphStore) -> None:
    store.upsert_edges(
        RelType.HOLDS_SHARES,
        pa.table(
            {
                "src": ["p1", "p2", "c1"],
                "dst": ["c1", "c1", "c2"],
                "key": ["", "", ""],
                "share_pct": [60.0, 40.0, 51.0],
                "voting_pct": [60.0, 40.0, 30.0],
                "_source": ["shareholdings.csv"] * 3,
                "_line": [2, 3, 4],
                "_job": ["job-1"] * 3,
            }
        ),
    )


def test_new_store_has_current_schema_version(store: GraphStore) -> None:
    assert store.schema_version() == SCHEMA_VERSION


def test_node_properties_and_provenance_round_trip(store: GraphStore) -> None:
    _persons(store)
    node = store.get_node("p1")
    assert node is not None
    assert node.label == Label.PERSON
    assert node.props["name"] == "张伟"
    assert node.props["id_number"] == "11010519491231002X"
    assert node.provenance is not None
    assert (node.provenance.source, node.provenance.line, node.provenance.job_id) == (
        "persons.csv",
        2,
        "job-1",
    )
    company = store.get_node("c2")
    assert company is not None and company.props["is_financial"] is True


def test_each_row_keeps_its_own_provenance_and_key_in_a_mixed_batch(store: GraphStore) -> None:
    """Rows of one batch that share a source, a job or a key and rows that do not."""
    store.upsert_nodes(
        Label.PERSON,
        pa.table(
            {
                "id": ["p1", "p2", "p3"],
                "name": ["甲", None, "丙"],
                "_source": ["a.csv", "b.csv", "a.csv"],
                "_line": [2, 3, 4],
                "_job": ["job-1", "job-1", "job-1"],
            }
        ),
    )
    store.upsert_edges(
        RelType.RELATIVE_OF,
        pa.table(
            {
                "src": ["p1", "p1", "p2"],
                "dst": ["p2", "p3", "p3"],
                "key": ["spouse", "spouse", "sibling"],
                "relation": ["spouse", "spouse", "sibling"],
                "_source": ["k.csv"] * 3,
                "_line": [5, 6, 7],
                "_job": [None, "job-2", "job-2"],
            }
        ),
    )
    seen = {}
    for node_id in ("p1", "p2", "p3"):
        node = store.get_node(node_id)
        assert node is not None and node.provenance is not None
        seen[node_id] = (node.props.get("name"), node.provenance.source, node.provenance.line)
    assert seen == {"p1": ("甲", "a.csv", 2), "p2": (None, "b.csv", 3), "p3": ("丙", "a.csv", 4)}
    edges = {(e.src, e.dst): e for e in store.neighbours("p3", RelType.RELATIVE_OF)}
    assert {pair: e.key for pair, e in edges.items()} == {
        ("p1", "p3"): "spouse",
        ("p2", "p3"): "sibling",
    }
    assert all(e.provenance is not None for e in edges.values())
    assert {pair: e.provenance.job_id for pair, e in edges.items() if e.provenance} == {
        ("p1", "p3"): "job-2",
        ("p2", "p3"): "job-2",
    }
    [first] = store.neighbours("p2", RelType.RELATIVE_OF, Direction.IN)
    assert first.provenance is not None and first.provenance.line == 5


def test_unknown_columns_are_kept_as_properties(store: GraphStore) -> None:
    store.upsert_nodes(Label.PERSON, pa.table({"id": ["p9"], "name": ["赵六"], "vip": ["gold"]}))
    node = store.get_node("p9")
    assert node is not None and node.props["vip"] == "gold"


def test_upsert_merges_properties_and_keeps_existing_values(store: GraphStore) -> None:
    _persons(store)
    store.upsert_nodes(
        Label.PERSON, pa.table({"id": ["p2"], "name": [None], "address": ["杭州市西湖区"]})
    )
    node = store.get_node("p2")
    assert node is not None
    assert node.props["name"] == "王芳"
    assert node.props["address"] == "杭州市西湖区"
    assert store.count_nodes(Label.PERSON) == 3


def test_an_id_cannot_change_label(store: GraphStore) -> None:
    _persons(store)
    with pytest.raises(StoreError, match="p1"):
        store.upsert_nodes(Label.COMPANY, pa.table({"id": ["p1"], "name": ["x"]}))
    node = store.get_node("p1")
    assert node is not None and node.label == Label.PERSON


def test_edges_are_found_in_each_direction(store: GraphStore) -> None:
    _persons(store)
    _holdings(store)
    into_c1 = store.neighbours("c1", RelType.HOLDS_SHARES, Direction.IN)
    assert sorted((e.src, e.props["share_pct"]) for e in into_c1) == [("p1", 60.0), ("p2", 40.0)]
    out_of_c1 = store.neighbours("c1", RelType.HOLDS_SHARES, Direction.OUT)
    assert [(e.dst, e.props["voting_pct"]) for e in out_of_c1] == [("c2", 30.0)]
    assert len(store.neighbours("c1", RelType.HOLDS_SHARES, Direction.BOTH)) == 3
    edge = out_of_c1[0]
    assert edge.provenance is not None and edge.provenance.line == 4


def test_repeated_edge_upsert_is_idempotent(store: GraphStore) -> None:
    _persons(store)
    _holdings(store)
    _holdings(store)
    assert store.count_edges(RelType.HOLDS_SHARES) == 3


def test_edges_with_different_keys_are_parallel(store: GraphStore) -> None:
    _persons(store)
    store.upsert_edges(
        RelType.GUARANTEES,
        pa.table(
            {
                "src": ["c1", "c1"],
                "dst": ["c2", "c2"],
                "key": ["g1", "g2"],
                "guarantee_id": ["g1", "g2"],
                "amount": [100.0, 250.0],
            }
        ),
    )
    edges = store.neighbours("c1", RelType.GUARANTEES, Direction.OUT)
    assert sorted(e.props["amount"] for e in edges) == [100.0, 250.0]


def test_edge_to_unknown_node_raises_and_writes_nothing(store: GraphStore) -> None:
    _persons(store)
    rows = pa.table({"src": ["p1", "p1"], "dst": ["c1", "nobody"], "key": ["", ""]})
    with pytest.raises(StoreError, match="nobody"):
        store.upsert_edges(RelType.HOLDS_SHARES, rows)
    assert store.count_edges(RelType.HOLDS_SHARES) == 0


def test_failed_transaction_leaves_store_unchanged(store: GraphStore) -> None:
    _persons(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_nodes(Label.PERSON, pa.table({"id": ["p4"], "name": ["孙七"]}))
        _holdings(store)
        raise RuntimeError("job failed")
    assert store.count_nodes() == 5
    assert store.get_node("p4") is None
    assert store.count_edges() == 0


def test_nested_transactions_commit_with_the_outer_one(store: GraphStore) -> None:
    with store.transaction():
        with store.transaction():
            store.upsert_nodes(Label.PERSON, pa.table({"id": ["p4"], "name": ["孙七"]}))
        store.upsert_nodes(Label.PERSON, pa.table({"id": ["p5"], "name": ["周八"]}))
    assert store.count_nodes(Label.PERSON) == 2


def test_aliases_resolve_to_the_canonical_entity(store: GraphStore) -> None:
    _persons(store)
    store.add_aliases(pa.table({"alias": ["p1-dup"], "id": ["p1"]}))
    assert store.resolve("p1-dup") == "p1"
    assert store.resolve("p1") == "p1"
    assert store.resolve("nobody") is None
    node = store.get_node("p1-dup")
    assert node is not None and node.id == "p1"
    assert store.aliases_of("p1") == ["p1-dup"]


def test_aliases_of_many_ids_in_one_call(store: GraphStore) -> None:
    _persons(store)
    store.add_aliases(pa.table({"alias": ["p1-b", "p1-a", "p3-x"], "id": ["p1", "p1", "p3"]}))
    wanted = ["p1", "p2", "p3", "p1-b", "nobody", "p1"]
    assert store.aliases_of_many(wanted) == {"p1": ["p1-a", "p1-b"], "p3": ["p3-x"]}
    # many ids (more than one statement's worth): the same answer
    many = [f"x{i}" for i in range(1_200)] + ["p3", "p1"]
    assert store.aliases_of_many(many) == {"p1": ["p1-a", "p1-b"], "p3": ["p3-x"]}


def test_find_nodes_by_identifier(store: GraphStore) -> None:
    _persons(store)
    found = store.find_nodes(Label.PERSON, "id_number", ["11010519491231002X", "000"])
    assert found == {"11010519491231002X": "p1"}


def test_search_by_name_substring_identifier_and_alias(store: GraphStore) -> None:
    _persons(store)
    store.add_aliases(pa.table({"alias": ["CN-777"], "id": ["p3"]}))
    assert [n.id for n in store.search("西湖")] == ["c1"]
    assert [n.id for n in store.search("91330100MA27XXXX1X")] == ["c1"]
    assert [n.id for n in store.search("11010519491231002X")] == ["p1"]
    assert [n.id for n in store.search("CN-777")] == ["p3"]
    assert store.search("不存在的名字") == []


def test_streamed_edges_use_the_nids_of_streamed_nodes(store: GraphStore) -> None:
    _persons(store)
    _holdings(store)
    nid_of = {}
    for batch in store.node_batches(batch_size=2):
        nid_of.update(
            zip(batch.column("id").to_pylist(), batch.column("nid").to_pylist(), strict=True)
        )
    assert len(nid_of) == 5 and len(set(nid_of.values())) == 5
    pairs = set()
    for batch in store.edge_batches(RelType.HOLDS_SHARES, batch_size=2):
        pairs.update(
            zip(batch.column("src").to_pylist(), batch.column("dst").to_pylist(), strict=True)
        )
    expected = {(nid_of["p1"], nid_of["c1"]), (nid_of["p2"], nid_of["c1"])}
    expected.add((nid_of["c1"], nid_of["c2"]))
    assert pairs == expected


def test_node_batches_of_one_label_carry_its_properties(store: GraphStore) -> None:
    _persons(store)
    table = pa.concat_tables(store.node_batches(Label.PERSON))
    rows = {r["id"]: r for r in table.to_pylist()}
    assert set(rows) == {"p1", "p2", "p3"}
    assert rows["p2"]["phone"] == "13800000001"


def test_transfers_aggregate_transactions_per_account_pair(store: GraphStore) -> None:
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1", "a2", "a3"]}))
    store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t1", "t2", "t3"],
                "from_account": ["a1", "a1", "a2"],
                "to_account": ["a2", "a2", "a3"],
                "amount": [100.0, 50.0, 70.0],
                "ts": ["2024-01-02T10:00:00", "2024-01-01T09:00:00", "2024-02-01T00:00:00"],
                "channel": ["mobile", "atm", "mobile"],
            }
        )
    )
    store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t1"],
                "from_account": ["a1"],
                "to_account": ["a2"],
                "amount": [100.0],
                "ts": ["2024-01-02T10:00:00"],
                "channel": ["mobile"],
            }
        )
    )
    assert store.count_transactions() == 3
    assert store.rebuild_transfers() == 2
    [edge] = store.neighbours("a1", RelType.TRANSFERRED, Direction.OUT)
    assert edge.dst == "a2"
    assert edge.props["count"] == 2
    assert edge.props["total_amount"] == 150.0
    assert edge.props["first_ts"] == "2024-01-01T09:00:00"
    assert edge.props["last_ts"] == "2024-01-02T10:00:00"


def test_transferred_edges_are_derived_not_upserted(store: GraphStore) -> None:
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1", "a2"]}))
    rows = pa.table({"src": ["a1"], "dst": ["a2"], "key": [""], "count": [1]})
    with pytest.raises(StoreError, match="rebuild_transfers"):
        store.upsert_edges(RelType.TRANSFERRED, rows)
    assert store.count_edges(RelType.TRANSFERRED) == 0
    assert store.neighbours("a1", RelType.TRANSFERRED) == []


def _inferred(rows: list[tuple[str, str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "predicate": [r[0] for r in rows],
            "src": [r[1] for r in rows],
            "dst": [r[2] for r in rows],
            "rule": [r[3] for r in rows],
            "premises": ['[{"kind": "edge", "type": "HOLDS_SHARES"}]'] * len(rows),
            "value": [None] * len(rows),
        }
    )


def test_inferred_facts_replace_add_and_retract(store: GraphStore) -> None:
    _persons(store)
    store.replace_inferred(
        _inferred([("controls", "p1", "c1", "majority"), ("controls", "c1", "c2", "majority")])
    )
    assert store.count_inferred("controls") == 2
    [fact] = store.get_inferred("p1", "controls")
    assert (fact.dst, fact.rule) == ("c1", "majority")
    assert fact.premises == ({"kind": "edge", "type": "HOLDS_SHARES"},)

    store.apply_inferred_delta(
        added=_inferred([("controls", "p1", "c2", "transitive")]),
        removed=_inferred([("controls", "c1", "c2", "majority")]),
    )
    assert {(f.src, f.dst) for f in store.get_inferred("p1")} == {("p1", "c1"), ("p1", "c2")}
    assert store.get_inferred("c1", "controls") == []

    store.replace_inferred(_inferred([("sharesPhone", "p1", "p2", "shared")]), ["sharesPhone"])
    assert store.count_inferred() == 3
    batches = pa.concat_tables(store.inferred_batches("sharesPhone"))
    assert batches.num_rows == 1
    store.replace_inferred(_inferred([]))
    assert store.count_inferred() == 0


def test_a_fact_written_twice_in_one_job_is_stored_once(store: GraphStore) -> None:
    _persons(store)
    with store.transaction():  # the store's first inferred facts, in two writes of one job
        store.apply_inferred_delta(
            added=_inferred(
                [("controls", "p1", "c1", "majority"), ("sharesPhone", "p1", "p2", "a")]
            ),
            removed=_inferred([]),
        )
        store.apply_inferred_delta(
            added=_inferred(
                [("controls", "p1", "c1", "transitive"), ("controls", "p2", "c1", "b")]
            ),
            removed=_inferred([]),
        )
    assert store.count_inferred() == 3
    assert [(f.dst, f.rule) for f in store.get_inferred("p1", "controls")] == [("c1", "transitive")]


def test_documents_round_trip(store: GraphStore) -> None:
    store.put_document("runs", "r1", {"rings": 3, "name": "夜间"})
    store.put_document("runs", "r2", {"rings": 4})
    store.put_document("runs", "r1", {"rings": 5, "name": "夜间"})
    assert store.get_document("runs", "r1") == {"rings": 5, "name": "夜间"}
    assert [k for k, _ in store.list_documents("runs")] == ["r1", "r2"]
    assert store.delete_documents("runs", ["r2"]) == 1
    assert store.get_document("runs", "r2") is None
    assert store.get_document("other", "r1") is None


def test_boolean_properties_stream_as_booleans(store: GraphStore) -> None:
    _persons(store)
    table = pa.concat_tables(store.node_batches(Label.COMPANY))
    assert dict(
        zip(table.column("id").to_pylist(), table.column("is_financial").to_pylist(), strict=True)
    ) == {
        "c1": False,
        "c2": True,
    }


def test_a_bulk_load_keeps_lookups_working(store: GraphStore) -> None:
    with store.transaction(), store.bulk_load():
        _persons(store)
        _holdings(store)
    assert [n.id for n in store.search("11010519491231002X")] == ["p1"]
    assert store.find_nodes(Label.PERSON, "id_number", ["11010519491231002X"]) == {
        "11010519491231002X": "p1"
    }
    assert len(store.neighbours("c1", RelType.HOLDS_SHARES, Direction.IN)) == 2


def test_a_failed_bulk_load_leaves_the_store_as_it_was(store: GraphStore) -> None:
    with pytest.raises(RuntimeError), store.transaction(), store.bulk_load():
        _persons(store)
        raise RuntimeError("job failed")
    assert store.count_nodes() == 0
    _persons(store)
    assert [n.id for n in store.search("西湖")] == ["c1"]
