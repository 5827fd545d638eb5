"""The SQLite store's bulk load gives the same store as plain upserts, row for row.

Inside `bulk_load()` the store resolves ids from a node index it keeps, defers the
secondary indexes and writes the columnar copies from what it wrote; outside it, ids are
resolved with SQL and the copies are read back from the rows. Both must leave the same
rows, with the merge rules worked by hand below.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import kg.sqlite_store as sqlite_store
from ingest.generator import generate_bank
from ingest.pipeline import IngestError, ingest_directory
from kg import sql
from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import StoreError, edge_columns, node_columns

Rows = list[tuple[Any, ...]]


def dump(db: Path) -> dict[str, Rows]:
    """Every fact of a store file by entity id (nids differ between stores), in one order."""
    with sqlite3.connect(db) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND (name GLOB 'node_*' OR name GLOB 'rel_*')"
            )
        ]
        out = {
            "nodes": conn.execute(
                "SELECT id, label, name, _source, _line, _job FROM nodes ORDER BY id"
            ).fetchall(),
            "aliases": conn.execute(
                "SELECT a.alias, n.id FROM aliases a JOIN nodes n USING (nid) ORDER BY a.alias"
            ).fetchall(),
        }
        for table in tables:
            # entity ids in place of nids, which differ between stores
            if table.startswith("node_"):
                query = f"SELECT n.id, p.* FROM {table} p JOIN nodes n USING (nid)"
                rows = [(r[0], *r[2:]) for r in conn.execute(query)]
            else:
                query = (
                    f"SELECT a.id, b.id, e.* FROM {table} e JOIN nodes a ON a.nid = e.src "
                    "JOIN nodes b ON b.nid = e.dst"
                )
                rows = [(r[0], r[1], *r[4:]) for r in conn.execute(query)]
            out[table] = sorted(rows, key=lambda r: [str(v) for v in r])
    return out


def copies_equal_rows(store: SQLiteStore, db: Path) -> None:
    """The columnar copies equal what the rows read back."""
    copied = {t: edge_columns(store, t) for t in RelType}
    nodes = node_columns(store)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM columnar_segments")
    fresh = SQLiteStore(db, read_only=True)
    assert node_columns(fresh).cast(nodes.schema).equals(nodes)
    for rel_type, table in copied.items():
        assert edge_columns(fresh, rel_type).equals(table), rel_type
    fresh.close()


def persons(ids: list[str], names: list[str | None], lines: list[int], **extra: Any) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": ids,
            "name": pa.array(names, pa.string()),
            **extra,
            "_source": ["persons.csv"] * n,
            "_line": lines,
            "_job": ["job"] * n,
        }
    )


def shares(rows: list[tuple[str, str, float | None, float | None, int]]) -> pa.Table:
    return pa.table(
        {
            "src": [r[0] for r in rows],
            "dst": [r[1] for r in rows],
            "key": [""] * len(rows),
            "share_pct": pa.array([r[2] for r in rows], pa.float64()),
            "voting_pct": pa.array([r[3] for r in rows], pa.float64()),
            "_source": ["shareholdings.csv"] * len(rows),
            "_line": [r[4] for r in rows],
            "_job": ["job"] * len(rows),
        }
    )


def merges(store: SQLiteStore) -> None:
    """Writes that merge: a repeated id in a batch, a known node again, repeated edges."""
    store.upsert_nodes(
        Label.PERSON,
        persons(["p2", "p1", "p2"], ["first", "一", None], [2, 3, 4], phone=["1", None, "3"]),
    )
    store.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1", "c2"], "name": ["x", "y"]}))
    store.upsert_nodes(Label.PERSON, persons(["p1", "p3"], [None, "三"], [9, 10], vip=["a", None]))
    store.upsert_nodes(Label.DEVICE, pa.table({"id": ["d1", "d2"], "_line": [5, 6]}))
    store.upsert_edges(
        RelType.HOLDS_SHARES,
        shares(
            [("p2", "c1", 10.0, None, 2), ("p1", "c1", 5.0, 6.0, 3), ("p2", "c1", None, 7.0, 4)]
        ),
    )
    store.upsert_edges(RelType.HOLDS_SHARES, shares([("p1", "c1", 8.0, None, 5)]))
    store.upsert_edges(
        RelType.HOLDS_POSITION,
        pa.table({"src": ["p1", "p1"], "dst": ["c2", "c2"], "key": ["director", "supervisor"]}),
    )
    # an end outside the labels the type expects: the store does not police them
    store.upsert_edges(RelType.USES_DEVICE, pa.table({"src": ["p3"], "dst": ["c1"], "key": [""]}))


def in_bulk_load(store: SQLiteStore, writes: Callable[[SQLiteStore], None]) -> None:
    with store.transaction(), store.bulk_load():
        writes(store)


def test_a_bulk_load_leaves_the_rows_that_plain_upserts_leave(tmp_path: Path) -> None:
    bulk, plain = SQLiteStore(tmp_path / "bulk.db"), SQLiteStore(tmp_path / "plain.db")
    in_bulk_load(bulk, merges)
    merges(plain)
    assert dump(tmp_path / "bulk.db") == dump(tmp_path / "plain.db")
    copies_equal_rows(bulk, tmp_path / "bulk.db")


def test_the_merge_rules_worked_by_hand(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    in_bulk_load(store, merges)
    p2 = store.get_node("p2")
    assert p2 is not None and p2.provenance is not None
    # the first row of an id creates the node and keeps its provenance; later non-null
    # values win
    assert (p2.props["name"], p2.props["phone"], p2.provenance.line) == ("first", "3", 2)
    p1 = store.get_node("p1")
    assert p1 is not None and p1.provenance is not None
    assert (p1.props["name"], p1.props["vip"], p1.provenance.line) == ("一", "a", 3)
    edge = {(e.src, e.dst): e for e in store.neighbours("c1", RelType.HOLDS_SHARES)}
    # an edge keeps the latest row's provenance and the last non-null value of each property
    assert edge["p2", "c1"].props == {"share_pct": 10.0, "voting_pct": 7.0}
    assert edge["p2", "c1"].provenance is not None and edge["p2", "c1"].provenance.line == 4
    assert edge["p1", "c1"].props == {"share_pct": 8.0, "voting_pct": 6.0}
    assert store.count_edges(RelType.HOLDS_POSITION) == 2
    assert [n.id for n in store.get_nodes_by_nid([1, 2, 3])] == ["p2", "p1", "c1"]


def test_a_bulk_load_refuses_an_id_of_another_label(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.PERSON, persons(["p1"], ["一"], [2]))
    with pytest.raises(StoreError, match=r"p1 \(a Person\)"):
        in_bulk_load(store, lambda s: s.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1", "p1"]})))
    assert store.count_nodes() == 1


def test_a_dangling_edge_in_a_bulk_load_names_it_and_the_job_writes_nothing(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "kg.db")

    def writes(s: SQLiteStore) -> None:
        s.upsert_nodes(Label.PERSON, persons(["p1"], ["一"], [2]))
        s.upsert_edges(RelType.RELATIVE_OF, pa.table({"src": ["p1"], "dst": ["nobody"]}))

    with pytest.raises(StoreError, match="p1->nobody"):
        in_bulk_load(store, writes)
    assert store.count_nodes() == 0


def generated_bank(directory: Path) -> Path:
    generate_bank(directory, customers=400, seed=11, bad_rows=True, progress=False)
    return directory


def test_an_ingest_into_an_empty_store_equals_one_into_a_store_that_was_not(
    tmp_path: Path,
) -> None:
    """The second store held one unrelated node, so its job ran without dropping indexes;
    the rows must agree except for that node."""
    bank = generated_bank(tmp_path / "bank")
    empty, seeded = SQLiteStore(tmp_path / "empty.db"), SQLiteStore(tmp_path / "seeded.db")
    seeded.upsert_nodes(Label.DEVICE, pa.table({"id": ["seed-device"]}))
    first = ingest_directory(empty, bank)
    second = ingest_directory(seeded, bank)
    assert [r.line for r in first.rejects] == [r.line for r in second.rejects]
    a, b = dump(tmp_path / "empty.db"), dump(tmp_path / "seeded.db")
    b["nodes"] = [r for r in b["nodes"] if r[0] != "seed-device"]
    a["nodes"] = [r[:5] for r in a["nodes"]]
    b["nodes"] = [r[:5] for r in b["nodes"]]  # the job ids differ
    for name in a:
        if name != "nodes":
            a[name] = [tuple(v for v in r if v not in (first.job_id,)) for r in a[name]]
            b[name] = [tuple(v for v in r if v not in (second.job_id,)) for r in b[name]]
    assert a == b
    copies_equal_rows(empty, tmp_path / "empty.db")


def test_a_rerun_changes_no_row(tmp_path: Path) -> None:
    bank = generated_bank(tmp_path / "bank")
    store = SQLiteStore(tmp_path / "kg.db")
    first = ingest_directory(store, bank)
    before = dump(tmp_path / "kg.db")
    stored = store.count_transactions()
    second = ingest_directory(store, bank)
    after = dump(tmp_path / "kg.db")
    # the second job writes the same values; only the provenance of edges names the new job
    assert after["nodes"] == before["nodes"]
    for name, rows in before.items():
        if name == "nodes":  # a node keeps the provenance of the job that created it
            continue
        assert [tuple(second.job_id if v == first.job_id else v for v in r) for r in rows] == (
            after[name]
        ), name
    assert store.count_transactions() == stored
    copies_equal_rows(store, tmp_path / "kg.db")


def test_a_job_failing_midway_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    bank = generated_bank(tmp_path / "bank")
    store = SQLiteStore(tmp_path / "kg.db")
    ingest_directory(store, bank)
    before = dump(tmp_path / "kg.db")
    copies = {t: edge_columns(store, t) for t in RelType}
    lines = (bank / "transactions.csv").read_text(encoding="utf-8").splitlines()
    # a transaction file that is not valid CSV fails the job after every other file loaded
    (bank / "transactions.csv").write_text(
        "\n".join([*lines, "T-broken,A1"]) + "\n", encoding="utf-8"
    )
    (bank / "persons.csv").write_text(
        (bank / "persons.csv").read_text(encoding="utf-8")
        + "P99999999,新人,,,,330106,1990-01-01\n",
        encoding="utf-8",
    )
    with pytest.raises(IngestError):
        ingest_directory(store, bank)
    assert dump(tmp_path / "kg.db") == before
    assert {t: edge_columns(store, t) for t in RelType} == copies
    assert store.get_node("P99999999") is None


def journal_of_jobs(monkeypatch: pytest.MonkeyPatch, db: Path) -> list[tuple[str, bool]]:
    """The journal mode of each job's connection, and whether a WAL log existed, seen from
    inside the job (its transfer rebuild)."""
    seen: list[tuple[str, bool]] = []
    rebuild = SQLiteStore.rebuild_transfers

    def spy(self: SQLiteStore) -> int:
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        seen.append((mode, db.with_name(db.name + "-wal").exists()))
        return rebuild(self)

    monkeypatch.setattr(SQLiteStore, "rebuild_transfers", spy)
    return seen


def file_journal_mode(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    return mode


def test_a_job_into_an_empty_store_writes_no_log_and_the_store_stays_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first job writes its pages straight into the file (a rollback journal); the
    next job, into a store with nodes, runs in WAL mode so readers go on meanwhile."""
    bank = generated_bank(tmp_path / "bank")
    db = tmp_path / "kg.db"
    seen = journal_of_jobs(monkeypatch, db)
    store = SQLiteStore(db)
    ingest_directory(store, bank)
    assert file_journal_mode(db) == "wal"
    assert dump(db)["nodes"]
    ingest_directory(store, bank)
    assert seen == [("delete", False), ("wal", True)]
    assert not db.with_name(db.name + "-journal").exists()


