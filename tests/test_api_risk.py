"""The risk endpoints end to end: a real uvicorn server on a free port, real HTTP requests,
over the hand-worked scenario bank (tests/risk_banks.py) ingested and reasoned."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from risk_banks import write_scenario_bank

from api.app import create_app
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.index import build_risk_index
from risk.limits import load_bank_parameters


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root: Path = tmp_path_factory.mktemp("api")
    directory = write_scenario_bank(root / "bank")
    store = SQLiteStore(root / "kg.db")
    ingest_directory(store, directory)
    materialise(store)
    params = load_bank_parameters(directory / "bank.toml", env={})
    build_risk_index(store, params)
    port = free_port()
    config = uvicorn.Config(
        create_app(store, params), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


def test_controllers_show_the_aggregated_votes(client: httpx.Client) -> None:
    body = client.get("/v1/entities/C2/controllers").json()
    p1 = next(r for r in body["relations"] if r["controller"] == "P1")
    assert p1["basis"] == "aggregated_voting" and p1["total_voting_pct"] == 55.0
    assert "through" in p1["explanation"]


def test_controlled_by_an_alias_answers_for_the_canonical_person(client: httpx.Client) -> None:
    body = client.get("/v1/entities/P1B/controlled").json()
    assert body["entity_id"] == "P1"
    assert {r["company"] for r in body["relations"]} == {"C1", "C2", "C3"}


def test_ubo_effective_share_through_cross_holdings(client: httpx.Client) -> None:
    (owner,) = client.get("/v1/entities/C4/ubo").json()["owners"]
    assert owner["person"] == "P3"
    assert owner["effective_share_pct"] == pytest.approx(100 * 0.42 / 0.94, abs=1e-4)


def test_group_members_reasons_exposure_and_limits(client: httpx.Client) -> None:
    body = client.get("/v1/entities/C2/group").json()
    assert body["group_id"] == "group:C1"
    assert [m["id"] for m in body["members"]] == ["C1", "C2", "C3", "P1", "P2"]
    assert all(m["reasons"] for m in body["members"])
    assert body["exposure"] == 18_000_000.0
    group_limit = next(x for x in body["limits"] if x["name"] == "connected_group")
    assert group_limit["utilisation"] == pytest.approx(0.9) and not group_limit["breached"]


def test_group_as_of_a_date_before_the_controlling_holding(client: httpx.Client) -> None:
    body = client.get("/v1/entities/C2/group", params={"as_of": "2024-03-01"}).json()
    assert [m["id"] for m in body["members"]] == ["C2"]
    assert body["exposure"] == 5_000_000.0


def test_guarantee_circle_of_three_companies(client: httpx.Client) -> None:
    (circle,) = client.get("/v1/entities/C7/guarantees").json()["circles"]
    assert circle["members"] == ["C6", "C7", "C8"]
    assert circle["cycles"] == [["C6", "C7", "C8"]]
    assert circle["total_amount"] == 6_000_000.0


def test_mutual_pair_is_a_circle_only_once_both_guarantees_are_in_force(
    client: httpx.Client,
) -> None:
    now = client.get("/v1/entities/C9/guarantees").json()
    assert now["circles"][0]["mutual_pairs"] == [["C10", "C9"]]
    before = client.get("/v1/entities/C9/guarantees", params={"as_of": "2024-03-01"}).json()
    assert before["circles"] == []


def test_chain_that_is_not_a_circle(client: httpx.Client) -> None:
    body = client.get("/v1/entities/C12/guarantees").json()
    assert body["circles"] == []
    (chain,) = body["chains"]
    assert chain["path"] == ["C11", "C12", "C13", "C14"]
    assert chain["total_amount"] == 600_000.0


def test_related_parties_relative_to_the_bank(client: httpx.Client) -> None:
    body = client.get("/v1/entities/P6/related-parties").json()
    assert body["relative_to"] == "BANK" and body["entity_is_related"] is True
    bank = client.get("/v1/entities/BANK/related-parties").json()
    assert {p["id"] for p in bank["related_parties"]} == {"C15", "P4", "P5", "P6"}


def test_large_exposure_report_as_json_and_csv(client: httpx.Client) -> None:
    body = client.get("/v1/reports/large-exposures").json()
    assert body["threshold"] == 2_500_000.0
    assert [r["id"] for r in body["rows"]][:2] == ["group:C1", "C1"]
    csv_text = client.get("/v1/reports/large-exposures", params={"format": "csv"}).text
    assert csv_text.splitlines()[1].startswith("group,group:C1,")


def test_origination_check_flags_the_group_limit_and_the_guarantors(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/v1/origination/check",
        json={"borrower_id": "C2", "amount": 3_000_000, "guarantor_ids": ["C1", "C7"]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["group_exposure_before"] == 18_000_000.0
    assert body["group_exposure_after"] == 21_000_000.0
    codes = [f["code"] for f in body["decision_flags"]]
    assert codes == [
        "limit_breach:connected_group",
        "guarantor_in_borrower_group",
        "guarantor_in_circle",
    ]
    assert {x["name"] for x in body["limits"] if x["breached"]} == {"connected_group"}


def test_unknown_entity_is_a_404_json_error(client: httpx.Client) -> None:
    for url in (
        "/v1/entities/NOPE/group",
        "/v1/entities/NOPE/guarantees",
        "/v1/entities/NOPE/controllers",
        "/v1/entities/NOPE/ubo",
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["code"] == "entity_not_found"


def test_unknown_guarantor_is_a_404(client: httpx.Client) -> None:
    response = client.post(
        "/v1/origination/check", json={"borrower_id": "C2", "amount": 1, "guarantor_ids": ["X"]}
    )
    assert response.status_code == 404 and response.json()["code"] == "guarantor_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"borrower_id": "C2"},
        {"borrower_id": "C2", "amount": -5},
        {"borrower_id": "", "amount": 5},
        {"borrower_id": "C2", "amount": 5, "surprise": 1},
        ["not", "an", "object"],
    ],
)
def test_malformed_check_body_is_a_422(client: httpx.Client, body: object) -> None:
    response = client.post("/v1/origination/check", json=body)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_malformed_as_of_is_a_422(client: httpx.Client) -> None:
    response = client.get("/v1/entities/C2/group", params={"as_of": "2024-13-40"})
    assert response.status_code == 422


def test_group_reasons_from_the_index_name_the_controller(client: httpx.Client) -> None:
    members = {m["id"]: m for m in client.get("/v1/entities/C2/group").json()["members"]}
    assert ("controlled_by", "P1") in {(r["kind"], r["other_id"]) for r in members["C2"]["reasons"]}
    assert ("family_controlled", "P1") in {
        (r["kind"], r["other_id"]) for r in members["C3"]["reasons"]
    }


def test_group_with_explanations_gives_the_votes_of_the_family_party(
    client: httpx.Client,
) -> None:
    body = client.get("/v1/entities/C3/group", params={"explain": "true"}).json()
    c3 = next(m for m in body["members"] if m["id"] == "C3")
    texts = " ".join(r["text"] for r in c3["reasons"])
    assert "55%" in texts and "family party" in texts


def test_group_lists_the_duplicate_customer_record_as_an_alias(client: httpx.Client) -> None:
    members = {m["id"]: m for m in client.get("/v1/entities/P1B/group").json()["members"]}
    assert members["P1"]["aliases"] == ["P1B"]
    assert members["P1"]["exposure"] == 1_000_000.0
