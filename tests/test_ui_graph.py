"""The neighbourhood endpoint behind the workbench's graph view, over the hand-worked
scenario bank (tests/risk_banks.py) plus two accounts with a money flow between them and a
device two persons share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from risk_banks import write_scenario_bank

from api.app import create_app
from api.routers import graph
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.limits import load_bank_parameters

NEIGHBOURHOOD_PATH = "/v1/entities/{entity_id}/neighbourhood"


def with_graph_router(app: FastAPI) -> FastAPI:
    # Until create_app includes the router itself.
    if not any(getattr(r, "path", None) == NEIGHBOURHOOD_PATH for r in app.routes):
        app.include_router(graph.router)
    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root: Path = tmp_path_factory.mktemp("graph")
    directory = write_scenario_bank(root / "bank")
    # P3 pays P4 twice from account A1 to account A2: one money-flow hop between them.
    (directory / "accounts.csv").write_text(
        "account_id,owner_id,branch,opened_date\nA1,P3,HZ001,2020-01-01\nA2,P4,HZ001,2020-01-01\n",
        encoding="utf-8",
    )
    (directory / "transactions.csv").write_text(
        "txn_id,from_account,to_account,amount,ts,channel\n"
        "T1,A1,A2,100.00,2024-05-01T10:00:00,mobile\n"
        "T2,A1,A2,50.00,2024-05-02T10:00:00,mobile\n",
        encoding="utf-8",
    )
    # P4 and P6 log in from the same device D1.
    (directory / "devices.csv").write_text(
        "owner_id,device_id,first_seen\nP4,D1,2024-01-01\nP6,D1,2024-02-01\n", encoding="utf-8"
    )
    store = SQLiteStore(root / "kg.db")
    ingest_directory(store, directory)
    materialise(store)
    params = load_bank_parameters(directory / "bank.toml", env={})
    app = with_graph_router(create_app(store, params, preload_index=False))
    with TestClient(app) as http:
        yield http
    store.close()


def edges_of(body: dict[str, Any], edge_type: str) -> list[dict[str, Any]]:
    return [e for e in body["edges"] if e["type"] == edge_type]


def test_holdings_into_a_company_come_with_their_percentages(client: TestClient) -> None:
    body = client.get("/v1/entities/C2/neighbourhood").json()
    holdings = {(e["source"], e["properties"]["share_pct"]) for e in edges_of(body, "HOLDS_SHARES")}
    # P1's 25% was recorded under the duplicate customer number P1B: one entity, P1.
    assert holdings == {("C1", 30.0), ("P1", 25.0)}


def test_inferred_control_is_marked_inferred_with_its_rule(client: TestClient) -> None:
    body = client.get("/v1/entities/C2/neighbourhood").json()
    controls = [e for e in edges_of(body, "controls") if e["target"] == "C2"]
    assert {e["source"] for e in controls} == {"P1"}
    assert all(e["inferred"] and e["rule"] for e in controls)
    assert not any(e["inferred"] for e in edges_of(body, "HOLDS_SHARES"))


def test_loans_are_attributes_with_their_balance(client: TestClient) -> None:
    body = client.get("/v1/entities/C2/neighbourhood").json()
    loans = {n["id"]: n["properties"]["balance"] for n in body["nodes"] if n["label"] == "Loan"}
    assert loans == {"L2": 5_000_000.0}


def test_holdings_recorded_after_the_as_of_date_are_left_out(client: TestClient) -> None:
    body = client.get("/v1/entities/C2/neighbourhood", params={"as_of": "2024-03-01"}).json()
    holders = {e["source"] for e in edges_of(body, "HOLDS_SHARES")}
    assert holders == {"C1"}  # P1's holding in C2 was recorded on 2024-06-01


def test_inferred_control_follows_the_as_of_date(client: TestClient) -> None:
    body = client.get("/v1/entities/C2/neighbourhood", params={"as_of": "2024-03-01"}).json()
    # Before P1's own 25% was recorded, P1 commands only C1's 30% of C2: no control.
    assert not [e for e in edges_of(body, "controls") if e["target"] == "C2"]


def test_guarantees_not_yet_in_force_on_the_as_of_date_are_left_out(client: TestClient) -> None:
    body = client.get("/v1/entities/C9/neighbourhood", params={"as_of": "2024-03-01"}).json()
    guarantees = {e["key"] for e in edges_of(body, "GUARANTEES")}
    assert guarantees == {"G4"}  # G5 (C10 → C9) starts on 2024-07-01


def test_a_symmetric_inferred_link_is_drawn_once(client: TestClient) -> None:
    body = client.get("/v1/entities/C9/neighbourhood").json()
    mutual = edges_of(body, "mutualGuarantee")
    assert len(mutual) == 1 and mutual[0]["symmetric"]
    assert {mutual[0]["source"], mutual[0]["target"]} == {"C9", "C10"}


def test_inverse_and_super_property_links_are_hidden_unless_asked_for(
    client: TestClient,
) -> None:
    default = client.get("/v1/entities/P1/neighbourhood").json()
    everything = client.get("/v1/entities/P1/neighbourhood", params={"all_inferred": True}).json()
    assert not edges_of(default, "spouseOf")
    assert edges_of(everything, "spouseOf")


def test_a_money_flow_between_accounts_is_one_hop_between_their_owners(
    client: TestClient,
) -> None:
    body = client.get("/v1/entities/P3/neighbourhood", params={"depth": 1}).json()
    depth = {n["id"]: n["depth"] for n in body["nodes"]}
    assert depth["P4"] == 1
    (flow,) = edges_of(body, "TRANSFERRED")
    assert (flow["source"], flow["target"]) == ("A1", "A2")
    assert flow["properties"]["count"] == 2 and flow["properties"]["total_amount"] == 150.0


def test_a_shared_device_is_one_hop_between_its_users(client: TestClient) -> None:
    body = client.get("/v1/entities/P4/neighbourhood").json()
    depth = {n["id"]: n["depth"] for n in body["nodes"]}
    assert depth["P6"] == 1
    assert {(e["source"], e["target"]) for e in edges_of(body, "USES_DEVICE")} == {
        ("P4", "D1"),
        ("P6", "D1"),
    }


def test_depth_counts_party_hops_along_a_guarantee_chain(client: TestClient) -> None:
    def ids(depth: int) -> set[str]:
        body = client.get("/v1/entities/C12/neighbourhood", params={"depth": depth}).json()
        return {n["id"] for n in body["nodes"]}

    # The chain C11 → C12 → C13 → C14.
    assert ids(1) == {"C11", "C12", "C13"}
    assert ids(2) == {"C11", "C12", "C13", "C14"}


def test_an_alias_answers_for_the_canonical_entity(client: TestClient) -> None:
    body = client.get("/v1/entities/P1B/neighbourhood").json()
    assert body["entity_id"] == "P1"


def test_an_unknown_entity_is_a_404_with_a_stable_code(client: TestClient) -> None:
    response = client.get("/v1/entities/NOPE/neighbourhood")
    assert response.status_code == 404
    assert response.json()["code"] == "entity_not_found"