def test_a_job_into_an_empty_store_another_connection_has_open_stays_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback journal needs the file to itself: with a reader's connection open, the
    job runs in WAL mode and gives the same store."""
    bank = generated_bank(tmp_path / "bank")
    alone, shared = tmp_path / "alone.db", tmp_path / "shared.db"
    first = ingest_directory(SQLiteStore(alone), bank)
    seen = journal_of_jobs(monkeypatch, shared)
    store = SQLiteStore(shared)
    reader = sqlite3.connect(shared)
    assert reader.execute("SELECT count(*) FROM nodes").fetchone() == (0,)
    second = ingest_directory(store, bank)
    assert seen == [("wal", True)]
    assert reader.execute("SELECT count(*) FROM nodes").fetchone()[0] > 0
    reader.close()

    def facts(db: Path, job_id: str) -> dict[str, Rows]:
        return {
            name: [tuple("job" if v == job_id else v for v in row) for row in rows]
            for name, rows in dump(db).items()
        }

    assert facts(shared, second.job_id) == facts(alone, first.job_id)


def transactions(ids: list[str]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "txn_id": ids,
            "from_account": ["A1"] * n,
            "to_account": ["A2"] * n,
            "amount": [float(i + 1) for i in range(n)],
            "ts": [f"2024-01-0{i % 9 + 1}T10:00:00" for i in range(n)],
            "_line": list(range(2, n + 2)),
        }
    )


@pytest.mark.parametrize("collide", [False, True], ids=["fingerprints", "all-colliding"])
def test_a_txn_id_is_stored_once_whatever_its_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    if collide:  # every id shares one fingerprint: only the exact comparison decides
        monkeypatch.setattr(
            sqlite_store, "string_fingerprints", lambda values: np.full(len(values), 7, np.int64)
        )
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2"]}))
    with store.transaction():
        assert store.insert_transactions(transactions(["t1", "t2", "t1", "t3"])) == 3
        assert store.insert_transactions(transactions(["t3", "t4", "t4"])) == 1
    assert store.insert_transactions(transactions(["t2", "t5"])) == 1
    stored = [t for batch in store.transaction_batches() for t in batch.to_pylist()]
    assert [(t["txn_id"], t["amount"]) for t in stored] == [
        ("t1", 1.0),
        ("t2", 2.0),
        ("t3", 4.0),
        ("t4", 2.0),
        ("t5", 2.0),
    ]


def test_a_write_that_fails_inside_sqlite_fails_the_job_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement SQLite refuses in the middle of a bulk load fails the job, and the
    whole job is rolled back."""
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.PERSON, persons(["p0"], ["零"], [1]))
    monkeypatch.setattr(
        sqlite_store.sql, "NODE_NAME_MERGE", "UPDATE nodes SET name = ? WHERE nid = ? AND no_column"
    )

    def writes(s: SQLiteStore) -> None:
        s.upsert_nodes(Label.PERSON, persons(["p1", "p0"], ["一", "零零"], [2, 3]))
        s.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1"], "name": ["x"]}))

    with pytest.raises(StoreError, match="no_column"):
        in_bulk_load(store, writes)
    assert [n.id for n in store.search("一")] == []
    assert store.count_nodes() == 1
    node = store.get_node("p0")
    assert node is not None and node.props["name"] == "零"


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk-load", "plain"])
def test_rows_of_a_batch_merge_in_row_order_across_statements(tmp_path: Path, bulk: bool) -> None:
    """A batch goes to SQLite as statements of many rows each; repeated ids and edges
    still merge in row order (expected values worked out row by row here)."""
    rng = random.Random(3)
    ids = [f"p{rng.randrange(9)}" for _ in range(300)]
    names = [rng.choice([None, "甲", "乙", "丙"]) for _ in ids]
    edges = [(f"p{rng.randrange(9)}", "c1") for _ in range(300)]
    pct = [rng.choice([None, 1.0, 2.0, 3.0]) for _ in edges]
    expected_names: dict[str, str | None] = {}
    for node_id, name in zip(ids, names, strict=True):
        expected_names[node_id] = name if name is not None else expected_names.get(node_id)
    expected_pct: dict[str, float | None] = {}
    for (src, _), value in zip(edges, pct, strict=True):
        expected_pct[src] = value if value is not None else expected_pct.get(src)

    def writes(s: SQLiteStore) -> None:
        s.upsert_nodes(Label.COMPANY, pa.table({"id": ["c1"]}))
        s.upsert_nodes(Label.PERSON, persons(ids, names, list(range(300))))
        s.upsert_edges(
            RelType.HOLDS_SHARES,
            shares([(a, b, v, None, 1) for (a, b), v in zip(edges, pct, strict=True)]),
        )

    store = SQLiteStore(tmp_path / "kg.db")
    if bulk:
        in_bulk_load(store, writes)
    else:
        writes(store)
    for node_id, name in expected_names.items():
        node = store.get_node(node_id)
        assert node is not None and node.props.get("name") == name
        assert node.provenance is not None and node.provenance.line == ids.index(node_id)
    got = {e.src: e.props.get("share_pct") for e in store.neighbours("c1", RelType.HOLDS_SHARES)}
    assert got == expected_pct
    copies_equal_rows(store, tmp_path / "kg.db")


