"""TRANSFERRED edges of the SQLite store kept as blocks (schema 6).

Expected answers come from the transactions themselves, aggregated here by brute force: one
edge per (from, to) account pair with its count, amount sum and first and last timestamp.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kg import sql
from kg import transfer_blocks as transfers
from kg.model import Direction, Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import SCHEMA_VERSION, edge_columns

ACCOUNTS = [f"A{i:02d}" for i in range(30)]


@given(
    st.lists(st.integers(0, 40), max_size=300).map(sorted),
    st.integers(1, 12),
)
@settings(max_examples=200, deadline=None)
def test_a_block_never_splits_a_node_and_stays_near_its_size(
    keys: list[int], block_rows: int
) -> None:
    array = np.array(keys, np.int64)
    starts = transfers.block_starts(array, block_rows)
    if not keys:
        assert starts.size == 0
        return
    assert starts[0] == 0
    bounds = [*starts.tolist(), len(keys)]
    for start, stop in pairwise(bounds):
        assert start < stop
        assert start == 0 or keys[start - 1] != keys[start]  # a node is never split
        last = keys[stop - 1]
        before_last = sum(1 for k in keys[start:stop] if k != last)
        assert before_last < block_rows  # only one node's edges may make a block large


def _transactions(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        src = rng.choice(ACCOUNTS[:12])  # a few busy senders: nodes larger than a block
        rows.append(
            {
                "txn_id": f"t{i}",
                "from_account": src,
                "to_account": src if rng.random() < 0.03 else rng.choice(ACCOUNTS),
                "amount": float(rng.randint(1, 1000)),
                "ts": f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00",
            }
        )
    return rows


def _brute_force(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        pairs[(row["from_account"], row["to_account"])].append(row)
    return {
        pair: {
            "count": len(txns),
            "total_amount": sum(t["amount"] for t in txns),
            "first_ts": min(t["ts"] for t in txns),
            "last_ts": max(t["ts"] for t in txns),
        }
        for pair, txns in pairs.items()
    }


@pytest.fixture()
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfers, "BLOCK_ROWS", 4)
    monkeypatch.setattr(transfers, "_PARALLEL_SORT", 16)


def test_neighbours_and_columns_equal_the_transactions_aggregated(
    tmp_path: Path, small_blocks: None
) -> None:
    rows = _transactions(seed=3, n=600)
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ACCOUNTS}))
    store.insert_transactions(pa.Table.from_pylist(rows))
    expected = _brute_force(rows)
    assert store.rebuild_transfers() == len(expected)
    assert store.count_edges(RelType.TRANSFERRED) == len(expected)
    with sqlite3.connect(tmp_path / "kg.db") as conn:
        (blocks,) = conn.execute("SELECT count(*) FROM transfer_blocks").fetchone()
    assert blocks > 20  # many blocks each way

    for account in ACCOUNTS:
        out = store.neighbours(account, RelType.TRANSFERRED, Direction.OUT)
        assert [(e.src, e.dst) for e in out] == sorted(p for p in expected if p[0] == account)
        into = store.neighbours(account, RelType.TRANSFERRED, Direction.IN)
        assert sorted((e.src, e.dst) for e in into) == sorted(
            p for p in expected if p[1] == account
        )
        both = store.neighbours(account, RelType.TRANSFERRED, Direction.BOTH)
        # a self loop is listed once
        assert sorted((e.src, e.dst) for e in both) == sorted(p for p in expected if account in p)
        for edge in both:
            assert edge.key == ""
            assert edge.props == expected[(edge.src, edge.dst)]
            assert edge.provenance is None

    nids = {store.get_node(a).nid: a for a in ACCOUNTS}  # type: ignore[union-attr]
    table = edge_columns(store, RelType.TRANSFERRED)
    got = {
        (nids[r.pop("src")], nids[r.pop("dst")]): r for r in table.to_pylist() if r.pop("key") == ""
    }
    assert got == expected
    keys = list(zip(table.column("src").to_pylist(), table.column("dst").to_pylist(), strict=True))
    assert keys == sorted(keys)


def test_an_unknown_or_quiet_account_has_no_transfers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3"]}))
    assert store.neighbours("A1", RelType.TRANSFERRED) == []  # nothing rebuilt yet
    store.insert_transactions(
        pa.table(
            {
                "txn_id": ["t1"],
                "from_account": ["A2"],
                "to_account": ["A3"],
                "amount": [5.0],
                "ts": ["2026-01-01T00:00:00"],
            }
        )
    )
    store.rebuild_transfers()
    assert store.neighbours("A1", RelType.TRANSFERRED) == []
    assert store.neighbours("nobody", RelType.TRANSFERRED) == []
    [edge] = store.neighbours("A3", RelType.TRANSFERRED, Direction.IN)
    assert (edge.src, edge.dst, edge.props["count"]) == ("A2", "A3", 1)


def _schema_5_file(path: Path) -> None:
    """A store file as riskgraph wrote it with schema 5: TRANSFERRED as rows, with their
    columnar copy."""
    conn = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 6):
        for statement in sql.MIGRATIONS[version]:
            conn.execute(statement)
        for statement in sql.MIGRATION_CLEANUP.get(version, []):
            conn.execute(statement)
    for statement in sql.COLUMNAR_TABLES:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '5')")
    for nid, node_id in enumerate(["A1", "A2", "A3"], start=1):
        conn.execute("INSERT INTO nodes (nid, id, label) VALUES (?, ?, 'Account')", (nid, node_id))
    conn.executemany(
        "INSERT INTO rel_transferred (src, dst, key, count, total_amount, first_ts, last_ts, "
        "_source) VALUES (?, ?, '', ?, ?, ?, ?, 'transactions')",
        [
            (1, 2, 2, 150.0, "2026-01-01T09:00:00", "2026-01-02T10:00:00"),
            (2, 3, 1, 10.0, "2026-01-03T08:00:00", "2026-01-03T08:00:00"),
            (3, 1, 1, 7.0, None, None),
        ],
    )
    conn.execute(
        "INSERT INTO columnar_segments (name, col, segment, version, rows, body) "
        "VALUES ('edges:TRANSFERRED', 'src', 0, 0, 3, x'00')"
    )
    conn.close()


def test_a_schema_5_store_keeps_its_transfers(tmp_path: Path) -> None:
    db = tmp_path / "kg.db"
    _schema_5_file(db)
    store = SQLiteStore(db)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.count_edges(RelType.TRANSFERRED) == 3
    [edge] = store.neighbours("A1", RelType.TRANSFERRED, Direction.OUT)
    assert (edge.dst, edge.props) == (
        "A2",
        {
            "count": 2,
            "total_amount": 150.0,
            "first_ts": "2026-01-01T09:00:00",
            "last_ts": "2026-01-02T10:00:00",
        },
    )
    [back] = store.neighbours("A1", RelType.TRANSFERRED, Direction.IN)
    assert (back.src, back.props) == ("A3", {"count": 1, "total_amount": 7.0})
    with sqlite3.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        copies = conn.execute(
            "SELECT count(*) FROM columnar_segments WHERE name = 'edges:TRANSFERRED'"
        ).fetchone()[0]
    assert "rel_transferred" not in tables
    assert copies == 0


@given(
    st.lists(
        st.tuples(st.integers(-3, 2**33), st.integers(-3, 2**33))
        | st.tuples(st.integers(0, 9), st.integers(0, 9)),
        max_size=60,
    )
)
def test_pair_order_sorts_by_major_then_minor_and_keeps_ties_in_place(
    rows: list[tuple[int, int]],
) -> None:
    major = np.array([r[0] for r in rows], np.int64)
    minor = np.array([r[1] for r in rows], np.int64)
    expected = sorted(range(len(rows)), key=lambda i: rows[i])  # Python's sort is stable
    # as one sort, and as two halves sorted on two threads (large arrays)
    for threshold in (transfers._PARALLEL_SORT, 2):
        with patch.object(transfers, "_PARALLEL_SORT", threshold):
            assert transfers.pair_order(major, minor).tolist() == expected
            unstable = transfers.pair_order(major, minor, stable=False)
            assert [rows[i] for i in unstable] == sorted(rows)
