"""Neo4j writes that commit batch by batch: a bulk load into an empty store and the first
inferred facts. A failed job must still leave the store as it was."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from kg.model import Label, RelType
from kg.neo4j_store import Neo4jStore
from kg.store import StoreError

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j_store(neo4j_uri: str) -> Iterator[Neo4jStore]:
    """An empty store on the session's server that writes in batches of two rows."""
    store = Neo4jStore(neo4j_uri, write_batch_rows=2)
    store.wipe()
    yield store
    store.wipe()
    store.close()


def _people(count: int, prefix: str = "p") -> pa.Table:
    return pa.table(
        {
            "id": [f"{prefix}{i}" for i in range(count)],
            "name": [f"person {prefix}{i}" for i in range(count)],
            "id_number": [f"ID-{prefix}{i}" for i in range(count)],
        }
    )


def _accounts_and_transactions(store: Neo4jStore, count: int) -> None:
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1", "a2"]}))
    store.insert_transactions(
        pa.table(
            {
                "txn_id": [f"t{i}" for i in range(count)],
                "from_account": ["a1"] * count,
                "to_account": ["a2"] * count,
                "amount": [float(i + 1) for i in range(count)],
                "ts": [f"2024-01-{i % 28 + 1:02d}T00:00:00" for i in range(count)],
                "channel": ["atm"] * count,
            }
        )
    )


def _facts(pairs: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "predicate": ["controls"] * len(pairs),
            "src": [a for a, _ in pairs],
            "dst": [b for _, b in pairs],
            "rule": ["r"] * len(pairs),
            "premises": ["[]"] * len(pairs),
            "value": [None] * len(pairs),
        }
    )


def _index_names(store: Neo4jStore) -> set[str]:
    store.count_nodes()  # creates the schema on first use
    return {str(r["name"]) for r in store._execute("SHOW INDEXES YIELD name")}


def test_a_failed_bulk_load_undoes_the_batches_it_had_committed(
    neo4j_store: Neo4jStore,
) -> None:
    indexes_before = _index_names(neo4j_store)
    with pytest.raises(RuntimeError), neo4j_store.transaction(), neo4j_store.bulk_load():
        neo4j_store.upsert_nodes(Label.PERSON, _people(7))
        neo4j_store.upsert_edges(
            RelType.RELATIVE_OF,
            pa.table({"src": ["p0", "p1", "p2"], "dst": ["p1", "p2", "p3"], "key": [""] * 3}),
        )
        neo4j_store.add_aliases(pa.table({"alias": ["old-p0"], "id": ["p0"]}))
        _accounts_and_transactions(neo4j_store, 5)
        neo4j_store.rebuild_transfers()
        neo4j_store.put_document("ingest_jobs", "j1", {"rows": 7})
        # The batches are committed: another reader sees them before the job fails.
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(neo4j_store.count_nodes()))
        reader.start()
        reader.join(timeout=30)
        assert seen == [9]
        raise RuntimeError("job failed")
    assert neo4j_store.count_nodes() == 0
    assert neo4j_store.count_edges() == 0
    assert neo4j_store.count_transactions() == 0
    assert neo4j_store.resolve("old-p0") is None
    assert neo4j_store.get_document("ingest_jobs", "j1") is None
    assert _index_names(neo4j_store) == indexes_before
    # Numbering starts again where it stood before the failed job.
    neo4j_store.upsert_nodes(Label.PERSON, _people(1, "q"))
    node = neo4j_store.get_node("q0")
    assert node is not None and node.nid == 1


def test_a_bulk_load_builds_the_deferred_indexes_when_it_ends(neo4j_store: Neo4jStore) -> None:
    indexes_before = _index_names(neo4j_store)
    with neo4j_store.transaction(), neo4j_store.bulk_load():
        neo4j_store.upsert_nodes(Label.PERSON, _people(5))
        assert "node_name" not in _index_names(neo4j_store)
    assert _index_names(neo4j_store) == indexes_before
    assert [n.id for n in neo4j_store.search("person p3")] == ["p3"]
    assert neo4j_store.find_nodes(Label.PERSON, "id_number", ["ID-p4"]) == {"ID-p4": "p4"}


def test_a_bulk_load_into_a_store_with_data_stays_one_transaction(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(2))
    seen: list[int] = []
    with pytest.raises(RuntimeError), neo4j_store.transaction(), neo4j_store.bulk_load():
        neo4j_store.upsert_nodes(Label.PERSON, _people(5, "q"))
        reader = threading.Thread(target=lambda: seen.append(neo4j_store.count_nodes()))
        reader.start()
        reader.join(timeout=30)
        raise RuntimeError("job failed")
    assert seen == [2]
    assert neo4j_store.count_nodes() == 2


