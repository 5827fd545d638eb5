"""The SQLite store's columnar copies: a projection reads them, and they are never stale.

Every write that changes a relationship type's rows (upsert, the transfer rebuild and the
delete inside it, a rolled-back job) or the node list must make the next read see the rows,
whichever connection wrote them. Expected answers are worked by hand or read from the rows
with the test's own SQL.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg.model import REL_SCHEMAS, Label, RelType
from kg.projection import Projection
from kg.sqlite_store import SQLiteStore
from kg.store import StoreError, edge_columns, node_columns

# TRANSFERRED has no copy: its blocks are columnar already (kg.transfer_blocks).
ALL_COPIES = {"nodes", *(f"edges:{t.value}" for t in RelType if t is not RelType.TRANSFERRED)}


def current_copies(db: Path) -> set[str]:
    """Names of the copies whose stored version is the current one, read with plain SQL."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT DISTINCT s.name FROM columnar_segments s "
            "LEFT JOIN columnar_versions v ON v.name = s.name "
            "WHERE s.version = coalesce(v.version, 0)"
        ).fetchall()
    return {name for (name,) in rows}


def drop_copies(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM columnar_segments")


def shares(store: SQLiteStore) -> dict[tuple[str, str], float]:
    """HOLDS_SHARES as {(holder id, company id): share_pct} from the store's columnar read."""
    nodes = node_columns(store)
    id_of = dict(zip(nodes.column("nid").to_pylist(), nodes.column("id").to_pylist(), strict=True))
    edges = edge_columns(store, RelType.HOLDS_SHARES, ["share_pct"])
    return {
        (id_of[s], id_of[d]): w
        for s, d, w in zip(
            edges.column("src").to_pylist(),
            edges.column("dst").to_pylist(),
            edges.column("share_pct").to_pylist(),
            strict=True,
        )
    }


def add_shares(store: SQLiteStore, rows: list[tuple[str, str, float]]) -> None:
    store.upsert_edges(
        RelType.HOLDS_SHARES,
        pa.table(
            {
                "src": [r[0] for r in rows],
                "dst": [r[1] for r in rows],
                "key": [""] * len(rows),
                "share_pct": [r[2] for r in rows],
            }
        ),
    )


@pytest.fixture()
def small(tmp_path: Path) -> tuple[SQLiteStore, Path]:
    """P1 holds 60% of C1, P2 holds 40% of C1; copies written."""
    db = tmp_path / "kg.db"
    store = SQLiteStore(db)
    store.upsert_nodes(Label.PERSON, pa.table({"id": ["P1", "P2", "P3"], "name": ["a", "b", "c"]}))
    store.upsert_nodes(Label.COMPANY, pa.table({"id": ["C1", "C2"], "name": ["x", "y"]}))
    add_shares(store, [("P1", "C1", 60.0), ("P2", "C1", 40.0)])
    store.refresh_columnar_copies()
    assert current_copies(db) == ALL_COPIES
    return store, db


@pytest.fixture(scope="module")
def bank_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bank")
    generate_bank(directory, customers=800, seed=5, bad_rows=False, progress=False)
    db = directory / "kg.db"
    store = SQLiteStore(db)
    ingest_directory(store, directory)
    store.close()
    return db


def test_an_ingest_job_leaves_a_current_copy_of_every_type_and_the_nodes(bank_db: Path) -> None:
    assert current_copies(bank_db) == ALL_COPIES


def test_projection_from_the_copies_equals_the_rows(bank_db: Path, tmp_path: Path) -> None:
    warm = Projection.from_store(SQLiteStore(bank_db, read_only=True))
    cold_db = tmp_path / "cold.db"
    with sqlite3.connect(bank_db) as source, sqlite3.connect(cold_db) as target:
        source.backup(target)
    drop_copies(cold_db)
    cold = Projection.from_store(SQLiteStore(cold_db, read_only=True))
    assert current_copies(cold_db) == set()  # read-only: served from rows, nothing written
    assert np.array_equal(warm.nids, cold.nids)
    assert list(warm.ids) == list(cold.ids)
    assert np.array_equal(warm.labels, cold.labels)
    assert warm.relations.keys() == cold.relations.keys()
    for name, rel in warm.relations.items():
        other = cold.relations[name]
        assert np.array_equal(rel.indptr, other.indptr), name
        assert np.array_equal(rel.indices, other.indices), name
        for prop, values in rel.props.items():
            assert np.array_equal(values, other.props[prop], equal_nan=True), (name, prop)


def test_projection_holds_exactly_the_stored_edges(bank_db: Path) -> None:
    """Brute force: every edge row, read with plain SQL, is one projected edge; every account
    pair of the generated transactions is one TRANSFERRED edge."""
    projection = Projection.from_store(SQLiteStore(bank_db, read_only=True))
    with (bank_db.parent / "transactions.csv").open(encoding="utf-8") as handle:
        pairs = {(r["from_account"], r["to_account"]) for r in csv.DictReader(handle)}
    with sqlite3.connect(bank_db) as conn:
        for rel_type in RelType:
            if rel_type is RelType.TRANSFERRED:
                expected = Counter({(a, b): 1 for a, b in pairs if a != b})
            else:
                expected = Counter(
                    conn.execute(
                        f"SELECT a.id, b.id FROM rel_{rel_type.value.lower()} e "
                        "JOIN nodes a ON a.nid = e.src JOIN nodes b ON b.nid = e.dst"
                    ).fetchall()
                )
            rel = projection.relations[rel_type.value]
            got = Counter(
                zip(
                    projection.ids[rel.sources()].tolist(),
                    projection.ids[rel.indices].tolist(),
                    strict=True,
                )
            )
            assert got == expected, rel_type
            assert sum(expected.values()) > 0, rel_type


def test_edge_batches_from_the_copies_equal_the_rows(bank_db: Path, tmp_path: Path) -> None:
    cold_db = tmp_path / "cold.db"
    with sqlite3.connect(bank_db) as source, sqlite3.connect(cold_db) as target:
        source.backup(target)
    drop_copies(cold_db)
    warm, cold = SQLiteStore(bank_db, read_only=True), SQLiteStore(cold_db, read_only=True)
    for rel_type in RelType:
        from_copy = pa.concat_tables(warm.edge_batches(rel_type, batch_size=97))
        from_rows = pa.concat_tables(cold.edge_batches(rel_type, batch_size=97))
        assert from_copy.equals(from_rows), rel_type


def test_upserting_an_edge_makes_the_next_read_see_it(small: tuple[SQLiteStore, Path]) -> None:
    store, db = small
    add_shares(store, [("P3", "C2", 100.0), ("P1", "C1", 55.0)])
    assert "edges:HOLDS_SHARES" not in current_copies(db)
    assert shares(store) == {("P1", "C1"): 55.0, ("P2", "C1"): 40.0, ("P3", "C2"): 100.0}
    projection = Projection.from_store(store, [RelType.HOLDS_SHARES])
    assert projection.num_edges == 3
    assert current_copies(db) == ALL_COPIES  # the read wrote the copy anew


def test_a_new_node_makes_the_node_copy_stale(small: tuple[SQLiteStore, Path]) -> None:
    store, db = small
    store.upsert_nodes(Label.DEVICE, pa.table({"id": ["D1"]}))
    assert "nodes" not in current_copies(db)
    projection = Projection.from_store(store, [])
    assert sorted(map(str, projection.ids)) == ["C1", "C2", "D1", "P1", "P2", "P3"]
    assert [str(i) for i in projection.ids[projection.label_mask(Label.DEVICE)]] == ["D1"]


def test_the_transfer_rebuild_replaces_the_transfer_columns(tmp_path: Path) -> None:
    db = tmp_path / "kg.db"
    store = SQLiteStore(db)
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3"]}))

    def transfer(txn: str, src: str, dst: str, amount: float, ts: str) -> dict[str, object]:
        return {"txn_id": txn, "from_account": src, "to_account": dst, "amount": amount, "ts": ts}

    store.insert_transactions(
        pa.Table.from_pylist(
            [
                transfer("t1", "A1", "A2", 100.0, "2026-01-02T10:00:00"),
                transfer("t2", "A1", "A2", 50.0, "2026-01-01T09:00:00"),
                transfer("t3", "A2", "A3", 10.0, "2026-01-03T08:00:00"),
            ]
        )
    )
    store.rebuild_transfers()
    first = edge_columns(store, RelType.TRANSFERRED).to_pylist()
    a1, a2, a3 = (store.get_node(i).nid for i in ("A1", "A2", "A3"))  # type: ignore[union-attr]
    assert first == [
        {
            "src": a1,
            "dst": a2,
            "key": "",
            "count": 2,
            "total_amount": 150.0,
            "first_ts": "2026-01-01T09:00:00",
            "last_ts": "2026-01-02T10:00:00",
        },
        {
            "src": a2,
            "dst": a3,
            "key": "",
            "count": 1,
            "total_amount": 10.0,
            "first_ts": "2026-01-03T08:00:00",
            "last_ts": "2026-01-03T08:00:00",
        },
    ]
    store.insert_transactions(
        pa.Table.from_pylist([transfer("t4", "A3", "A1", 7.0, "2026-01-04T00:00:00")])
    )
    store.rebuild_transfers()
    again = edge_columns(store, RelType.TRANSFERRED, ["count", "total_amount"])
    assert again.to_pylist()[-1] == {"src": a3, "dst": a1, "count": 1, "total_amount": 7.0}
    assert again.num_rows == 3
    # Another connection reads the same; dropping the copies of the row types changes nothing.
    drop_copies(db)
    assert edge_columns(SQLiteStore(db, read_only=True), RelType.TRANSFERRED).equals(
        edge_columns(store, RelType.TRANSFERRED)
    )


def test_a_rolled_back_job_leaves_the_copy_as_before(small: tuple[SQLiteStore, Path]) -> None:
    store, db = small
    before = {("P1", "C1"): 60.0, ("P2", "C1"): 40.0}
    with pytest.raises(RuntimeError, match="job failed"), store.transaction():
        add_shares(store, [("P3", "C1", 5.0)])
        # Read inside the job: the copy is rewritten in the job's own transaction ...
        assert shares(store)[("P3", "C1")] == 5.0
        raise RuntimeError("job failed")
    # ... and rolled back with it.
    assert shares(store) == before
    assert current_copies(db) == ALL_COPIES
    assert SQLiteStore(db, read_only=True).count_edges(RelType.HOLDS_SHARES) == 2


def test_a_write_through_another_connection_is_seen(small: tuple[SQLiteStore, Path]) -> None:
    reader, db = small
    assert shares(reader) == {("P1", "C1"): 60.0, ("P2", "C1"): 40.0}
    writer = SQLiteStore(db)
    add_shares(writer, [("P2", "C2", 12.5)])
    writer.close()
    assert shares(reader)[("P2", "C2")] == 12.5


def test_a_store_file_from_before_the_copies_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "kg.db"
    store = SQLiteStore(db)
    store.upsert_nodes(Label.PERSON, pa.table({"id": ["P1"], "name": ["a"]}))
    store.upsert_nodes(Label.COMPANY, pa.table({"id": ["C1"], "name": ["x"]}))
    add_shares(store, [("P1", "C1", 30.0)])
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE columnar_segments")
        conn.execute("DROP TABLE columnar_versions")
    read_only = SQLiteStore(db, read_only=True)
    assert shares(read_only) == {("P1", "C1"): 30.0}  # from the rows; nothing to write to
    read_only.close()
    migrated = SQLiteStore(db)
    assert shares(migrated) == {("P1", "C1"): 30.0}
    assert {"nodes", "edges:HOLDS_SHARES"} <= current_copies(db)
    add_shares(migrated, [("P1", "C1", 31.0)])
    assert shares(migrated) == {("P1", "C1"): 31.0}


def test_every_edge_column_is_kept(small: tuple[SQLiteStore, Path]) -> None:
    store, _ = small
    names = edge_columns(store, RelType.GUARANTEES).column_names
    assert names == ["src", "dst", "key", *REL_SCHEMAS[RelType.GUARANTEES].props]


def test_a_dangling_edge_chunk_is_undone_inside_an_open_job(
    small: tuple[SQLiteStore, Path],
) -> None:
    store, _ = small
    with store.transaction():
        with pytest.raises(StoreError, match="nobody"):
            add_shares(store, [("P3", "C2", 1.0), ("P3", "nobody", 2.0)])
        add_shares(store, [("P2", "C2", 3.0)])
    assert shares(store) == {("P1", "C1"): 60.0, ("P2", "C1"): 40.0, ("P2", "C2"): 3.0}


def test_first_and_last_transfer_ignore_missing_timestamps(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2"]}))
    store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t1", "t2", "t3", "t4"],
                "from_account": ["A1", "A1", "A1", "A2"],
                "to_account": ["A2", "A2", "A2", "A1"],
                "amount": [1.0, 2.0, 4.0, 8.0],
                "ts": ["2026-01-02T00:00:00", None, "2026-01-01T00:00:00", None],
            }
        )
    )
    store.rebuild_transfers()
    got = edge_columns(store, RelType.TRANSFERRED, ["count", "total_amount", "first_ts", "last_ts"])
    assert [
        {k: v for k, v in row.items() if k not in ("src", "dst")} for row in got.to_pylist()
    ] == [
        {
            "count": 3,
            "total_amount": 7.0,
            "first_ts": "2026-01-01T00:00:00",
            "last_ts": "2026-01-02T00:00:00",
        },
        {"count": 1, "total_amount": 8.0, "first_ts": None, "last_ts": None},
    ]


def test_edge_columns_of_no_properties_are_the_ends_only(small: tuple[SQLiteStore, Path]) -> None:
    store, db = small
    everything = ["src", "dst", "key", *REL_SCHEMAS[RelType.HOLDS_SHARES].props]
    for reader in (store, SQLiteStore(db, read_only=True)):
        assert edge_columns(reader, RelType.HOLDS_SHARES, []).column_names == ["src", "dst"]
        assert edge_columns(reader, RelType.HOLDS_SHARES).column_names == everything