def test_edges_written_after_the_transactions_began_reach_the_copies(tmp_path: Path) -> None:
    """When transactions begin, the load writes the edge copies early; an edge written
    after that must still be in the copy the projection reads."""

    def writes(s: SQLiteStore) -> None:
        merges(s)
        s.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2"]}))
        s.insert_transactions(transactions(["t1", "t2"]))
        s.upsert_edges(RelType.HOLDS_SHARES, shares([("p3", "c2", 9.0, None, 7)]))
        s.rebuild_transfers()

    store = SQLiteStore(tmp_path / "kg.db")
    in_bulk_load(store, writes)
    edges = edge_columns(store, RelType.HOLDS_SHARES, ["share_pct"])
    assert 9.0 in edges.column("share_pct").to_pylist()
    assert edge_columns(store, RelType.TRANSFERRED).num_rows == 1
    copies_equal_rows(store, tmp_path / "kg.db")


def test_nodes_written_after_the_transactions_began_reach_the_index_and_the_copy(
    tmp_path: Path,
) -> None:
    """The index builds and copies run on a worker once transactions begin; a node written
    after that waits for the worker and still reaches the id index and the node copy."""

    def writes(s: SQLiteStore) -> None:
        merges(s)
        s.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2"]}))
        s.insert_transactions(transactions(["t1", "t2"]))
        s.insert_transactions(transactions(["t3"]))
        s.upsert_nodes(Label.PERSON, persons(["p9"], ["九"], [11]))
        s.rebuild_transfers()

    store = SQLiteStore(tmp_path / "kg.db")
    in_bulk_load(store, writes)
    assert "p9" in node_columns(store).column("id").to_pylist()
    with sqlite3.connect(tmp_path / "kg.db") as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT nid FROM nodes WHERE id = 'p9'").fetchall()
    assert "nodes_id" in str(plan)
    node = store.get_node("p9")
    assert node is not None and node.props["name"] == "九"
    assert store.count_transactions() == 3
    assert [t["txn_id"] for b in store.transaction_batches() for t in b.to_pylist()] == [
        "t1",
        "t2",
        "t3",
    ]
    copies_equal_rows(store, tmp_path / "kg.db")


