"""Control, beneficial ownership and related parties on the hand-worked scenario bank
(tests/risk_banks.py): ingest → reasoning.materialise → risk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from risk_banks import write_scenario_bank

from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.control import beneficial_owners, controlled_companies, controllers
from risk.dated import ownership_view
from risk.related import related_parties


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    root: Path = tmp_path_factory.mktemp("scenario")
    db = SQLiteStore(root / "kg.db")
    ingest_directory(db, write_scenario_bank(root / "bank"))
    materialise(db)
    yield db
    db.close()


def by_controller(store: SQLiteStore, company: str) -> dict[str, str]:
    return {r.controller: r.basis for r in controllers(store, company)}


def test_majority_voting_gives_direct_control(store: SQLiteStore) -> None:
    (relation,) = [r for r in controllers(store, "C1") if r.controller == "P1"]
    assert relation.direct and relation.basis == "majority_voting"
    assert relation.total_voting_pct == 60.0


def test_aggregated_voting_through_subsidiary_gives_control(store: SQLiteStore) -> None:
    (relation,) = [r for r in controllers(store, "C2") if r.controller == "P1"]
    assert relation.basis == "aggregated_voting" and not relation.direct
    # 25% held by P1 (recorded under the duplicate P1B) + 30% held by C1, which P1 controls
    assert relation.total_voting_pct == 55.0
    votes = {v.holder: v.voting_pct for v in relation.votes}
    assert votes == {"P1": 25.0, "C1": 30.0}
    (via_c1,) = [v for v in relation.votes if v.holder == "C1"]
    assert [(s.holder, s.company, s.voting_pct) for s in via_c1.chain] == [("P1", "C1", 60.0)]


def test_subsidiary_with_a_minority_stake_does_not_control(store: SQLiteStore) -> None:
    assert "C1" not in by_controller(store, "C2")


def test_family_party_controls_when_spouses_together_hold_a_majority(
    store: SQLiteStore,
) -> None:
    # P1 30% + spouse P2 25% = 55% of C3; neither controls it alone
    assert by_controller(store, "C3") == {"P1": "family_party", "P2": "family_party"}
    (relation,) = [r for r in controllers(store, "C3") if r.controller == "P1"]
    assert relation.total_voting_pct == 55.0 and relation.family == ["P2"]


def test_relative_of_an_actual_controller_is_a_family_party_controller(
    store: SQLiteStore,
) -> None:
    assert by_controller(store, "C15") == {"P6": "actual_controller", "P5": "family_party"}


def test_duplicate_customer_record_resolves_to_one_controller(store: SQLiteStore) -> None:
    assert {r.company for r in controlled_companies(store, "P1B")} == {"C1", "C2", "C3"}


def test_beneficial_owner_through_cross_holdings(store: SQLiteStore) -> None:
    # e4 = 0.4 + 0.2·e5, e5 = 0.1 + 0.3·e4  →  e4 = 0.42 / 0.94
    (owner,) = beneficial_owners(store, "C4")
    assert owner.person == "P3"
    assert owner.effective_share_pct == pytest.approx(100 * 0.42 / 0.94)


def test_effective_share_below_a_quarter_makes_no_beneficial_owner(store: SQLiteStore) -> None:
    # e5 = 0.1 + 0.3 · 0.42/0.94 ≈ 23.4% < 25%, and P3 does not control C5
    assert beneficial_owners(store, "C5") == []


def test_controller_is_a_beneficial_owner_without_a_quarter_share(store: SQLiteStore) -> None:
    owners = {o.person: o for o in beneficial_owners(store, "C3")}
    assert owners["P1"].controls and owners["P1"].effective_share_pct == pytest.approx(30.0)


def test_as_of_before_a_holding_was_recorded_control_disappears(store: SQLiteStore) -> None:
    # P1B's 25% of C2 is recorded on 2024-06-01; before that P1 commands only C1's 30%
    view = ownership_view(store, "2024-03-01", ["C2"])
    try:
        assert controllers(view, "C2") == []
    finally:
        view.close()
    assert "P1" in by_controller(store, "C2")


def test_related_parties_of_the_bank(store: SQLiteStore) -> None:
    related = {p.id: p.reasons for p in related_parties(store, "BANK")}
    # P4 director, P5 holds 6%, P6 spouse of P5, C15 actually controlled by P6
    assert set(related) == {"P4", "P5", "P6", "C15"}
    assert any("6%" in r for r in related["P5"])
