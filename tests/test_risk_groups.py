"""Connected-client groups, the risk index, the origination check and the large-exposure
report on the hand-worked scenario bank (tests/risk_banks.py), plus an index built from
inferred facts stated by hand."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from risk_banks import NET, TIER1, write_scenario_bank

from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.groups import connected_group, group_limit_uses
from risk.index import build_risk_index, load_risk_index
from risk.limits import BankParameters, load_bank_parameters
from risk.origination import check_origination
from risk.related import insiders
from risk.reports import large_exposure_report, write_large_exposures_csv


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, BankParameters]]:
    root: Path = tmp_path_factory.mktemp("scenario")
    directory = write_scenario_bank(root / "bank")
    db = SQLiteStore(root / "kg.db")
    ingest_directory(db, directory)
    materialise(db)
    params = load_bank_parameters(directory / "bank.toml", env={})
    build_risk_index(db, params)
    yield db, params
    db.close()


def test_group_holds_controller_family_and_controlled_companies(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, _ = bank
    group = connected_group(store, "C2")
    assert [m.id for m in group.members] == ["C1", "C2", "C3", "P1", "P2"]
    assert group.group_id == "group:C1"


def test_every_member_has_a_reason_naming_the_control_path(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, _ = bank
    members = {m.id: m for m in connected_group(store, "C1").members}
    assert all(m.reasons for m in members.values())
    c2 = {(r.kind, r.other) for r in members["C2"].reasons}
    assert ("controlled_by", "P1") in c2
    assert ("family_party", "P1") in {(r.kind, r.other) for r in members["C3"].reasons}


def test_group_exposure_sums_balances_including_the_duplicate_record(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, _ = bank
    group = connected_group(store, "P2")
    # C1 8m + C2 5m + C3 4m + P1 (loan booked to P1B) 1m
    assert group.exposure == 18_000_000.0
    assert group.guarantees_given == 400_000.0  # C3 guarantees C6
    p1 = next(m for m in group.members if m.id == "P1")
    assert p1.aliases == ["P1B"] and p1.exposure.loans == 1_000_000.0


def test_group_limit_utilisation(bank: tuple[SQLiteStore, BankParameters]) -> None:
    store, params = bank
    (use,) = group_limit_uses(connected_group(store, "C1"), params)
    assert use.name == "connected_group"
    assert use.limit == 0.2 * TIER1
    assert use.utilisation == pytest.approx(18 / 20)


def test_loan_breaching_the_group_limit_while_the_single_client_limit_holds(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    result = check_origination(index, params, "C2", 3_000_000.0, [])
    assert result.group_exposure_before == 18_000_000.0
    assert result.group_exposure_after == 21_000_000.0
    breached = {c.name for c in result.limits if c.breached}
    assert breached == {"connected_group"}  # C2 after: 8m < 15m (tier-1) and < 12m (net)
    assert [f.code for f in result.flags if f.severity == "block"] == [
        "limit_breach:connected_group"
    ]
    assert "2,000,000 CNY" in result.flags[0].message  # the headroom left


def test_guarantor_in_a_circle_with_the_borrower_is_flagged(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    result = check_origination(index, params, "C6", 100.0, ["C8"])
    codes = {f.code for f in result.flags}
    assert "guarantor_in_circle_with_borrower" in codes
    assert [c.members for c in result.circles] == [["C6", "C7", "C8"]]


def test_guarantor_controlled_by_the_borrowers_group_is_flagged(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    result = check_origination(index, params, "C3", 100.0, ["C2", "C11"])
    flagged = [f for f in result.flags if f.code == "guarantor_in_borrower_group"]
    assert [f.entities for f in flagged] == [("C2",)]
    assert "P1" in flagged[0].message


def test_related_party_borrower_gets_related_party_limits(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    result = check_origination(index, params, "C15", 13_000_000.0, [])
    breached = {c.name for c in result.limits if c.breached}
    assert "related_party" in breached  # 13m > 10% of net capital (12m)
    assert "related_party_borrower" in {f.code for f in result.flags}
    assert NET * 0.1 in {c.limit for c in result.limits}


def test_large_exposure_report_lists_clients_and_groups_above_the_threshold(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    rows = large_exposure_report(store, params)
    assert [(r.kind, r.id, r.exposure) for r in rows] == [
        ("group", "group:C1", 18_000_000.0),
        ("client", "C1", 8_000_000.0),
        ("client", "C2", 5_000_000.0),
        ("client", "C3", 4_000_000.0),
        ("client", "C6", 3_000_000.0),
    ]
    out = io.StringIO()
    write_large_exposures_csv(rows, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("kind,id,name") and len(lines) == 6


def test_index_groups_follow_connected_client_facts_stated_by_hand(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes("Company", pa.table({"id": ["A", "B", "C", "D"], "name": list("ABCD")}))
    store.upsert_nodes("Loan", pa.table({"id": ["LA", "LC"], "balance": [10.0, 5.0]}))
    store.upsert_edges(
        "BORROWED", pa.table({"src": ["A", "C"], "dst": ["LA", "LC"], "key": ["", ""]})
    )
    # the test states the reasoner's output: A–B and B–C connected, D alone
    facts = [("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")]
    store.replace_inferred(
        pa.table(
            {
                "predicate": ["connectedClient"] * 4,
                "src": [a for a, _ in facts],
                "dst": [b for _, b in facts],
                "rule": ["stated"] * 4,
                "premises": ["[]"] * 4,
                "value": pa.array([None] * 4, pa.float64()),
            }
        )
    )
    index = build_risk_index(store, save=False)
    assert index.group("C").members == ["A", "B", "C"]
    assert index.group("C").exposure == 15.0
    assert index.group("D").members == ["D"]
    store.close()


def test_insiders_of_a_borrower_include_holders_and_their_relatives(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, _ = bank
    assert set(insiders(store, "C1")) == {"P1", "P2"}  # P1 holds 60%; P2 is P1's spouse
    index = load_risk_index(store)
    assert index is not None
    assert index.insiders["C1"] == {"P1": "holds 60%", "P2": "relative of P1"}


def test_guarantor_who_is_an_insider_of_the_borrower_is_flagged(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    assert index.insiders["C4"]["P3"] == "holds 40%"
    result = check_origination(index, params, "C4", 100.0, ["P3"], {"P3": ["holds 40%"]})
    assert "guarantor_related_to_borrower" in {f.code for f in result.flags}


def test_interbank_borrower_is_measured_against_the_interbank_limit(
    bank: tuple[SQLiteStore, BankParameters],
) -> None:
    store, params = bank
    index = load_risk_index(store)
    assert index is not None
    result = check_origination(index, params, "BANK", 20_000_000.0, [])
    limits = {c.name: c for c in result.limits if c.scope == "client"}
    assert set(limits) == {"interbank_client"}  # 25% of tier-1, no loan-concentration limit
    assert not limits["interbank_client"].breached  # 20m ≤ 25m