@pytest.mark.parametrize("fails", ["job", "worker"])
def test_a_load_failing_after_the_transactions_began_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """Whether the job fails while the worker flushes or the worker's flush fails, the
    job is rolled back whole, the workers are gone and the store takes the next job."""
    if fails == "worker":

        def broken(table: pa.Table, name: str) -> pa.Table:
            raise RuntimeError("copy layout failed")

        monkeypatch.setattr(sqlite_store, "_copy_layout", broken)

    def writes(s: SQLiteStore) -> None:
        merges(s)
        s.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2"]}))
        s.insert_transactions(transactions(["t1", "t2"]))
        if fails == "job":
            raise RuntimeError("the job failed")
        s.rebuild_transfers()

    store = SQLiteStore(tmp_path / "kg.db")
    with pytest.raises(RuntimeError, match="failed"):
        in_bulk_load(store, writes)
    workers = ("riskgraph-flush", "riskgraph-segments")
    assert not [t for t in threading.enumerate() if t.name.startswith(workers)]
    assert store.count_nodes() == 0 and store.count_transactions() == 0
    assert file_journal_mode(tmp_path / "kg.db") == "wal"
    monkeypatch.undo()
    in_bulk_load(store, merges)
    assert store.count_nodes() == 7  # p1-p3, c1, c2, d1, d2
    copies_equal_rows(store, tmp_path / "kg.db")


