import csv
import datetime as dt
import filecmp
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from ingest.generator import CSV_FILES, generate_bank
from ingest.identifiers import normalise_address, normalise_phone, valid_resident_id, valid_uscc
from kg.model import KINSHIP_RELATIONS

Rows = dict[str, list[dict[str, str]]]


def _read(out: Path) -> Rows:
    rows: Rows = {}
    for name in CSV_FILES:
        with (out / name).open(encoding="utf-8", newline="") as f:
            rows[name] = list(csv.DictReader(f))
    return rows


def _truth(out: Path, name: str) -> Any:
    return json.loads((out / "truth" / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank")
    generate_bank(out, customers=2000, seed=11, bad_rows=True, progress=False)
    return out


@pytest.fixture(scope="module")
def clean_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate_bank(out, customers=300, seed=5, bad_rows=False, progress=False)
    return out


@pytest.fixture(scope="module")
def rows(bank: Path) -> Rows:
    return _read(bank)


@pytest.fixture(scope="module")
def bad_lines(bank: Path) -> dict[str, set[int]]:
    lines: dict[str, set[int]] = defaultdict(set)
    for bad in _truth(bank, "bad_rows.json"):
        lines[bad["file"]].add(bad["line"])
    return lines


def _good(rows: Rows, name: str, bad_lines: dict[str, set[int]]) -> list[dict[str, str]]:
    # DictReader rows are data lines 2, 3, ... (no field holds a newline).
    return [r for i, r in enumerate(rows[name], start=2) if i not in bad_lines[name]]


def _guarantee_graph(rows: Rows, bad_lines: dict[str, set[int]]) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    for r in _good(rows, "guarantees.csv", bad_lines):
        graph.add_edge(r["guarantor_id"], r["borrower_id"], key=r["guarantee_id"])
    return graph


def test_same_seed_gives_byte_identical_output(tmp_path: Path, clean_bank: Path) -> None:
    generate_bank(tmp_path, customers=300, seed=5, bad_rows=False, progress=False)
    names = [*CSV_FILES, "bank.toml"]
    _, mismatch, errors = filecmp.cmpfiles(clean_bank, tmp_path, names, shallow=False)
    assert (mismatch, errors) == ([], [])
    truth = sorted(p.name for p in (tmp_path / "truth").iterdir())
    _, mismatch, errors = filecmp.cmpfiles(
        clean_bank / "truth", tmp_path / "truth", truth, shallow=False
    )
    assert (mismatch, errors) == ([], [])


def test_other_seed_gives_other_customers(tmp_path: Path, clean_bank: Path) -> None:
    generate_bank(tmp_path, customers=300, seed=6, bad_rows=False, progress=False)
    assert (tmp_path / "persons.csv").read_bytes() != (clean_bank / "persons.csv").read_bytes()


def test_customers_are_about_80_percent_persons(bank: Path) -> None:
    entities = _truth(bank, "counts.json")["entities"]
    assert entities["persons"] + entities["companies"] == 2000
    assert entities["persons"] == 1600


def test_ids_are_unique_across_persons_and_companies(rows: Rows) -> None:
    ids = [r["person_id"] for r in rows["persons.csv"]]
    ids += [r["company_id"] for r in rows["companies.csv"]]
    assert len(ids) == len(set(ids))


def test_every_id_number_validates_except_planted_bad_rows(
    rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    failing = {
        line
        for line, r in enumerate(rows["persons.csv"], start=2)
        if not valid_resident_id(r["id_number"])
    }
    assert failing == bad_lines["persons.csv"]
    assert len(failing) == 1


def test_every_uscc_validates_except_planted_bad_rows(
    rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    failing = {
        line for line, r in enumerate(rows["companies.csv"], start=2) if not valid_uscc(r["uscc"])
    }
    assert failing == bad_lines["companies.csv"]


def test_resident_ids_carry_birth_date_and_sex_order_code(rows: Rows) -> None:
    for r in rows["persons.csv"]:
        if valid_resident_id(r["id_number"]):
            assert r["id_number"][6:14] == r["birth_date"].replace("-", "")


def test_id_numbers_are_distinct_apart_from_aliases(bank: Path, rows: Rows) -> None:
    counts = _truth(bank, "counts.json")
    distinct = {r["id_number"] for r in rows["persons.csv"]}
    # The one bad-checksum row has an id number of its own.
    assert len(distinct) == counts["entities"]["persons"] + 1
    distinct_uscc = {r["uscc"] for r in rows["companies.csv"]}
    assert len(distinct_uscc) == counts["entities"]["companies"] + 1


def test_aliases_repeat_an_earlier_record_with_another_id(bank: Path, rows: Rows) -> None:
    aliases = _truth(bank, "aliases.json")
    assert len(aliases) >= 2
    persons = {r["person_id"]: (i, r) for i, r in enumerate(rows["persons.csv"])}
    companies = {r["company_id"]: (i, r) for i, r in enumerate(rows["companies.csv"])}
    for alias, canonical in aliases.items():
        table, key = (persons, "id_number") if alias.startswith("P") else (companies, "uscc")
        (ai, arow), (ci, crow) = table[alias], table[canonical]
        assert alias != canonical
        assert arow[key] == crow[key]
        assert ci < ai


def test_alias_records_only_own_accounts(bank: Path, rows: Rows) -> None:
    aliases = set(_truth(bank, "aliases.json"))
    columns = {
        "shareholdings.csv": ("holder_id", "company_id"),
        "positions.csv": ("person_id", "company_id"),
        "kinships.csv": ("person_id", "relative_id"),
        "guarantees.csv": ("guarantor_id", "borrower_id"),
        "loans.csv": ("borrower_id",),
        "devices.csv": ("owner_id",),
    }
    for name, cols in columns.items():
        assert not any(r[c] in aliases for r in rows[name] for c in cols), name
    owners = {r["owner_id"] for r in rows["accounts.csv"]}
    assert aliases <= owners


def test_relationships_reference_existing_ids_except_planted_bad_rows(
    bank: Path, rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    persons = {r["person_id"] for r in rows["persons.csv"]}
    companies = {r["company_id"] for r in rows["companies.csv"]}
    parties = persons | companies
    accounts = {r["account_id"] for r in rows["accounts.csv"]}
    references = {
        "shareholdings.csv": {"holder_id": parties, "company_id": companies},
        "positions.csv": {"person_id": persons, "company_id": companies},
        "kinships.csv": {"person_id": persons, "relative_id": persons},
        "guarantees.csv": {"guarantor_id": parties, "borrower_id": parties},
        "loans.csv": {"borrower_id": parties},
        "accounts.csv": {"owner_id": parties},
        "transactions.csv": {"from_account": accounts, "to_account": accounts},
        "devices.csv": {"owner_id": parties},
    }
    unknown = {
        (name, line, column)
        for name, cols in references.items()
        for line, r in enumerate(rows[name], start=2)
        for column, known in cols.items()
        if r[column] not in known
    }
    listed = {
        (b["file"], b["line"], b["column"])
        for b in _truth(bank, "bad_rows.json")
        if b["reason_kind"] == "unknown_id"
    }
    assert unknown == listed
    loans = {r["loan_id"] for r in _good(rows, "loans.csv", bad_lines)}
    assert all(r["loan_id"] in loans for r in _good(rows, "guarantees.csv", bad_lines))


def test_kinships_are_stored_once_per_pair(rows: Rows, bad_lines: dict[str, set[int]]) -> None:
    pairs = [
        frozenset((r["person_id"], r["relative_id"]))
        for r in _good(rows, "kinships.csv", bad_lines)
    ]
    assert len(pairs) == len(set(pairs))
    relations = Counter(r["relation"] for r in _good(rows, "kinships.csv", bad_lines))
    assert set(relations) == KINSHIP_RELATIONS


def test_shareholding_and_position_rows_are_unique(rows: Rows) -> None:
    holdings = [(r["holder_id"], r["company_id"]) for r in rows["shareholdings.csv"]]
    assert len(holdings) == len(set(holdings))
    positions = [(r["person_id"], r["company_id"], r["role"]) for r in rows["positions.csv"]]
    assert len(positions) == len(set(positions))


def test_ownership_contains_cross_holdings(bank: Path, rows: Rows) -> None:
    holds = {(r["holder_id"], r["company_id"]) for r in rows["shareholdings.csv"]}
    cross = _truth(bank, "cross_holdings.json")
    assert cross
    for pair in cross:
        assert (pair["company_a"], pair["company_b"]) in holds
        assert (pair["company_b"], pair["company_a"]) in holds


def test_some_voting_rights_differ_from_shares(rows: Rows) -> None:
    differs = [r for r in rows["shareholdings.csv"] if r["voting_pct"] not in ("", r["share_pct"])]
    assert differs


def test_planted_guarantee_circles_are_directed_cycles(
    bank: Path, rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    graph = _guarantee_graph(rows, bad_lines)
    circles = _truth(bank, "guarantee_circles.json")
    assert {c["kind"] for c in circles} == {"cycle", "mutual_pair"}
    for circle in circles:
        members = circle["members"]
        n = len(members)
        assert (2 if circle["kind"] == "mutual_pair" else 3) <= n <= 6
        for i in range(n):
            assert graph.has_edge(members[i], members[(i + 1) % n])
        sub = nx.DiGraph(graph.subgraph(members))
        assert nx.is_strongly_connected(sub)


def test_every_guarantee_cycle_runs_through_planted_circles_only(
    bank: Path, rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    graph = nx.DiGraph(_guarantee_graph(rows, bad_lines))
    in_cycles = {
        node for scc in nx.strongly_connected_components(graph) if len(scc) > 1 for node in scc
    }
    planted = {m for c in _truth(bank, "guarantee_circles.json") for m in c["members"]}
    assert in_cycles == planted


def test_planted_chains_are_acyclic_paths_of_at_least_five_guarantees(
    bank: Path, rows: Rows, bad_lines: dict[str, set[int]]
) -> None:
    graph = nx.DiGraph(_guarantee_graph(rows, bad_lines))
    amounts = {r["guarantee_id"]: float(r["amount"]) for r in rows["guarantees.csv"]}
    chains = _truth(bank, "guarantee_chains.json")
    assert chains
    for chain in chains:
        members = chain["members"]
        assert chain["length"] == len(members) - 1 >= 5
        assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(members))
        assert nx.is_directed_acyclic_graph(graph.subgraph(nx.descendants(graph, members[0])))
        assert chain["total_amount"] == pytest.approx(
            sum(amounts[g] for g in chain["guarantee_ids"])
        )


def _votes(rows: Rows) -> dict[str, dict[str, float]]:
    votes: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows["shareholdings.csv"]:
        pct = float(r["voting_pct"] or r["share_pct"])
        if 0 < pct <= 100:
            votes[r["company_id"]][r["holder_id"]] = pct
    return votes


def _controlled_by(controller: str, rows: Rows) -> set[str]:
    """Brute-force fixpoint of DESIGN's control rule for one controller."""
    votes = _votes(rows)
    actual = {
        r["company_id"]
        for r in rows["positions.csv"]
        if r["role"] == "actual_controller" and r["person_id"] == controller
    }
    controlled: set[str] = set()
    changed = True
    while changed:
        changed = False
        for company, holders in votes.items():
            if company in controlled:
                continue
            total = sum(v for h, v in holders.items() if h == controller or h in controlled)
            if total > 50 or company in actual:
                controlled.add(company)
                changed = True
    return controlled


def test_planted_aggregated_control_has_no_single_majority_holding(bank: Path, rows: Rows) -> None:
    votes = _votes(rows)
    cases = [c for c in _truth(bank, "control.json") if c["kind"] == "aggregated"]
    assert cases
    for case in cases:
        assert max(votes[case["company"]].values()) <= 50
        (controller,) = case["controllers"]
        assert case["company"] in _controlled_by(controller, rows)


def test_planted_family_control_needs_both_spouses(bank: Path, rows: Rows) -> None:
    votes = _votes(rows)
    spouses = {
        frozenset((r["person_id"], r["relative_id"]))
        for r in rows["kinships.csv"]
        if r["relation"] == "spouse"
    }
    cases = [c for c in _truth(bank, "control.json") if c["kind"] == "family"]
    assert cases
    for case in cases:
        holders = votes[case["company"]]
        husband, wife = case["controllers"]
        assert frozenset((husband, wife)) in spouses
        assert max(holders.values()) <= 50
        assert holders[husband] + holders[wife] > 50


def test_every_planted_control_case_holds_under_the_control_rule(bank: Path, rows: Rows) -> None:
    for case in _truth(bank, "control.json"):
        if case["kind"] != "family":
            (controller,) = case["controllers"]
            assert case["company"] in _controlled_by(controller, rows), case


def test_rings_are_concentrated_in_one_region(bank: Path, rows: Rows) -> None:
    region = {r["person_id"]: r["region_code"] for r in rows["persons.csv"]}
    region |= {r["company_id"]: r["region_code"] for r in rows["companies.csv"]}
    rings = _truth(bank, "rings.json")
    assert rings
    for ring in rings:
        assert 5 <= len(ring["members"]) <= 30
        assert {region[m] for m in ring["members"]} == {ring["region_code"]}


def _ring_identifier_users(ring: dict[str, Any], rows: Rows) -> dict[str, set[str]]:
    members = set(ring["members"])
    users: dict[str, set[str]] = defaultdict(set)
    for r in [*rows["persons.csv"], *rows["companies.csv"]]:
        cid = r.get("person_id") or r["company_id"]
        if normalise_phone(r["phone"]) in ring["shared_phones"]:
            users[cid].add("phone")
        if normalise_address(r["address"]) in ring["shared_addresses"]:
            users[cid].add("address")
    for r in rows["devices.csv"]:
        if r["device_id"] in ring["shared_devices"]:
            users[r["owner_id"]].add("device")
    assert set(users) <= members
    return users


def test_ring_identifiers_are_shared_by_several_but_not_all_members(bank: Path, rows: Rows) -> None:
    for ring in _truth(bank, "rings.json"):
        users = _ring_identifier_users(ring, rows)
        assert len(users) >= 2
        assert len(users) < len(ring["members"])
        for kind in ("phone", "address", "device"):
            assert sum(kind in u for u in users.values()) >= 2


def test_every_ring_member_is_tied_by_identifiers_guarantees_or_money_flows(
    bank: Path, rows: Rows
) -> None:
    circles = {c["circle_id"]: c for c in _truth(bank, "guarantee_circles.json")}
    owner = {r["account_id"]: r["owner_id"] for r in rows["accounts.csv"]}
    flows = {(r["from_account"], r["to_account"]) for r in rows["transactions.csv"]}
    for ring in _truth(bank, "rings.json"):
        tied = set(_ring_identifier_users(ring, rows))
        for cid in ring["guarantee_circle_ids"]:
            tied |= set(circles[cid]["members"])
        for cycle in ring["flow_cycles"]:
            for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
                assert (a, b) in flows
            tied |= {owner[a] for a in cycle}
        assert tied == set(ring["members"])


def test_ring_members_have_links_outside_the_ring(bank: Path, rows: Rows) -> None:
    kin = [(r["person_id"], r["relative_id"]) for r in rows["kinships.csv"]]
    for ring in _truth(bank, "rings.json"):
        members = set(ring["members"])
        outside = [
            p for a, b in kin for p, q in ((a, b), (b, a)) if p in members and q not in members
        ]
        assert outside


def test_ring_loans_are_more_often_non_performing(bank: Path, rows: Rows) -> None:
    ring_members = {m for ring in _truth(bank, "rings.json") for m in ring["members"]}
    npl = {"substandard", "doubtful", "loss"}

    def ratio(loans: list[dict[str, str]]) -> float:
        return sum(r["classification"] in npl for r in loans) / len(loans)

    inside = [r for r in rows["loans.csv"] if r["borrower_id"] in ring_members]
    outside = [r for r in rows["loans.csv"] if r["borrower_id"] not in ring_members]
    assert ratio(inside) > 2 * ratio(outside)


def test_legit_shared_identifiers_match_the_files_and_are_no_rings(bank: Path, rows: Rows) -> None:
    ring_members = {m for ring in _truth(bank, "rings.json") for m in ring["members"]}
    phone = {r.get("person_id") or r["company_id"]: r["phone"] for r in rows["persons.csv"]}
    address = {r.get("person_id") or r["company_id"]: r["address"] for r in rows["persons.csv"]}
    for r in rows["companies.csv"]:
        phone[r["company_id"]], address[r["company_id"]] = r["phone"], r["address"]
    shared = _truth(bank, "legit_shared.json")
    assert {s["kind"] for s in shared} == {"switchboard_phone", "office_address"}
    for s in shared:
        values = phone if s["kind"] == "switchboard_phone" else address
        norm = normalise_phone if s["kind"] == "switchboard_phone" else normalise_address
        holders = {cid for cid, v in values.items() if norm(v) == s["normalised"]}
        assert holders == set(s["customers"])
        assert len(holders) >= 5
        assert not holders & ring_members


def test_bad_rows_are_exactly_the_listed_ones(bank: Path, rows: Rows) -> None:
    listed = {(b["file"], b["line"]): b for b in _truth(bank, "bad_rows.json")}
    kinds = {b["reason_kind"] for b in listed.values()}
    assert kinds == {
        "bad_checksum",
        "unknown_id",
        "negative_amount",
        "pct_out_of_range",
        "unparseable_date",
        "bad_relation",
    }
    assert len({b["file"] for b in listed.values()}) >= 5

    def is_date(value: str) -> bool:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return True

    checks: dict[str, Any] = {
        "negative_amount": lambda v: float(v) < 0,
        "pct_out_of_range": lambda v: not 0 < float(v) <= 100,
        "unparseable_date": lambda v: not is_date(v),
        "bad_relation": lambda v: v not in KINSHIP_RELATIONS,
        "bad_checksum": lambda v: not (valid_resident_id(v) or valid_uscc(v)),
    }
    for (name, line), bad in listed.items():
        with (bank / name).open(encoding="utf-8", newline="") as f:
            physical = f.read().splitlines()[line - 1]
        row = next(csv.DictReader([physical], fieldnames=list(rows[name][0])))
        assert row == rows[name][line - 2]
        if bad["reason_kind"] in checks:
            assert checks[bad["reason_kind"]](row[bad["column"]]), bad
    # No other row fails these checks.
    date_cols = {
        "loans.csv": ("start_date", "maturity_date"),
        "accounts.csv": ("opened_date",),
        "guarantees.csv": ("start_date", "end_date"),
    }
    amount_cols = {
        "loans.csv": ("amount", "balance"),
        "guarantees.csv": ("amount",),
        "transactions.csv": ("amount",),
    }
    for name in CSV_FILES:
        for line, r in enumerate(rows[name], start=2):
            failing = any(not is_date(r[c]) for c in date_cols.get(name, ()))
            failing |= any(float(r[c]) < 0 for c in amount_cols.get(name, ()))
            if name == "shareholdings.csv":
                failing |= not 0 < float(r["share_pct"]) <= 100
            if name == "kinships.csv":
                failing |= r["relation"] not in KINSHIP_RELATIONS
            if failing:
                assert (name, line) in listed


def test_counts_match_the_files(bank: Path, rows: Rows, bad_lines: dict[str, set[int]]) -> None:
    counts = _truth(bank, "counts.json")
    for name in CSV_FILES:
        assert counts["rows"][name] == len(rows[name])
        assert counts["valid_rows"][name] == len(rows[name]) - len(bad_lines[name])
    aliases = _truth(bank, "aliases.json")
    entities = counts["entities"]
    assert entities["persons"] == counts["valid_rows"]["persons.csv"] - sum(
        a.startswith("P") for a in aliases
    )
    good_devices = {r["device_id"] for r in _good(rows, "devices.csv", bad_lines)}
    assert entities["devices"] == len(good_devices)
    assert counts["relationships"]["transactions"] == counts["valid_rows"]["transactions.csv"]


def test_clean_bank_has_no_bad_rows(clean_bank: Path) -> None:
    assert _truth(clean_bank, "bad_rows.json") == []
    rows = _read(clean_bank)
    assert all(valid_resident_id(r["id_number"]) for r in rows["persons.csv"])
    assert all(valid_uscc(r["uscc"]) for r in rows["companies.csv"])


def test_too_few_customers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_bank(tmp_path, customers=10, seed=1, progress=False)
