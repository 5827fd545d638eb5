"""Open the store the settings name."""

from __future__ import annotations

from pathlib import Path

from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore


def open_store(
    kind: str = "sqlite",
    *,
    db: Path | str = "riskgraph.db",
    neo4j_uri: str = "",
    neo4j_user: str = "neo4j",
    neo4j_password: str = "",
    read_only: bool = False,
) -> GraphStore:
    """The embedded SQLite store at `db`, or a Neo4j store (driver loaded lazily)."""
    if kind == "sqlite":
        return SQLiteStore(db, read_only=read_only)
    if kind == "neo4j":
        from kg.neo4j_store import Neo4jStore

        neo4j_store: GraphStore = Neo4jStore(neo4j_uri, neo4j_user, neo4j_password)
        return neo4j_store
    raise ValueError(f"unknown store kind {kind!r}; use sqlite or neo4j")