def test_the_name_index_holds_named_nodes_and_serves_prefix_search(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    rows = {"_source": ["n.csv"] * 2, "_line": [2, 3], "_job": ["j"] * 2}
    store.upsert_nodes(
        Label.PERSON, pa.table({"id": ["p1", "p2"], "name": ["王芳", "王强"], **rows})
    )
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["a1", "a2"], **rows}))
    with sqlite3.connect(tmp_path / "kg.db") as conn:
        conn.execute("ANALYZE")
        (stat,) = conn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'nodes_name'").fetchone()
        entries = int(stat.split()[0])
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT nid FROM nodes WHERE name >= ?1 "
            "AND name < ?1 || char(1114111) ORDER BY name LIMIT ?2",
            ("王", 5),
        ).fetchall()
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert entries == 2  # the accounts have no name and no entry
    assert "nodes_name" in str(plan)
    assert not {i for i in indexes if i.endswith(("_phone", "_address_norm"))}
    assert [n.id for n in store.search("王")] == ["p2", "p1"]  # name order: 强 < 芳


def test_a_bulk_load_builds_the_node_id_index_again_and_it_keeps_ids_unique(
    tmp_path: Path,
) -> None:
    bank = generated_bank(tmp_path / "bank")
    store = SQLiteStore(tmp_path / "kg.db")
    report = ingest_directory(store, bank)
    stored = aliases(store)  # written while the id index was dropped
    assert len(stored) == report.aliases > 0
    for alias in stored:
        node = store.get_node(alias)
        assert node is not None and node.id != alias
    with sqlite3.connect(tmp_path / "kg.db") as conn:
        (create,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'nodes_id'").fetchone()
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT nid FROM nodes WHERE id = 'x'").fetchall()
        (node_id,) = conn.execute("SELECT id FROM nodes LIMIT 1").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute("INSERT INTO nodes (nid, id, label) VALUES (-1, ?, 'Person')", (node_id,))
    assert create.startswith("CREATE UNIQUE INDEX nodes_id")
    assert "nodes_id" in str(plan)


def aliases(store: SQLiteStore) -> list[str]:
    with sqlite3.connect(store.path) as conn:
        return [a for (a,) in conn.execute("SELECT alias FROM aliases")]


def test_a_multi_row_statement_binds_a_constant_once_and_writes_null_as_a_literal() -> None:
    statement = sql.multi_row(
        "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)", 2, (False, True, None, False)
    )
    assert statement == "INSERT INTO t (a, b, c, d) VALUES (?2, ?1, NULL, ?3), (?4, ?1, NULL, ?5)"


def payments(rows: list[tuple[str, str, str, float, int]]) -> pa.Table:
    """Transactions (txn_id, from, to, amount, day of January 2024)."""
    return pa.table(
        {
            "txn_id": [r[0] for r in rows],
            "from_account": [r[1] for r in rows],
            "to_account": [r[2] for r in rows],
            "amount": [r[3] for r in rows],
            "ts": [f"2024-01-{r[4]:02d}T10:00:00" for r in rows],
        }
    )


def transfers_by_id(store: SQLiteStore) -> list[tuple[Any, ...]]:
    ids = dict(
        zip(*(node_columns(store).column(c).to_pylist() for c in ("nid", "id")), strict=True)
    )
    table = edge_columns(store, RelType.TRANSFERRED)
    return sorted(
        (ids[r["src"]], ids[r["dst"]], r["count"], r["total_amount"], r["first_ts"], r["last_ts"])
        for r in table.to_pylist()
    )


def test_transfers_aggregated_in_memory_equal_the_ones_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load into a store without transactions aggregates the transfers from what it kept
    in memory (no segment read back); a load into a store with transactions reads them back,
    and so does the second rebuild of a load that wrote more after its first. All three
    give the aggregates worked by hand."""
    early = [("t1", "A1", "A2", 10.0, 1), ("t3", "A2", "A3", 7.0, 2)]
    late = [("t2", "A1", "A2", 5.0, 3), ("t4", "A1", "A2", 1.0, 2)]
    expected = [
        ("A1", "A2", 3, 16.0, "2024-01-01T10:00:00", "2024-01-03T10:00:00"),
        ("A2", "A3", 1, 7.0, "2024-01-02T10:00:00", "2024-01-02T10:00:00"),
    ]
    read_back: list[str] = []
    columns = SQLiteStore._transaction_columns

    def spy(self: SQLiteStore, names: Any) -> Any:
        if names is not None and "from_nid" in names:
            read_back.append(Path(self.path).name)
        return columns(self, names)

    monkeypatch.setattr(SQLiteStore, "_transaction_columns", spy)

    def load(store: SQLiteStore, *batches: list[tuple[str, str, str, float, int]]) -> None:
        with store.transaction(), store.bulk_load():
            if not store.count_nodes():
                store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3"]}))
            for batch in batches:
                store.insert_transactions(payments(batch))
                store.rebuild_transfers()

    one = SQLiteStore(tmp_path / "one.db")
    load(one, early + late)
    split = SQLiteStore(tmp_path / "split.db")
    load(split, early)
    load(split, late)
    again = SQLiteStore(tmp_path / "again.db")
    load(again, early, late)
    assert read_back == ["split.db", "again.db"]
    for store in (one, split, again):
        assert transfers_by_id(store) == expected, store.path


def test_a_rebuild_compresses_blocks_while_the_worker_flushes_and_writes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transfer rebuild does not wait for the worker to compress its blocks (the
    worker is slowed down here); the blocks written are the whole aggregate."""
    layout = sqlite_store._copy_layout

    def slow_layout(table: pa.Table, name: str) -> pa.Table:
        time.sleep(0.3)
        return layout(table, name)

    monkeypatch.setattr(sqlite_store, "_copy_layout", slow_layout)
    monkeypatch.setattr(sqlite_store.transfers, "BLOCK_ROWS", 1)  # a block per account
    store = SQLiteStore(tmp_path / "kg.db")
    produced = sqlite_store.transfers.blocks
    while_flushing: list[bool] = []

    def spy(edges: pa.Table) -> Any:
        for block in produced(edges):
            bulk = store._bulk()
            assert bulk is not None
            while_flushing.append(bulk.flushing is not None and not bulk.flushing.done())
            yield block

    monkeypatch.setattr(sqlite_store.transfers, "blocks", spy)
    with store.transaction(), store.bulk_load():
        store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3"]}))
        store.upsert_edges(RelType.OWNS_ACCOUNT, pa.table({"src": ["A1"], "dst": ["A2"]}))
        store.insert_transactions(
            payments([("t1", "A1", "A2", 10.0, 1), ("t2", "A2", "A3", 7.0, 2)])
        )
        assert store.rebuild_transfers() == 2
    assert while_flushing[0] and len(while_flushing) == 4  # out: A1, A2; in: A2, A3
    assert transfers_by_id(store) == [
        ("A1", "A2", 1, 10.0, "2024-01-01T10:00:00", "2024-01-01T10:00:00"),
        ("A2", "A3", 1, 7.0, "2024-01-02T10:00:00", "2024-01-02T10:00:00"),
    ]
