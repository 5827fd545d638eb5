"""The ring endpoints end to end through the FastAPI test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import rings as rings_router
from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from risk.limits import BankParameters
from risk.rings.nightly import RingRun, run_ring_detection


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, RingRun]]:
    directory = tmp_path_factory.mktemp("bank")
    generate_bank(directory, customers=6000, seed=3, progress=False)
    store = SQLiteStore(directory / "kg.db")
    ingest_directory(store, directory)
    run = run_ring_detection(store, artefact_dir=directory)
    app = create_app(
        store, BankParameters(tier1_capital=1e9, net_capital=1.2e9), preload_index=False
    )
    app.include_router(rings_router.router)
    with TestClient(app) as client:
        yield client, run
    store.close()


def test_list_rings_returns_the_latest_run_ranked_by_score(
    served: tuple[TestClient, RingRun],
) -> None:
    client, run = served
    body = client.get("/v1/rings").json()
    assert body["run_id"] == run.run_id
    scores = [r["score"] for r in body["rings"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(run.rings)


def test_list_rings_filters_by_region_and_min_score(served: tuple[TestClient, RingRun]) -> None:
    client, run = served
    region = run.rings[0]["region"]
    by_region = client.get("/v1/rings", params={"region": region}).json()["rings"]
    assert by_region and all(r["region"] == region for r in by_region)
    assert client.get("/v1/rings", params={"min_score": 1.0}).json()["rings"] == [
        r for r in client.get("/v1/rings").json()["rings"] if r["score"] >= 1.0
    ]


def test_ring_detail_has_members_evidence_and_history(served: tuple[TestClient, RingRun]) -> None:
    client, run = served
    ring_id = run.rings[0]["ring_id"]
    body = client.get(f"/v1/rings/{ring_id}").json()
    assert body["members"] == run.rings[0]["members"]
    assert body["evidence"]["shared_identifiers"]
    assert [h["run_id"] for h in body["history"]] == [run.run_id]


def test_entity_ring_clusters_around_a_ring_member(served: tuple[TestClient, RingRun]) -> None:
    client, run = served
    ring = run.rings[0]
    member = ring["members"][0]
    body = client.get(f"/v1/entities/{member}/ring").json()
    assert body["entity_id"] == member
    assert member in body["ring_members"]
    assert body["flagged"]
    assert ring["ring_id"] in body["current_rings"]
    overlap = set(body["ring_members"]) & set(ring["members"])
    assert len(overlap) >= len(ring["members"]) // 2


def test_alerts_list_one_new_ring_alert_per_ring(served: tuple[TestClient, RingRun]) -> None:
    client, run = served
    alerts = client.get("/v1/alerts").json()
    assert {a["ring_id"] for a in alerts} == {r["ring_id"] for r in run.rings}
    assert {a["kind"] for a in alerts} == {"ring_new"}


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/rings/ring-unknown", "ring_not_found"),
        ("/v1/entities/P99999999/ring", "entity_not_found"),
        ("/v1/rings?run=no-such-run", "ring_run_not_found"),
    ],
)
def test_unknown_ids_give_404(served: tuple[TestClient, RingRun], path: str, code: str) -> None:
    client, _ = served
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == code
