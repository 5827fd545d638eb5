"""Authentication, roles and limits of the service layer, over the scenario bank.

The auth matrix runs every route of the policy table × {no key, each wrong role, each right
role} against an app with every router of api/routers (the ones `create_app` includes now,
and the ones still being wired).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from risk_banks import write_scenario_bank
from starlette.routing import BaseRoute

import api.routers
from api.app import create_app
from api.jobs import JobRunner
from api.security import (
    PUBLIC_ROUTES,
    ROUTE_POLICY,
    KeyRing,
    Role,
    generate_api_key,
    key_file_line,
)
from api.service import ServiceSettings, flat_routes, install_service_layer
from api.ui import mount_ui
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.index import build_risk_index
from risk.limits import BankParameters, load_bank_parameters

KEYS = {
    Role.ADMIN: "admin-" + "a" * 40,
    Role.ANALYST: "analyst-" + "b" * 40,
    Role.ORIGINATION: "origination-" + "c" * 40,
}
INLINE_KEYS = ",".join(f"{k}={r.value}" for r, k in KEYS.items())
CHECK = {"borrower_id": "C1", "amount": 1_000_000, "guarantor_ids": ["C6"]}


def settings(**overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {"api_keys": INLINE_KEYS, "json_logs": False}
    values.update(overrides)
    return ServiceSettings(**values)


def headers(role: Role) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, BankParameters]]:
    root = tmp_path_factory.mktemp("auth")
    directory = write_scenario_bank(root / "bank")
    store = SQLiteStore(root / "kg.db")
    ingest_directory(store, directory)
    materialise(store)
    params = load_bank_parameters(directory / "bank.toml", env={})
    build_risk_index(store, params)
    yield store, params
    store.close()


def _paths(routes: list[BaseRoute]) -> set[str]:
    return {str(r.path) for r in flat_routes(routes)}


def router_modules() -> list[APIRouter]:
    """Every `router` in api/routers but the audit one, which the service layer includes."""
    found = []
    for info in pkgutil.iter_modules(api.routers.__path__):
        if info.name == "audit":
            continue
        module = importlib.import_module(f"api.routers.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def full_app(store: SQLiteStore, params: BankParameters, service: ServiceSettings) -> FastAPI:
    """`create_app` plus the routers and UI it does not include yet, then the layer."""
    app = create_app(store, params)
    for router in router_modules():
        if not _paths(list(router.routes)) & _paths(app.router.routes):
            app.include_router(router)
    if "/" not in _paths(app.router.routes):
        mount_ui(app)
    app.state.jobs = JobRunner(store)
    install_service_layer(app, service)
    return app


@pytest.fixture(scope="module")
def client(bank: tuple[SQLiteStore, BankParameters]) -> Iterator[TestClient]:
    store, params = bank
    app = full_app(store, params, settings(rate_limit_per_second=10_000, rate_limit_burst=10_000))
    with TestClient(app) as test_client:
        yield test_client
    app.state.jobs.shutdown()


# --- the policy table ----------------------------------------------------------------------
def _methods(route: Any) -> set[str]:
    methods = getattr(route, "methods", None)
    return {m for m in methods if m != "HEAD"} if methods else {"GET"}


def test_every_route_of_the_real_app_is_in_the_policy(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    app = create_app(store, params)
    install_service_layer(app, settings(audit_enabled=False))
    missing = [
        (m, r.path)
        for r in flat_routes(app.router.routes)
        for m in _methods(r)
        if (m, r.path) not in ROUTE_POLICY and (m, r.path) not in PUBLIC_ROUTES
    ]
    assert missing == []


def test_every_route_of_every_router_module_is_in_the_policy() -> None:
    missing = [
        (m, r.path)
        for router in router_modules()
        for r in router.routes
        for m in _methods(r)
        if (m, r.path) not in ROUTE_POLICY
    ]
    assert missing == []


def test_every_policy_entry_names_a_route_that_exists(client: TestClient) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    known = {(m, r.path) for r in flat_routes(app.router.routes) for m in _methods(r)}
    assert set(ROUTE_POLICY) - known == set()


def test_a_route_missing_from_the_policy_is_denied_to_every_role(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    app = create_app(store, params)

    @app.get("/v1/unlisted")
    def unlisted() -> dict[str, str]:
        return {"secret": "data"}

    install_service_layer(app, settings(audit_enabled=False))
    with TestClient(app) as test_client:
        for role in Role:
            response = test_client.get("/v1/unlisted", headers=headers(role))
            assert response.status_code == 403
            assert response.json()["code"] == "route_not_in_policy"


# --- the auth matrix -----------------------------------------------------------------------
def _request(client: TestClient, method: str, template: str, key: dict[str, str]) -> Any:
    path = template.format(entity_id="C1", ring_id="ring-unknown", job_id="job-unknown")
    body: dict[str, Any] | None = None
    if template == "/v1/origination/check":
        body = CHECK
    elif template == "/v1/jobs/ingest":
        body = {"directory": "no-such-directory"}
    return client.request(method, path, headers=key, json=body)


POLICY = sorted(ROUTE_POLICY.items())
POLICY_IDS = [f"{m} {t}" for (m, t), _ in POLICY]


@pytest.mark.parametrize(("route", "roles"), POLICY, ids=POLICY_IDS)
def test_no_key_is_refused_with_401(
    client: TestClient, route: tuple[str, str], roles: frozenset[Role]
) -> None:
    response = _request(client, *route, {})
    assert response.status_code == 401
    assert response.json() == {
        "code": "unauthenticated",
        "message": "an API key is needed (X-API-Key header)",
        "details": None,
    }


@pytest.mark.parametrize(("route", "roles"), POLICY, ids=POLICY_IDS)
def test_a_wrong_role_is_refused_with_403(
    client: TestClient, route: tuple[str, str], roles: frozenset[Role]
) -> None:
    for role in set(Role) - roles:
        response = _request(client, *route, headers(role))
        assert response.status_code == 403, role
        assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(("route", "roles"), POLICY, ids=POLICY_IDS)
def test_a_right_role_reaches_the_endpoint(
    client: TestClient, route: tuple[str, str], roles: frozenset[Role]
) -> None:
    for role in roles:
        response = _request(client, *route, headers(role))
        assert response.status_code not in (401, 403, 429, 500), (role, response.text)


def test_origination_officers_check_and_look_up_but_read_nothing_else(client: TestClient) -> None:
    key = headers(Role.ORIGINATION)
    assert client.post("/v1/origination/check", json=CHECK, headers=key).status_code == 200
    assert client.get("/v1/entities/C1", headers=key).status_code == 200
    assert client.get("/v1/entities/C1/group", headers=key).status_code == 403
    assert client.get("/v1/search", params={"q": "公司"}, headers=key).status_code == 403


def test_public_routes_need_no_key(client: TestClient) -> None:
    for path in ("/health", "/ready", "/", "/openapi.json", "/docs"):
        assert client.get(path).status_code in (200, 503), path


# --- keys ----------------------------------------------------------------------------------
def test_a_bearer_token_authenticates_like_the_header(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {KEYS[Role.ANALYST]}"}
    assert client.get("/v1/entities/C1/group", headers=bearer).status_code == 200


def test_an_unknown_key_is_401_and_not_echoed(client: TestClient) -> None:
    response = client.get("/v1/entities/C1", headers={"X-API-Key": "guess-" + "z" * 40})
    assert response.status_code == 401
    assert "guess-" not in response.text


def test_an_unknown_path_with_a_key_is_a_json_404(client: TestClient) -> None:
    response = client.get("/v1/no-such-thing", headers=headers(Role.ANALYST))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_settings_keep_only_hashes_of_inline_keys() -> None:
    held = settings().api_keys
    assert held is not None
    text = held.get_secret_value()
    assert all(k not in text for k in KEYS.values())
    digest = hashlib.sha256(KEYS[Role.ADMIN].encode()).hexdigest()
    assert f"sha256:{digest}=admin" in text


def test_a_keys_file_of_hashes_authenticates(
    bank: tuple[SQLiteStore, BankParameters], tmp_path: Path
) -> None:
    key = generate_api_key()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# analysts\n{key_file_line(key, Role.ANALYST)}\n")
    store, params = bank
    app = create_app(store, params)
    install_service_layer(
        app, ServiceSettings(api_keys_file=keys_file, audit_enabled=False, json_logs=False)
    )
    with TestClient(app) as test_client:
        assert test_client.get("/v1/search?q=C1", headers={"X-API-Key": key}).status_code == 200
        assert (
            test_client.get("/v1/search?q=C1", headers={"X-API-Key": key[:-1]}).status_code == 401
        )


def test_key_ring_finds_the_role_of_a_key_by_its_hash() -> None:
    key = generate_api_key()
    ring = KeyRing({hashlib.sha256(key.encode()).hexdigest(): Role.ADMIN})
    principal = ring.authenticate(key)
    assert principal is not None and principal.role is Role.ADMIN
    assert principal.key_id == hashlib.sha256(key.encode()).hexdigest()[:12]
    assert ring.authenticate(key + "x") is None


def test_production_refuses_to_start_without_keys() -> None:
    with pytest.raises(ValidationError, match="production mode needs API keys"):
        ServiceSettings(mode="production")


def test_production_refuses_the_demo_key_without_printing_it() -> None:
    demo = generate_api_key(demo=True)
    with pytest.raises(ValidationError, match="demo key") as raised:
        ServiceSettings(mode="production", api_keys=f"{demo}=admin")
    assert demo not in str(raised.value)


def test_production_refuses_short_keys_and_a_disabled_audit() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        ServiceSettings(mode="production", api_keys="short-key=admin")
    with pytest.raises(ValidationError, match="audit trail on"):
        ServiceSettings(mode="production", api_keys=INLINE_KEYS, audit_enabled=False)


def test_production_starts_with_a_keys_file_of_hashes(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(key_file_line(generate_api_key(), Role.ADMIN) + "\n")
    loaded = ServiceSettings(mode="production", api_keys_file=keys_file)
    assert list(loaded.key_hashes().values()) == [Role.ADMIN]


def test_an_unknown_role_in_the_keys_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown role 'root'"):
        ServiceSettings(api_keys="k" * 40 + "=root")


# --- limits --------------------------------------------------------------------------------
def _small_app(bank: tuple[SQLiteStore, BankParameters], **overrides: Any) -> FastAPI:
    store, params = bank
    app = create_app(store, params)
    install_service_layer(app, settings(audit_enabled=False, **overrides))
    return app


def test_a_key_over_its_rate_is_told_when_to_retry(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    app = _small_app(bank, rate_limit_per_second=0.5, rate_limit_burst=2)
    with TestClient(app) as test_client:
        statuses = [
            test_client.get("/v1/entities/C1", headers=headers(Role.ANALYST)).status_code
            for _ in range(3)
        ]
        limited = test_client.get("/v1/entities/C1", headers=headers(Role.ANALYST))
        other_key = test_client.get("/v1/entities/C1", headers=headers(Role.ADMIN))
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert other_key.status_code == 200


def test_a_body_over_the_limit_is_refused_with_413(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    app = _small_app(bank, max_body_bytes=1024)
    big = {**CHECK, "guarantor_ids": ["C" + "9" * 50] * 40}
    with TestClient(app) as test_client:
        sized = test_client.post("/v1/origination/check", json=big, headers=headers(Role.ADMIN))

        def chunks() -> Iterator[bytes]:
            yield b'{"borrower_id": "C1", "amount": 1, "guarantor_ids": ['
            for _ in range(100):
                yield b'"C99999999999999999999",'
            yield b'"C6"]}'

        chunked = test_client.post(
            "/v1/origination/check",
            content=chunks(),
            headers={**headers(Role.ADMIN), "content-type": "application/json"},
        )
    assert sized.status_code == 413 and sized.json()["code"] == "body_too_large"
    assert chunked.status_code == 413


def test_a_slow_request_times_out_with_a_json_503(
    bank: tuple[SQLiteStore, BankParameters], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, params = bank
    app = create_app(store, params)

    @app.get("/v1/test-slow-sync")
    def slow_sync() -> dict[str, str]:
        time.sleep(1.5)
        return {"late": "yes"}

    @app.get("/v1/test-slow-async")
    async def slow_async() -> dict[str, str]:
        await asyncio.sleep(1.5)
        return {"late": "yes"}

    for path in ("/v1/test-slow-sync", "/v1/test-slow-async"):
        monkeypatch.setitem(ROUTE_POLICY, ("GET", path), frozenset({Role.ADMIN}))
    install_service_layer(app, settings(audit_enabled=False, request_timeout_seconds=0.2))
    with TestClient(app) as test_client:
        for path in ("/v1/test-slow-sync", "/v1/test-slow-async"):
            started = time.perf_counter()
            response = test_client.get(path, headers=headers(Role.ADMIN))
            assert time.perf_counter() - started < 1.2
            assert response.status_code == 503
            assert response.json()["code"] == "request_timeout"


def test_an_unexpected_error_is_json_without_a_traceback(
    bank: tuple[SQLiteStore, BankParameters], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, params = bank
    app = create_app(store, params)

    @app.get("/v1/test-broken")
    def broken() -> dict[str, str]:
        raise RuntimeError("secret internals")

    monkeypatch.setitem(ROUTE_POLICY, ("GET", "/v1/test-broken"), frozenset({Role.ADMIN}))
    install_service_layer(app, settings(audit_enabled=False))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/v1/test-broken", headers=headers(Role.ADMIN))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_a_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "abc-123"})
    made = client.get("/health", headers={"X-Request-ID": "bad id\n"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


# --- OWASP API basics seen from the OpenAPI document -----------------------------------------
def test_every_request_body_refuses_unknown_fields(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    open_bodies = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media["schema"].get("$ref", "")
                body = schemas[ref.rsplit("/", 1)[-1]] if ref else media["schema"]
                if body.get("additionalProperties") is not False:
                    open_bodies.append(f"{method.upper()} {path}")
    assert open_bodies == []


def test_the_openapi_document_names_the_key_and_the_error_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    check = spec["paths"]["/v1/origination/check"]["post"]
    assert check["x-roles"] == ["admin", "origination"]
    for status in ("401", "403", "413", "429", "503"):
        schema = check["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorPublic"}
    assert spec["paths"]["/health"]["get"]["security"] == []
