"""Jobs run in the background and leave a record; explain answers down to source rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import get_settings
from kg.sqlite_store import SQLiteStore
from risk.limits import BankParameters

PERSONS = "person_id,name\nP1,张伟\nP2,王芳\n"
COMPANIES = "company_id,name\nC1,杭州甲公司\nC2,宁波乙公司\n"
# P1 holds 60% of C1, which holds 70% of C2: P1 controls C2 through C1.
HOLDINGS = "holder_id,company_id,share_pct\nP1,C1,60\nC1,C2,70\nP2,C2,30\n"


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    data = tmp_path / "data" / "bank"
    data.mkdir(parents=True)
    (data / "persons.csv").write_text(PERSONS, encoding="utf-8")
    (data / "companies.csv").write_text(COMPANIES, encoding="utf-8")
    (data / "shareholdings.csv").write_text(HOLDINGS, encoding="utf-8")
    monkeypatch.setenv("RISKGRAPH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("RISKGRAPH_DB", str(tmp_path / "kg.db"))
    get_settings.cache_clear()
    store = SQLiteStore(tmp_path / "kg.db")
    params = BankParameters(tier1_capital=1e9, net_capital=1.2e9)
    with TestClient(create_app(store, params, preload_index=False)) as test_client:
        yield test_client
    get_settings.cache_clear()
    store.close()


def wait_for(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record: dict[str, Any] = client.get(f"/v1/jobs/{job['job_id']}").json()
        if record["status"] in ("succeeded", "failed"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"job {job['job_id']} did not finish")


def test_ingest_then_reason_jobs_make_control_explainable(client: TestClient) -> None:
    started = client.post("/v1/jobs/ingest", json={"directory": "bank"})
    assert started.status_code == 202
    ingest = wait_for(client, started.json())
    assert ingest["status"] == "succeeded", ingest
    assert ingest["result"]["rows"] == 7

    reason = wait_for(client, client.post("/v1/jobs/reason").json())
    assert reason["status"] == "succeeded", reason

    response = client.get(
        "/v1/explain", params={"subject": "P1", "predicate": "controls", "object": "C2"}
    )
    assert response.status_code == 200
    tree = response.json()
    sources = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("source"):
            sources.add((node["source"]["file"], node["source"]["line"]))
        stack.extend(node["premises"])
    # P1's 60% of C1 (line 2) and C1's 70% of C2 (line 3) are what the derivation rests on.
    assert {("shareholdings.csv", 2), ("shareholdings.csv", 3)} <= sources


def test_an_ingest_job_cannot_read_outside_the_data_root(client: TestClient) -> None:
    response = client.post("/v1/jobs/ingest", json={"directory": "../../etc"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_directory"


def test_a_failed_job_reports_why(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "data" / "bank" / "shareholdings.csv").write_text(
        "holder_id\nP1\n", encoding="utf-8"
    )
    record = wait_for(client, client.post("/v1/jobs/ingest", json={"directory": "bank"}).json())
    assert record["status"] == "failed"
    assert "share_pct" in record["error"]["message"]


def test_unknown_job_and_unknown_fact_are_404(client: TestClient) -> None:
    assert client.get("/v1/jobs/nope").json()["code"] == "job_not_found"
    wait_for(client, client.post("/v1/jobs/ingest", json={"directory": "bank"}).json())
    missing = client.get(
        "/v1/explain", params={"subject": "P2", "predicate": "controls", "object": "C1"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "inferred_fact_not_found")
    unknown = client.get(
        "/v1/explain", params={"subject": "X9", "predicate": "controls", "object": "C1"}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "entity_not_found")


def test_a_ring_job_saves_its_fraud_graph_beside_the_store_it_serves(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The configured default db points elsewhere: the artefact follows the served store.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("RISKGRAPH_DB", str(elsewhere / "other.db"))
    get_settings.cache_clear()
    wait_for(client, client.post("/v1/jobs/ingest", json={"directory": "bank"}).json())
    record = wait_for(client, client.post("/v1/jobs/rings").json())
    assert record["status"] == "succeeded", record["error"]
    assert len(list(tmp_path.glob("fraud-graph-*.npz"))) == 1
    assert not list(elsewhere.iterdir())
