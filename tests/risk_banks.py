"""Small hand-built banks for the risk and API tests, written in the canonical CSV contract.

`write_scenario_bank` is the one worked through by hand in the tests (tier-1 capital
100,000,000 CNY, net capital 120,000,000 CNY):

- P1 (张伟) has a duplicate customer record P1B (same resident id); P2 is P1's spouse.
- C1: P1 holds 60% → P1 controls C1 directly.
- C2: C1 holds 30%, P1 (through the record P1B) 25% → neither alone; P1 commands
  25 + 30 = 55% (C1's votes count because P1 controls C1) → P1 controls C2 (aggregated).
- C3: P1 30%, P2 25% → the family party P1 + P2 commands 55% → family control.
- C4/C5 cross-holdings: P3 40% of C4 and 10% of C5, C5 20% of C4, C4 30% of C5.
  Effective share of P3: e4 = 0.4 + 0.2·e5, e5 = 0.1 + 0.3·e4 → e4 = 0.42/0.94 ≈ 44.68%,
  e5 ≈ 23.40%: P3 is a beneficial owner of C4 (≥ 25%) but not of C5.
- guarantees: C6 → C7 → C8 → C6 (a 3-company circle), C9 ↔ C10 (a mutual pair),
  C11 → C12 → C13 → C14 (a chain that is not a circle), and C3 → C6 into the circle.
- loans (balances): C1 8,000,000; C2 5,000,000; P1B 1,000,000; C3 4,000,000; C6 3,000,000.
  P1's group {P1, P2, C1, C2, C3} owes 18,000,000 (limit 20% of tier-1 = 20,000,000).
- BANK is the bank itself (a financial institution, so an interbank counterparty): P4 is its director, P5 holds 6% of it, P6 is P5's spouse and the
  actual controller of C15 → related parties of the bank: P4, P5, P6, C15.
"""

from __future__ import annotations

from pathlib import Path

from ingest.identifiers import resident_id_check_char

TIER1 = 100_000_000.0
NET = 120_000_000.0


def _rid(body: str) -> str:
    return body + resident_id_check_char(body)


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text.strip() + "\n", encoding="utf-8")


def write_scenario_bank(directory: Path, *, bank_entity: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    id1 = _rid("33010219800101123")
    _write(
        directory,
        "persons.csv",
        f"""
person_id,name,id_number,region_code
P1,张伟,{id1},330106
P1B,张伟,{id1},330106
P2,王芳,{_rid("33010219820202234")},330106
P3,李强,{_rid("33010219700303345")},330106
P4,赵敏,{_rid("33010219750404456")},330106
P5,钱进,{_rid("33010219650505567")},330106
P6,孙丽,{_rid("33010219660606678")},330106
""",
    )
    companies = ["company_id,name,region_code,is_financial"]
    companies += [f"C{i},公司{i},330106,false" for i in range(1, 16)]
    if bank_entity:
        companies.append("BANK,杭州某商业银行,330106,true")
    _write(directory, "companies.csv", "\n".join(companies))
    holdings = """
holder_id,company_id,share_pct,voting_pct,as_of
P1,C1,60,,2024-01-01
C1,C2,30,,2024-01-01
P1B,C2,25,,2024-06-01
P1,C3,30,,2024-01-01
P2,C3,25,,2024-01-01
P3,C4,40,,2024-01-01
C5,C4,20,,2024-01-01
C4,C5,30,,2024-01-01
P3,C5,10,,2024-01-01
"""
    if bank_entity:
        holdings += "P5,BANK,6,,2024-01-01\n"
    _write(directory, "shareholdings.csv", holdings)
    positions = "person_id,company_id,role\nP6,C15,actual_controller\n"
    if bank_entity:
        positions += "P4,BANK,director\n"
    _write(directory, "positions.csv", positions)
    _write(
        directory,
        "kinships.csv",
        "person_id,relative_id,relation\nP1,P2,spouse\nP5,P6,spouse\n",
    )
    _write(
        directory,
        "loans.csv",
        """
loan_id,borrower_id,amount,balance,start_date,maturity_date,classification,branch
L1,C1,9000000,8000000,2024-01-01,2027-01-01,normal,杭州分行
L2,C2,5000000,5000000,2024-02-01,2027-02-01,normal,杭州分行
L3,P1B,1000000,1000000,2024-03-01,2027-03-01,normal,杭州分行
L4,C3,4000000,4000000,2024-04-01,2027-04-01,normal,杭州分行
L5,C6,3000000,3000000,2024-01-01,2027-01-01,normal,杭州分行
""",
    )
    _write(
        directory,
        "guarantees.csv",
        """
guarantee_id,guarantor_id,borrower_id,loan_id,amount,start_date,end_date,kind
G1,C6,C7,,1000000,2024-01-01,2026-12-31,guarantee
G2,C7,C8,,2000000,2024-01-01,2026-12-31,guarantee
G3,C8,C6,L5,3000000,2024-01-01,2026-12-31,guarantee
G4,C9,C10,,500000,2024-01-01,2026-12-31,guarantee
G5,C10,C9,,700000,2024-07-01,2026-12-31,guarantee
G6,C11,C12,,100000,2024-01-01,2026-12-31,guarantee
G7,C12,C13,,200000,2024-01-01,2026-12-31,guarantee
G8,C13,C14,,300000,2024-01-01,2026-12-31,guarantee
G9,C3,C6,,400000,2024-01-01,2026-12-31,guarantee
""",
    )
    _write(
        directory,
        "bank.toml",
        f'tier1_capital = {TIER1}\nnet_capital = {NET}\nprofile = "china"\n'
        + ('bank_entity_id = "BANK"\n' if bank_entity else ""),
    )
    return directory
