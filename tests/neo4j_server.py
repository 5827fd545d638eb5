"""Pytest plugin: one real Neo4j server for the whole test session (`neo4j_uri` fixture).

The server is built from Maven Central artefacts and runs in-process in a JVM, so it needs
`java` and `mvn` on PATH; without them the Neo4j tests are skipped, and with them a server
that does not start fails the tests instead of hiding behind a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kg.neo4j_server import Neo4jDevServer, Neo4jServerError, missing_tools


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jDevServer]:
    """A running Neo4j server without authentication, stopped at the end of the session."""
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"the Neo4j tests need {' and '.join(missing)} on PATH: the test server is built "
            "from Maven Central artefacts and runs in a JVM"
        )
    server = Neo4jDevServer()
    try:
        server.start()
    except Neo4jServerError as error:
        pytest.fail(f"java and mvn are installed but the Neo4j test server failed:\n{error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def neo4j_uri(neo4j_server: Neo4jDevServer) -> str:
    """The Bolt URI of the session's Neo4j server (no authentication)."""
    return neo4j_server.uri
