"""What the Neo4j store does beyond the shared contract: batches, errors, paging, schema."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from kg import cypher
from kg.model import Direction, Label, RelType
from kg.neo4j_store import Neo4jStore
from kg.store import SCHEMA_VERSION, SchemaVersionError, StoreError


@pytest.fixture
def neo4j_store(neo4j_uri: str) -> Iterator[Neo4jStore]:
    """An empty store on the session's server that writes in batches of three rows."""
    store = Neo4jStore(neo4j_uri, write_batch_rows=3)
    store.wipe()
    yield store
    store.wipe()
    store.close()


def _people(count: int) -> pa.Table:
    return pa.table(
        {
            "id": [f"p{i}" for i in range(count)],
            "name": [f"person {i}" for i in range(count)],
            "_source": ["persons.csv"] * count,
            "_line": list(range(2, count + 2)),
            "_job": ["job-1"] * count,
        }
    )


def test_render_refuses_a_property_outside_the_model() -> None:
    with pytest.raises(ValueError, match="no property"):
        cypher.render(cypher.FIND_NODES, label=Label.PERSON, prop="name} DETACH DELETE n //")


def test_render_refuses_a_template_left_with_placeholders() -> None:
    with pytest.raises(ValueError, match="needs more names"):
        cypher.render(cypher.FIND_NODES, label=Label.PERSON)


def test_missing_driver_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neo4j", None)
    with pytest.raises(StoreError, match=r"pip install 'riskgraph\[neo4j\]'"):
        Neo4jStore("bolt://127.0.0.1:1")


def test_capabilities_declare_native_path_queries() -> None:
    assert Neo4jStore.capabilities.native_path_queries is True
    assert Neo4jStore.capabilities.name == "neo4j"


needs_server = pytest.mark.neo4j


@needs_server
def test_an_empty_database_answers_without_server_warnings(
    neo4j_store: Neo4jStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Transaction segments and inferred links do not exist yet: not worth a warning per query.
    with caplog.at_level("WARNING", logger="neo4j"):
        assert neo4j_store.count_transactions() == 0
        assert neo4j_store.count_inferred() == 0
    assert [r.getMessage() for r in caplog.records if r.name.startswith("neo4j")] == []


@needs_server
def test_rows_spanning_many_batches_all_get_distinct_nids(neo4j_store: Neo4jStore) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(10))
    nids = pa.concat_tables(neo4j_store.node_batches(batch_size=4)).column("nid").to_pylist()
    assert nids == list(range(1, 11))
    # a label that fits one page comes from the label's scan: the same rows, in nid order
    neo4j_store.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1"], "name": ["某公司"]}))
    paged = pa.concat_tables(neo4j_store.node_batches(Label.PERSON, batch_size=4))
    (whole,) = neo4j_store.node_batches(Label.PERSON, batch_size=10)
    assert whole.equals(paged)
    assert whole.column("nid").to_pylist() == list(range(1, 11))


@needs_server
def test_nids_continue_after_existing_nodes_and_stay_put_on_update(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(2))
    neo4j_store.upsert_nodes(Label.PERSON, pa.table({"id": ["p9", "p0"], "name": ["x", "y"]}))
    node_p0, node_p9 = neo4j_store.get_node("p0"), neo4j_store.get_node("p9")
    assert node_p0 is not None and node_p9 is not None
    assert (node_p0.nid, node_p9.nid) == (1, 3)
    assert node_p0.props["name"] == "y"


@needs_server
def test_a_failing_batch_is_named_with_its_source_line_and_nothing_is_written(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(2))
    neo4j_store.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1"]}))
    rows = pa.table(
        {
            "src": ["p0", "p1", "p0", "p1", "ghost"],
            "dst": ["c1", "c1", "c1", "c1", "c1"],
            "key": ["", "", "", "", ""],
            "share_pct": [10.0, 20.0, 30.0, 40.0, 50.0],
            "_source": ["shares.csv"] * 5,
            "_line": [2, 3, 4, 5, 6],
        }
    )
    with pytest.raises(StoreError) as raised:
        neo4j_store.upsert_edges(RelType.HOLDS_SHARES, rows)
    message = str(raised.value)
    assert "batch 2 (rows 4-5, from shares.csv line 5)" in message
    assert "ghost->c1 (shares.csv:6)" in message
    assert neo4j_store.count_edges() == 0


