"""Shared fixtures: the `store` fixture runs every conformance test on each store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore

if (Path(__file__).parent / "neo4j_server.py").exists():
    pytest_plugins = ["neo4j_server"]


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each kind: a fresh SQLite file, and the shared Neo4j server wiped."""
    if request.param == "sqlite":
        sqlite_store = SQLiteStore(tmp_path / "kg.db")
        yield sqlite_store
        sqlite_store.close()
        return
    uri = request.getfixturevalue("neo4j_uri")
    from kg.neo4j_store import Neo4jStore

    neo4j_store = Neo4jStore(
        uri,
        os.environ.get("RISKGRAPH_NEO4J_USER", "neo4j"),
        os.environ.get("RISKGRAPH_NEO4J_PASSWORD", ""),
    )
    neo4j_store.wipe()
    yield neo4j_store
    neo4j_store.wipe()
    neo4j_store.close()
