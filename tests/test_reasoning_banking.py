"""Hand-worked banking cases for the shipped rules (reasoning/rules/banking.dl + ontology)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoning.engine import Engine
from reasoning.materialise import default_rules
from reasoning.ownership import beneficial_owners, effective_ownership

NAMES = ["P", "Q", "R", "A", "B", "C", "D", "E", "PHONE", "DEV", "BANK"]
ID = {n: i for i, n in enumerate(NAMES)}
PERSONS = ["P", "Q", "R"]


class Bank:
    """A tiny graph in engine facts, by entity name."""

    def __init__(self) -> None:
        self.engine = Engine(default_rules())
        self.engine.add_facts("Person", [ID[p] for p in PERSONS])
        self.engine.add_facts("Company", [ID[c] for c in ["A", "B", "C", "D", "E", "BANK"]])

    def shares(self, holder: str, company: str, pct: float) -> Bank:
        for pred in ("votingPct", "sharePct"):
            self.engine.add_facts(pred, [ID[holder]], [ID[company]], [pct])
        self.engine.add_facts("holdsShares", [ID[holder]], [ID[company]])
        return self

    def fact(self, pred: str, *names: str) -> Bank:
        self.engine.add_facts(pred, *[[ID[n]] for n in names])
        return self

    def holds(self, pred: str, a: str, b: str) -> bool:
        self.engine.run()
        cols = self.engine.rows(pred)
        pairs = set(zip(cols[0].tolist(), cols[1].tolist(), strict=True)) if cols else set()
        return (ID[a], ID[b]) in pairs


def test_majority_voting_gives_control_and_exactly_half_does_not() -> None:
    bank = Bank().shares("P", "A", 50.5).shares("Q", "B", 50.0)
    assert bank.holds("controls", "P", "A")
    assert not bank.holds("controls", "Q", "B")


def test_actual_controller_position_gives_control() -> None:
    assert Bank().fact("actualControllerOf", "P", "A").holds("controls", "P", "A")


def test_aggregated_voting_through_subsidiary_gives_control() -> None:
    # 25% direct + 30% held by a controlled subsidiary = 55% > 50%
    bank = Bank().shares("P", "C", 25).shares("P", "A", 60).shares("A", "C", 30)
    assert bank.holds("controls", "P", "C")


def test_votes_of_an_uncontrolled_company_do_not_count() -> None:
    bank = Bank().shares("P", "C", 25).shares("P", "A", 40).shares("A", "C", 30)
    assert not bank.holds("controls", "P", "C")


def test_aggregation_uses_sums_not_path_products() -> None:
    # P controls A (60%) which holds 51% of B: control of B, although 0.6 x 0.51 < 50%
    bank = Bank().shares("P", "A", 60).shares("A", "B", 51)
    assert bank.holds("controls", "P", "B")


def test_recursive_aggregation_needs_control_found_in_an_earlier_round() -> None:
    # P: 60% of A; A: 26% of B and P: 25% of B -> P controls B; then B's 20% + P's 31% of C
    bank = (
        Bank()
        .shares("P", "A", 60)
        .shares("A", "B", 26)
        .shares("P", "B", 25)
        .shares("B", "C", 20)
        .shares("P", "C", 31)
    )
    assert bank.holds("controls", "P", "C")


def test_cross_holdings_terminate_and_keep_control() -> None:
    bank = Bank().shares("A", "B", 60).shares("B", "A", 60).shares("P", "A", 30)
    assert bank.holds("controls", "A", "B")
    assert bank.holds("controls", "B", "A")
    assert not bank.holds("controls", "P", "A")


def test_spouses_votes_are_summed_as_one_family_party() -> None:
    bank = Bank().shares("P", "A", 30).shares("Q", "A", 30).fact("spouseOf", "P", "Q")
    assert bank.holds("familyControls", "P", "A")
    assert bank.holds("familyControls", "Q", "A")
    assert not bank.holds("controls", "P", "A")


def test_companies_controlled_by_spouses_are_connected_clients() -> None:
    bank = Bank().shares("P", "A", 70).shares("Q", "B", 70).fact("spouseOf", "Q", "P")
    assert bank.holds("connectedClient", "A", "B")
    assert bank.holds("connectedClient", "B", "A")


def test_companies_with_a_common_controller_are_connected_clients() -> None:
    bank = Bank().shares("P", "A", 70).shares("P", "B", 51)
    assert bank.holds("sameControllerAs", "A", "B")
    assert bank.holds("connectedClient", "A", "B")
    assert bank.holds("connectedClient", "P", "A")


def test_unrelated_persons_companies_are_not_connected() -> None:
    bank = Bank().shares("P", "A", 70).shares("R", "B", 70)
    assert not bank.holds("connectedClient", "A", "B")


def test_related_parties_of_a_company() -> None:
    bank = (
        Bank()
        .shares("P", "BANK", 5)  # 5% shareholder
        .shares("Q", "BANK", 4.9)  # below the 5% threshold
        .fact("directorOf", "R", "BANK")
        .fact("spouseOf", "R", "Q")  # a director's close relative
        .shares("R", "D", 80)  # an entity the director controls
    )
    assert bank.holds("relatedParty", "P", "BANK")
    assert bank.holds("relatedParty", "R", "BANK")
    assert bank.holds("relatedParty", "Q", "BANK")
    assert bank.holds("relatedParty", "D", "BANK")
    assert not bank.holds("relatedParty", "A", "BANK")


def test_shared_phone_and_device_link_different_customers_only() -> None:
    bank = (
        Bank()
        .fact("hasPhone", "P", "PHONE")
        .fact("hasPhone", "A", "PHONE")
        .fact("usesDevice", "Q", "DEV")
        .fact("usesDevice", "R", "DEV")
    )
    assert bank.holds("sharesPhone", "A", "P")
    assert bank.holds("sharesIdentifier", "P", "A")
    assert bank.holds("sharesDevice", "Q", "R")
    assert not bank.holds("sharesPhone", "P", "P")


def test_mutual_guarantee_needs_both_directions() -> None:
    bank = Bank().fact("guarantees", "A", "B").fact("guarantees", "B", "A")
    bank.fact("guarantees", "C", "D")
    assert bank.holds("mutualGuarantee", "A", "B")
    assert not bank.holds("mutualGuarantee", "C", "D")


def test_effective_share_sums_path_products() -> None:
    # P -60%-> A -55%-> B -30%-> C, and P holds 25% of C directly: 0.099 + 0.25
    eff = effective_ownership(
        [ID["P"], ID["A"], ID["B"], ID["P"]],
        [ID["A"], ID["B"], ID["C"], ID["C"]],
        [0.6, 0.55, 0.3, 0.25],
        [ID["P"]],
    )
    got = dict(zip(eff.company.tolist(), eff.share.tolist(), strict=True))
    assert got[ID["C"]] == pytest.approx(0.349)
    assert got[ID["B"]] == pytest.approx(0.33)


def test_cross_holding_is_solved_as_a_linear_system() -> None:
    # A holds 20% of B, B 20% of A; P holds 80% of A, Q 80% of B
    eff = effective_ownership(
        [ID["A"], ID["B"], ID["P"], ID["Q"]],
        [ID["B"], ID["A"], ID["A"], ID["B"]],
        [0.2, 0.2, 0.8, 0.8],
        [ID["P"], ID["Q"]],
    )
    got = {
        (p, c): s
        for p, c, s in zip(
            eff.person.tolist(), eff.company.tolist(), eff.share.tolist(), strict=True
        )
    }
    assert got[(ID["P"], ID["A"])] == pytest.approx(0.8 / 0.96)
    assert got[(ID["P"], ID["B"])] == pytest.approx(0.16 / 0.96)
    assert got[(ID["Q"], ID["B"])] == pytest.approx(0.8 / 0.96)


def test_beneficial_owner_by_quarter_share_or_by_control() -> None:
    eff = effective_ownership(
        [ID["P"], ID["Q"], ID["R"]], [ID["A"], ID["A"], ID["A"]], [0.25, 0.24, 0.1], PERSONS_IDS
    )
    persons, companies = beneficial_owners(eff, ([ID["R"]], [ID["A"]]), PERSONS_IDS)
    assert set(zip(persons.tolist(), companies.tolist(), strict=True)) == {
        (ID["P"], ID["A"]),
        (ID["R"], ID["A"]),
    }


PERSONS_IDS = [ID[p] for p in PERSONS]


def _dense_oracle(
    holder: list[int], company: list[int], fraction: list[float], persons: list[int]
) -> dict[tuple[int, int], float]:
    """E_p = S_p·(I − S_cc)⁻¹ by a dense solve over every node (numpy, no sparsity)."""
    n = max(holder + company) + 1
    s = np.zeros((n, n))
    for h, c, f in zip(holder, company, fraction, strict=True):
        s[h, c] += f
    comp = [i for i in range(n) if i not in persons]
    inv = np.linalg.inv(np.eye(len(comp)) - s[np.ix_(comp, comp)])
    e = s[np.ix_(persons, comp)] @ inv
    return {
        (p, comp[j]): float(e[i, j])
        for i, p in enumerate(persons)
        for j in range(len(comp))
        if abs(e[i, j]) > 1e-12
    }


def _solutions(
    args: tuple[list[int], list[int], list[float], list[int]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[tuple[int, int], float]]:
    """The level-by-level solve, the LU solve and the sparse series on the same holdings."""
    from reasoning import ownership

    out = {}
    for name, max_cycle, budget in (
        ("levels", ownership._MAX_CYCLE, ownership._DENSE_BUDGET),
        ("lu", 0, ownership._DENSE_BUDGET),
        ("series", 0, 0),
    ):
        monkeypatch.setattr(ownership, "_MAX_CYCLE", max_cycle)
        monkeypatch.setattr(ownership, "_DENSE_BUDGET", budget)
        eff = effective_ownership(*args)
        out[name] = dict(
            zip(
                zip(eff.person.tolist(), eff.company.tolist(), strict=True),
                eff.share.tolist(),
                strict=True,
            )
        )
    return out


def test_every_solve_agrees_with_a_dense_inverse_on_cross_holdings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A and B hold each other, B holds C, C holds D and D holds C (a second cycle, a level
    # below the first), P and Q hold A and B
    args = (
        [ID["A"], ID["B"], ID["P"], ID["Q"], ID["B"], ID["C"], ID["D"]],
        [ID["B"], ID["A"], ID["A"], ID["B"], ID["C"], ID["D"], ID["C"]],
        [0.2, 0.2, 0.8, 0.8, 0.5, 0.4, 0.3],
        [ID["P"], ID["Q"]],
    )
    oracle = _dense_oracle(*[list(a) for a in args])
    for name, got in _solutions(args, monkeypatch).items():
        assert got.keys() == oracle.keys(), name
        for key, share in oracle.items():
            assert got[key] == pytest.approx(share, abs=1e-9), (name, key)


holding = st.tuples(st.integers(0, 9), st.integers(2, 9), st.sampled_from([0.1, 0.3, 0.45]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(holding, min_size=1, max_size=25))
def test_level_solve_equals_a_dense_inverse_on_random_holdings(
    monkeypatch: pytest.MonkeyPatch, holdings: list[tuple[int, int, float]]
) -> None:
    # nodes 0 and 1 are persons; companies 2..9 hold each other in any pattern (cycles too),
    # with at most 45% per holding so that (I − S_cc) stays invertible
    pairs = {(h, c): f for h, c, f in holdings if h != c}
    if not pairs:
        return
    args = (
        [h for h, _ in pairs],
        [c for _, c in pairs],
        list(pairs.values()),
        [0, 1],
    )
    oracle = _dense_oracle(*[list(a) for a in args])
    got = _solutions(args, monkeypatch)["levels"]
    assert got.keys() == oracle.keys()
    for key, share in oracle.items():
        assert got[key] == pytest.approx(share, abs=1e-9)


def _shared_phone_pairs(holders: int) -> set[tuple[int, int]]:
    engine = Engine(default_rules())
    phone = 10_000  # an interned identifier value, apart from the customers 0..holders-1
    engine.add_facts("hasPhone", list(range(holders)), [phone] * holders)
    engine.run()
    cols = engine.rows("sharesPhone")
    return set(zip(cols[0].tolist(), cols[1].tolist(), strict=True)) if cols else set()


def test_phone_of_three_customers_links_each_pair_both_ways() -> None:
    assert _shared_phone_pairs(3) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}


def test_phone_of_fifty_customers_still_links_them() -> None:
    assert len(_shared_phone_pairs(50)) == 50 * 49


def test_phone_of_more_than_fifty_customers_links_none() -> None:
    # a switchboard: shared in the open, no evidence of a hidden link (rules/banking.dl)
    assert _shared_phone_pairs(51) == set()


def test_crowded_address_links_none_but_small_one_does() -> None:
    engine = Engine(default_rules())
    office, flat = 10_000, 10_001
    engine.add_facts("hasAddress", [*range(60), 100, 101], [office] * 60 + [flat] * 2)
    engine.run()
    cols = engine.rows("sharesAddress")
    assert set(zip(cols[0].tolist(), cols[1].tolist(), strict=True)) == {(100, 101), (101, 100)}