@needs_server
def test_writes_inside_a_job_are_visible_to_it_and_hidden_from_other_readers(
    neo4j_store: Neo4jStore,
) -> None:
    seen_by_other_thread: list[int] = []
    with neo4j_store.transaction():
        neo4j_store.upsert_nodes(Label.PERSON, _people(4))
        assert neo4j_store.count_nodes() == 4
        reader = threading.Thread(
            target=lambda: seen_by_other_thread.append(neo4j_store.count_nodes())
        )
        reader.start()
        reader.join(timeout=30)
    assert seen_by_other_thread == [0]
    assert neo4j_store.count_nodes() == 4


@needs_server
def test_edge_pages_resume_between_parallel_edges(neo4j_store: Neo4jStore) -> None:
    neo4j_store.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1", "c2", "c3"]}))
    neo4j_store.upsert_edges(
        RelType.GUARANTEES,
        pa.table(
            {
                "src": ["c1", "c1", "c1", "c2", "c3"],
                "dst": ["c2", "c2", "c3", "c3", "c1"],
                "key": ["g2", "g1", "g3", "g4", "g5"],
                "amount": [2.0, 1.0, 3.0, 4.0, 5.0],
            }
        ),
    )
    pages = list(neo4j_store.edge_batches(RelType.GUARANTEES, batch_size=2))
    assert [page.num_rows for page in pages] == [2, 2, 1]
    rows = pa.concat_tables(pages).select(["src", "dst", "key", "amount"]).to_pylist()
    assert [(r["src"], r["dst"], r["key"], r["amount"]) for r in rows] == [
        (1, 2, "g1", 1.0),
        (1, 2, "g2", 2.0),
        (1, 3, "g3", 3.0),
        (2, 3, "g4", 4.0),
        (3, 1, "g5", 5.0),
    ]
    # a type that fits one page comes from the type's scan: the same rows, in the same order
    (whole,) = neo4j_store.edge_batches(RelType.GUARANTEES, batch_size=5)
    assert whole.equals(pa.concat_tables(pages))


@needs_server
def test_inferred_pages_of_one_predicate_cover_every_fact(
    neo4j_store: Neo4jStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(3))
    rows = [("controls", "p0", "p1"), ("controls", "p0", "p2"), ("sharesPhone", "p0", "p1")]
    rows += [("controls", "p1", "p2")]
    phones = [("p0", "p2"), ("p1", "p0"), ("p1", "p2"), ("p2", "p0"), ("p2", "p1")]
    rows += [("sharesPhone", a, b) for a, b in phones]
    neo4j_store.replace_inferred(
        pa.table(
            {
                "predicate": [r[0] for r in rows],
                "src": [r[1] for r in rows],
                "dst": [r[2] for r in rows],
                "rule": ["r"] * len(rows),
                "premises": ["[]"] * len(rows),
                "value": [None, 0.5, None, None] + [None] * len(phones),
            }
        )
    )
    queries: list[str] = []
    page = neo4j_store._page
    monkeypatch.setattr(
        neo4j_store, "_page", lambda q, p, what: queries.append(q) or page(q, p, what)
    )
    # 3 pages of the 3 controls facts read 9 facts through the index, as many as there are
    # inferred facts: the index; 6 pages of the 6 sharesPhone facts would read 36: the nid range
    for batch_size in (1, 2, 3):
        table = pa.concat_tables(neo4j_store.inferred_batches("controls", batch_size=batch_size))
        assert list(zip(table["src"].to_pylist(), table["dst"].to_pylist(), strict=True)) == [
            (1, 2),
            (1, 3),
            (2, 3),
        ]
        assert table["value"].to_pylist() == [None, 0.5, None]
    assert set(queries) == {cypher.INFERRED_PAGE_PREDICATE}
    queries.clear()
    table = pa.concat_tables(neo4j_store.inferred_batches("sharesPhone", batch_size=1))
    assert set(queries) == {cypher.INFERRED_PAGE}
    expected = sorted([(1, 2)] + [(int(a[1]) + 1, int(b[1]) + 1) for a, b in phones])
    assert list(zip(table["src"].to_pylist(), table["dst"].to_pylist(), strict=True)) == expected
    assert set(table["predicate"].to_pylist()) == {"sharesPhone"}
    assert pa.concat_tables(neo4j_store.inferred_batches(batch_size=1)).num_rows == len(rows)


