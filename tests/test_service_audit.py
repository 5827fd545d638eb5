"""The audit trail: what is recorded, the hash chain, tampering found, and no decision served
without its record."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from risk_banks import write_scenario_bank
from typer.testing import CliRunner

from api.app import create_app
from api.audit import GENESIS_HASH, AuditLog, chain_hash, verify_audit
from api.security import Role
from api.service import ServiceSettings, audit_cli, install_service_layer
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
CHECK = {"borrower_id": "C1", "amount": 5_000_000, "guarantor_ids": ["C6"]}


def key_id(role: Role) -> str:
    return hashlib.sha256(KEYS[role].encode()).hexdigest()[:12]


def headers(role: Role) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, BankParameters]]:
    root = tmp_path_factory.mktemp("audit")
    directory = write_scenario_bank(root / "bank")
    store = SQLiteStore(root / "kg.db")
    ingest_directory(store, directory)
    materialise(store)
    params = load_bank_parameters(directory / "bank.toml", env={})
    build_risk_index(store, params)
    store.close()
    yield root / "kg.db", params


@pytest.fixture()
def store(bank: tuple[Path, BankParameters], tmp_path: Path) -> Iterator[SQLiteStore]:
    """A copy of the bank's store per test, so each test has its own audit file."""
    db = tmp_path / "kg.db"
    with sqlite3.connect(bank[0]) as source, sqlite3.connect(db) as target:
        source.backup(target)
    copy = SQLiteStore(db)
    yield copy
    copy.close()


def build(store: SQLiteStore, params: BankParameters, **overrides: Any) -> FastAPI:
    app = create_app(store, params)
    values: dict[str, Any] = {
        "api_keys": ",".join(f"{k}={r.value}" for r, k in KEYS.items()),
        "json_logs": False,
        "audit_synchronous": "NORMAL",
    }
    install_service_layer(app, ServiceSettings(**(values | overrides)))
    return app


def audit_file(store: SQLiteStore) -> Path:
    return Path(store.path + ".audit.sqlite")


