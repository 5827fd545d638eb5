"""The app as served (`riskgraph serve`) is the resource API inside the service layer."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_secured_app
from api.service import ServiceSettings
from kg.sqlite_store import SQLiteStore
from risk.limits import BankParameters


def test_the_served_app_requires_a_key_with_the_right_role(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    service = ServiceSettings(
        api_keys=SecretStr(
            "analyst-key-0123456789abcdef=analyst,orig-key-0123456789abcdef=origination"
        ),
        json_logs=False,
    )
    app = create_secured_app(store, BankParameters(tier1_capital=1e9, net_capital=1e9), service)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/v1/search", params={"q": "x"}).json()["code"] == "unauthenticated"
        analyst = {"X-API-Key": "analyst-key-0123456789abcdef"}
        assert client.get("/v1/search", params={"q": "x"}, headers=analyst).status_code == 200
        origination = {"X-API-Key": "orig-key-0123456789abcdef"}
        denied = client.get("/v1/search", params={"q": "x"}, headers=origination)
        assert (denied.status_code, denied.json()["code"]) == (403, "forbidden")
    store.close()