@needs_server
def test_written_batches_are_emptied_once_the_server_has_them(
    neo4j_store: Neo4jStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver keeps each query's parameters in its result summary, inside reference
    # cycles that only a full collection frees; at a million customers the written rows
    # waiting for one held gigabytes. Every batch the store sends must be empty afterwards.
    sent: list[list[dict[str, object]]] = []
    real_run = Neo4jStore._run

    def run(self: Neo4jStore, query: str, params: dict[str, object], *a: object, **k: object):
        if isinstance(params.get("rows"), list):
            sent.append(params["rows"])  # type: ignore[arg-type]
        return real_run(self, query, params, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Neo4jStore, "_run", run)
    neo4j_store.upsert_nodes(Label.PERSON, _people(8))
    n = 40  # distinct (src, dst) pairs, batches of three rows from several sessions at once
    rows = pa.table(
        {
            "predicate": ["controls"] * n,
            "src": [f"p{i // 8}" for i in range(n)],
            "dst": [f"p{i % 8}" for i in range(n)],
            "rule": ["r"] * n,
            "premises": [f'["fact {i}"]' for i in range(n)],
            "value": [float(i) for i in range(n)],
        }
    )
    sent.clear()
    with neo4j_store.transaction():  # as `materialise` writes: part by part in one job
        neo4j_store.replace_inferred(rows.slice(0, 0))
        for start in range(0, n, 10):
            neo4j_store.apply_inferred_delta(rows.slice(start, 10), rows.slice(0, 0))
    assert len(sent) >= n // 3
    assert [batch for batch in sent if batch] == []
    assert neo4j_store.count_inferred() == n
    assert [f.value for f in neo4j_store.get_inferred("p1", "controls", "p2")] == [10.0]


@needs_server
def test_dates_are_stored_as_iso_text(neo4j_store: Neo4jStore) -> None:
    import datetime as dt

    neo4j_store.upsert_nodes(
        Label.LOAN,
        pa.table({"id": ["l1"], "start_date": pa.array([dt.date(2024, 1, 2)], pa.date32())}),
    )
    table = pa.concat_tables(neo4j_store.node_batches(Label.LOAN))
    assert table.column("start_date").to_pylist() == ["2024-01-02"]


@needs_server
def test_transaction_to_an_unknown_account_names_it_and_its_line(
    neo4j_store: Neo4jStore,
) -> None:
    neo4j_store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1"]}))
    with pytest.raises(StoreError, match=r"a404 \(txns\.csv:7\)"):
        neo4j_store.insert_transactions(
            pa.table(
                {
                    "txn_id": ["t1"],
                    "from_account": ["a1"],
                    "to_account": ["a404"],
                    "amount": [1.0],
                    "ts": ["2024-01-01T00:00:00"],
                    "channel": ["atm"],
                    "_source": ["txns.csv"],
                    "_line": [7],
                }
            )
        )
    assert neo4j_store.count_transactions() == 0


@needs_server
def test_alias_moves_when_recorded_for_another_entity(neo4j_store: Neo4jStore) -> None:
    neo4j_store.upsert_nodes(Label.PERSON, _people(2))
    neo4j_store.add_aliases(pa.table({"alias": ["old-no"], "id": ["p0"]}))
    neo4j_store.add_aliases(pa.table({"alias": ["old-no"], "id": ["p1"]}))
    assert neo4j_store.resolve("old-no") == "p1"
    assert neo4j_store.aliases_of("p0") == []


@needs_server
def test_self_loop_is_listed_once_in_both_directions(neo4j_store: Neo4jStore) -> None:
    neo4j_store.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1"]}))
    neo4j_store.upsert_edges(
        RelType.GUARANTEES, pa.table({"src": ["c1"], "dst": ["c1"], "key": ["g1"]})
    )
    assert len(neo4j_store.neighbours("c1", RelType.GUARANTEES, Direction.BOTH)) == 1


@needs_server
def test_a_store_written_by_a_newer_riskgraph_is_refused(
    neo4j_store: Neo4jStore, neo4j_uri: str
) -> None:
    import neo4j

    neo4j_store.count_nodes()  # creates the store's schema node
    with neo4j.GraphDatabase.driver(neo4j_uri) as driver:
        driver.execute_query(
            "MATCH (s:RiskgraphStore) SET s.schema_version = $newer",
            newer=SCHEMA_VERSION + 1,
        )
    newer = Neo4jStore(neo4j_uri)
    try:
        with pytest.raises(SchemaVersionError, match="upgrade riskgraph"):
            newer.count_nodes()
    finally:
        newer.close()
