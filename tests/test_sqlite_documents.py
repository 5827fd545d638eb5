"""Documents in the embedded store: a large document must not slow the lookup of a small one.

Before schema 3 the documents table was clustered on (collection, key) WITHOUT ROWID, and
SQLite compares index keys on whole records: every lookup whose search passed the risk index
document (hundreds of megabytes at 1M customers) read all of its overflow pages. That showed
as half-second stalls every few seconds in the API, whose risk-index holder looks at a small
"meta" document beside the big one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kg import sql
from kg.sqlite_store import SQLiteStore


def _schema_1_file(path: Path, documents: dict[tuple[str, str], str]) -> None:
    """A store file as riskgraph wrote it at schema 1, holding the given documents."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sql.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.executemany(
        "INSERT INTO documents (collection, key, body) VALUES (?, ?, ?)",
        [(c, k, body) for (c, k), body in documents.items()],
    )
    conn.close()


def test_schema_1_documents_survive_the_move_to_a_rowid_table(tmp_path: Path) -> None:
    big = "x" * 3_000_000  # spans ~750 overflow pages of 4 KiB
    documents = {
        ("risk_index", "current"): '{"body": "' + big + '"}',
        ("risk_index", "meta"): '{"built_at": "2026-11-30T00:00:00Z"}',
        ("bank", "parameters"): '{"net_capital": 1000}',
    }
    _schema_1_file(tmp_path / "old.db", documents)
    store = SQLiteStore(tmp_path / "old.db")
    assert store.get_document("risk_index", "meta") == {"built_at": "2026-11-30T00:00:00Z"}
    assert store.get_document("risk_index", "current") == {"body": big}
    assert store.get_document("bank", "parameters") == {"net_capital": 1000}
    assert [k for k, _ in store.list_documents("risk_index")] == ["current", "meta"]
    # upserts still replace by (collection, key)
    store.put_document("risk_index", "meta", {"built_at": "later"})
    assert store.get_document("risk_index", "meta") == {"built_at": "later"}
    assert len(store.list_documents("risk_index")) == 2
    store.close()
    conn = sqlite3.connect(tmp_path / "old.db")
    (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'documents'").fetchone()
    conn.close()
    assert "WITHOUT ROWID" not in ddl.upper()


def test_looking_up_a_small_document_does_not_read_a_large_neighbour(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.put_document("risk_index", "current", {"body": "y" * 8_000_000})
    store.put_document("risk_index", "meta", {"built_at": "t"})
    store.close()
    # Count the bytes SQLite asks the kernel for while it answers the small lookup, on a
    # fresh connection (cold page cache).
    conn = sqlite3.connect(tmp_path / "kg.db")
    conn.execute("SELECT 1 FROM meta").fetchone()  # parse the schema first
    before = _read_bytes()
    row = conn.execute(sql.DOC_GET, ("risk_index", "meta")).fetchone()
    read = _read_bytes() - before
    conn.close()
    assert row == ('{"built_at": "t"}',)
    # the 8 MB neighbour is not read: a handful of 4 KiB pages at most
    assert read < 256 * 1024, read


def _read_bytes() -> int:
    """Bytes this process has asked the kernel to read (`rchar` of /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")