def records(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        return [json.loads(t) for (t,) in conn.execute("SELECT record FROM audit ORDER BY seq")]


@pytest.fixture()
def audited(
    store: SQLiteStore, bank: tuple[Path, BankParameters]
) -> tuple[Path, list[dict[str, Any]], list[Any]]:
    """Three requests through the app, then the audit file (writer stopped)."""
    with TestClient(build(store, bank[1])) as client:
        responses = [
            client.post("/v1/origination/check", json=CHECK, headers=headers(Role.ORIGINATION)),
            client.get("/v1/entities/C2/group", headers=headers(Role.ANALYST)),
            client.get(
                "/v1/search", params={"q": "公司", "limit": 5}, headers=headers(Role.ANALYST)
            ),
        ]
    path = audit_file(store)
    return path, records(path), responses


# --- what is recorded ----------------------------------------------------------------------
def test_an_origination_check_is_recorded_with_its_reason_codes(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    _, trail, responses = audited
    check = trail[0]
    assert check["route"] == "/v1/origination/check" and check["method"] == "POST"
    assert check["key_id"] == key_id(Role.ORIGINATION) and check["role"] == "origination"
    assert check["body"] == CHECK
    assert check["status"] == 200
    assert check["response_sha256"] == hashlib.sha256(responses[0].content).hexdigest()
    codes = [f["code"] for f in responses[0].json()["decision_flags"]]
    assert codes and check["reason_codes"] == codes
    assert set(check["versions"]) == {"riskgraph", "rules_sha256"}


def test_an_analyst_query_is_recorded_with_its_parameters(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    _, trail, responses = audited
    group, search = trail[1], trail[2]
    assert group["route"] == "/v1/entities/{entity_id}/group"
    assert group["path_params"] == {"entity_id": "C2"}
    assert group["response_sha256"] == hashlib.sha256(responses[1].content).hexdigest()
    assert search["query"] == [["q", "公司"], ["limit", "5"]]
    assert search["reason_codes"] is None


def test_a_record_names_the_key_by_its_id_never_the_key(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    path, _, _ = audited
    raw = path.read_bytes()
    assert all(k.encode() not in raw for k in KEYS.values())


def test_each_record_carries_the_previous_records_hash(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    path, trail, _ = audited
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT record, hash FROM audit ORDER BY seq").fetchall()
    previous = GENESIS_HASH
    for (text, digest), record in zip(rows, trail, strict=True):
        assert record["prev_hash"] == previous
        assert digest == hashlib.sha256(f"{previous}\n{text}".encode()).hexdigest()
        previous = digest
    assert [r["seq"] for r in trail] == [1, 2, 3]


# --- tamper evidence -----------------------------------------------------------------------
def _tamper(path: Path, *statements: str) -> None:
    """What someone with write access to the file could do: drop the guards, then edit."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute("DROP TRIGGER audit_append_only_delete")
        for statement in statements:
            conn.execute(statement)


def test_an_untouched_trail_verifies(audited: tuple[Path, list[dict[str, Any]], list[Any]]) -> None:
    result = verify_audit(audited[0])
    assert result.ok and result.records == 3 and result.head_seq == 3


def test_a_modified_record_is_found(audited: tuple[Path, list[dict[str, Any]], list[Any]]) -> None:
    path = audited[0]
    _tamper(path, "UPDATE audit SET record = replace(record, '5000000', '500000') WHERE seq = 1")
    result = verify_audit(path)
    assert not result.ok
    assert any("record 1" in p and "modified" in p for p in result.problems)


def test_a_deleted_record_is_found(audited: tuple[Path, list[dict[str, Any]], list[Any]]) -> None:
    path = audited[0]
    _tamper(path, "DELETE FROM audit WHERE seq = 2")
    result = verify_audit(path)
    assert not result.ok
    assert any("record 3" in p and "gap" in p for p in result.problems)


def test_reordered_records_are_found(audited: tuple[Path, list[dict[str, Any]], list[Any]]) -> None:
    path = audited[0]
    _tamper(
        path,
        "UPDATE audit SET seq = -1 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = -1",
    )
    result = verify_audit(path)
    assert not result.ok
    assert any("carries sequence 3" in p for p in result.problems)


def test_a_cut_off_end_is_found_against_a_logged_head(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    path = audited[0]
    head = verify_audit(path)
    _tamper(path, "DELETE FROM audit WHERE seq = 3")
    assert verify_audit(path).ok  # a shorter chain is still a chain …
    result = verify_audit(path, (head.head_seq, head.head_hash))
    assert not result.ok  # … but not the one whose head was logged
    assert any("removed from the end" in p for p in result.problems)


def test_the_file_refuses_updates_and_deletes(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    with sqlite3.connect(audited[0]) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM audit WHERE seq = 1")


def test_cli_verify_exits_1_on_a_tampered_trail(
    audited: tuple[Path, list[dict[str, Any]], list[Any]],
) -> None:
    path = audited[0]
    runner = CliRunner()
    ok = runner.invoke(audit_cli, ["verify", "--audit-db", str(path)])
    assert ok.exit_code == 0 and "ok: 3 records" in ok.output
    _tamper(path, "UPDATE audit SET record = replace(record, 'C2', 'C3') WHERE seq = 2")
    bad = runner.invoke(audit_cli, ["verify", "--audit-db", str(path)])
    assert bad.exit_code == 1


def test_the_chain_continues_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "a.audit.sqlite"
    for n in range(2):
        log = AuditLog(path, synchronous="NORMAL")
        assert log.reserve_nowait()
        log.submit({"n": n})
        log.close()
    result = verify_audit(path)
    assert result.ok and result.records == 2
    first, second = records(path)
    with sqlite3.connect(path) as conn:
        (first_hash,) = conn.execute("SELECT hash FROM audit WHERE seq = 1").fetchone()
    assert second["prev_hash"] == first_hash
    text = json.dumps(first, sort_keys=True, separators=(",", ":"))
    assert first_hash == chain_hash(GENESIS_HASH, text)


# --- the admin endpoint --------------------------------------------------------------------
def test_admins_page_through_the_trail(
    store: SQLiteStore, bank: tuple[Path, BankParameters]
) -> None:
    with TestClient(build(store, bank[1])) as client:
        for _ in range(3):
            client.get("/v1/entities/C1", headers=headers(Role.ANALYST))
        app: FastAPI = client.app  # type: ignore[assignment]
        assert app.state.audit_log.flush()  # the reads below see every record
        first = client.get("/v1/audit", params={"limit": 2}, headers=headers(Role.ADMIN)).json()
        rest = client.get(
            "/v1/audit", params={"since": first["next_since"]}, headers=headers(Role.ADMIN)
        ).json()
    assert [r["seq"] for r in first["records"]] == [1, 2] and first["next_since"] == 2
    # record 4, when written by now, is the admin's own first read of the trail
    assert [r["route"] for r in rest["records"]][:2] in (
        ["/v1/entities/{entity_id}"],
        ["/v1/entities/{entity_id}", "/v1/audit"],
    )
    assert rest["records"][0]["seq"] == 3 and rest["next_since"] is None


# --- never unaudited ------------------------------------------------------------------------
def test_a_full_queue_fails_the_request_with_503(
    store: SQLiteStore, bank: tuple[Path, BankParameters]
) -> None:
    app = build(store, bank[1], audit_queue_size=1, audit_wait_seconds=0.2)
    path = audit_file(store)
    with TestClient(app) as client:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer cannot commit: its slot stays taken
        try:
            first = client.get("/v1/entities/C1", headers=headers(Role.ANALYST))
            second = client.get("/v1/entities/C1", headers=headers(Role.ANALYST))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert first.status_code == 200
    assert second.status_code == 503 and second.json()["code"] == "audit_unavailable"
    assert second.headers["retry-after"] == "1"
    assert len(records(path)) == 1


def test_a_decision_is_not_served_when_its_record_cannot_be_written(
    store: SQLiteStore, bank: tuple[Path, BankParameters]
) -> None:
    app = build(store, bank[1])
    with TestClient(app) as client:
        log: AuditLog = app.state.audit_log
        # The audit file is full: no page may be added (what a full disk does to SQLite).
        pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
        log._conn.execute(f"PRAGMA max_page_count = {pages}")
        refused = client.post(
            "/v1/origination/check",
            json=CHECK,
            # a record larger than a page: it needs a page the file cannot get
            params={"note": "x" * 20_000},
            headers=headers(Role.ORIGINATION),
        )
        ready = client.get("/ready")
    assert refused.status_code == 503
    assert refused.json()["code"] == "audit_unavailable"
    assert "decision_flags" not in refused.text
    assert ready.status_code == 503 and ready.json()["checks"]["audit"].startswith("failing")


def test_concurrent_requests_make_one_unbroken_chain(
    store: SQLiteStore, bank: tuple[Path, BankParameters]
) -> None:
    app = build(store, bank[1])
    with TestClient(app) as client:

        def hammer() -> None:
            for _ in range(20):
                client.post("/v1/origination/check", json=CHECK, headers=headers(Role.ADMIN))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify_audit(audit_file(store))
    assert result.ok and result.records == 80
