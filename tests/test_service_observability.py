"""Logs, metrics and readiness of the service layer."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from test_service_auth import KEYS, bank, headers, settings  # noqa: F401

from api.app import create_app
from api.observability import ACCESS_LOGGER, JsonFormatter
from api.security import Role
from api.service import install_service_layer
from kg.sqlite_store import SQLiteStore
from risk.limits import BankParameters


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture()
def access_lines() -> Iterator[list[dict[str, Any]]]:
    handler = _Lines()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture()
def app(bank: tuple[SQLiteStore, BankParameters]) -> FastAPI:  # noqa: F811
    store, params = bank
    built = create_app(store, params)
    install_service_layer(built, settings(audit_enabled=False))
    return built


def test_one_json_line_per_request_names_the_route_not_the_path(
    app: FastAPI, access_lines: list[dict[str, Any]]
) -> None:
    with TestClient(app) as client:
        client.get("/v1/entities/C1/group", headers={**headers(Role.ANALYST), "X-Request-ID": "r1"})
    (line,) = [entry for entry in access_lines if entry.get("request_id") == "r1"]
    assert line["event"] == "request" and line["method"] == "GET"
    assert line["route"] == "/v1/entities/{entity_id}/group"
    assert line["status"] == 200 and line["duration_ms"] > 0
    assert len(line["key_id"]) == 12
    assert line["role"] == "analyst"
    assert "C1" not in json.dumps(line) and KEYS[Role.ANALYST] not in json.dumps(line)


def test_metrics_count_requests_by_route_and_status(app: FastAPI) -> None:
    with TestClient(app) as client:
        client.get("/v1/entities/C1", headers=headers(Role.ANALYST))
        client.get("/v1/entities/NOPE", headers=headers(Role.ANALYST))
        client.get("/v1/entities/C1")
        text = client.get("/metrics", headers=headers(Role.ADMIN)).text
    route = 'route="/v1/entities/{entity_id}"'
    assert f'riskgraph_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'riskgraph_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert f'riskgraph_http_requests_total{{method="GET",{route},status="401"}} 1.0' in text
    assert f'riskgraph_http_request_duration_seconds_count{{method="GET",{route}}} 3.0' in text
    assert 'riskgraph_http_denied_total{reason="unauthenticated"} 1.0' in text


def test_metrics_report_job_durations_from_the_job_records(
    bank: tuple[SQLiteStore, BankParameters],  # noqa: F811
) -> None:
    store, params = bank
    store.put_document(
        "jobs",
        "reason-test",
        {
            "job_id": "reason-test",
            "kind": "reason",
            "status": "succeeded",
            "started_at": "2025-01-01T00:00:00+00:00",
            "finished_at": "2025-01-01T00:01:30+00:00",
        },
    )
    try:
        built = create_app(store, params)
        install_service_layer(built, settings(audit_enabled=False))
        with TestClient(built) as client:
            text = client.get("/metrics", headers=headers(Role.ADMIN)).text
    finally:
        store.delete_documents("jobs", ["reason-test"])
    assert 'riskgraph_job_last_duration_seconds{kind="reason"} 90.0' in text
    assert 'riskgraph_jobs{kind="reason",status="succeeded"} 1.0' in text


def test_ready_when_the_store_answers_and_the_index_is_loaded(app: FastAPI) -> None:
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"store": "ok", "risk_index": "loaded", "audit": "disabled"},
    }


def test_not_ready_before_a_stored_index_is_loaded(
    bank: tuple[SQLiteStore, BankParameters],  # noqa: F811
) -> None:
    store, params = bank
    built = create_app(store, params, preload_index=False)
    install_service_layer(built, settings(audit_enabled=False))
    with TestClient(built) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["risk_index"] == "stored, not loaded yet"