def test_a_node_repeated_in_one_batch_is_created_once_and_updated(
    neo4j_store: Neo4jStore,
) -> None:
    with neo4j_store.transaction(), neo4j_store.bulk_load():
        neo4j_store.upsert_nodes(
            Label.PERSON, pa.table({"id": ["p0", "p0", "p1"], "name": ["a", "b", None]})
        )
    node = neo4j_store.get_node("p0")
    assert neo4j_store.count_nodes() == 2
    assert node is not None and node.props["name"] == "b"


def test_failed_first_inferred_facts_are_undone(neo4j_store: Neo4jStore) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(6))
    pairs = [("p0", f"p{i}") for i in range(1, 6)]
    with pytest.raises(RuntimeError), neo4j_store.transaction():
        neo4j_store.replace_inferred(_facts([]))
        neo4j_store.apply_inferred_delta(_facts(pairs), _facts([]))
        assert neo4j_store.count_inferred() == 5
        raise RuntimeError("job failed")
    assert neo4j_store.count_inferred() == 0


def test_a_failed_replacement_keeps_the_inferred_facts_there_were(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(6))
    neo4j_store.replace_inferred(_facts([("p0", "p1"), ("p0", "p2")]))
    with pytest.raises(RuntimeError), neo4j_store.transaction():
        neo4j_store.replace_inferred(_facts([("p3", "p4"), ("p3", "p5"), ("p4", "p5")]))
        raise RuntimeError("job failed")
    facts = neo4j_store.get_inferred("p0", "controls")
    assert sorted(f.dst for f in facts) == ["p1", "p2"]
    assert neo4j_store.count_inferred() == 2


def test_transactions_are_stored_in_segments_and_read_back_with_their_nulls(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1", "a2"]}))
    inserted = neo4j_store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t1", "t2", "t2", "t3"],
                "from_account": ["a1", "a2", "a2", "a1"],
                "to_account": ["a2", "a1", "a1", "a2"],
                "amount": [1.5, 2.0, 2.0, 3.0],
                "ts": ["2024-01-01T00:00:00", None, None, "2024-01-03T00:00:00"],
                "channel": [None, "atm", "atm", None],
            }
        )
    )
    again = neo4j_store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t3", "t4"],
                "from_account": ["a1", "a1"],
                "to_account": ["a2", "a2"],
                "amount": [3.0, 4.0],
                "ts": ["2024-01-03T00:00:00", "2024-01-04T00:00:00"],
            }
        )
    )
    assert (inserted, again) == (3, 1)
    assert neo4j_store.count_transactions() == 4
    segments = list(neo4j_store.transaction_batches())
    assert len(segments) == 2
    rows = pa.concat_tables(segments).to_pylist()
    assert [(r["txn_id"], r["ts"], r["channel"]) for r in rows] == [
        ("t1", "2024-01-01T00:00:00", None),
        ("t2", None, "atm"),
        ("t3", "2024-01-03T00:00:00", None),
        ("t4", "2024-01-04T00:00:00", None),
    ]
    assert neo4j_store.rebuild_transfers() == 2


def test_a_fact_given_twice_in_the_first_inferred_facts_is_stored_once(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(3))
    facts = _facts([("p0", "p1"), ("p0", "p2"), ("p0", "p1")])
    neo4j_store.replace_inferred(facts.set_column(3, "rule", pa.array(["r1", "r2", "r3"])))
    assert neo4j_store.count_inferred() == 2
    assert [f.rule for f in neo4j_store.get_inferred("p0", "controls", "p1")] == ["r3"]


def test_a_dangling_edge_in_a_parallel_bulk_batch_fails_the_job_and_undoes_it(
    neo4j_store: Neo4jStore,
) -> None:
    chain = [f"p{i}" for i in range(8)] + ["ghost"]
    with (
        pytest.raises(StoreError, match=r"ghost"),
        neo4j_store.transaction(),
        neo4j_store.bulk_load(),
    ):
        neo4j_store.upsert_nodes(Label.PERSON, _people(8))
        neo4j_store.upsert_edges(
            RelType.RELATIVE_OF,
            pa.table({"src": chain[:-1], "dst": chain[1:], "key": [""] * 8}),
        )
    assert neo4j_store.count_nodes() == 0
    assert neo4j_store.count_edges() == 0
