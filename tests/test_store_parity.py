"""The same bank gives the same answers on every store: inferred links, groups, exposures,
guarantee circles and rings, each compared with the embedded SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from risk_banks import write_scenario_bank

from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore
from reasoning.materialise import materialise
from risk.index import build_risk_index
from risk.limits import BankParameters
from risk.rings.nightly import run_ring_detection

PARAMS = BankParameters(tier1_capital=5e7, net_capital=6e7)


def inferred_facts(store: GraphStore) -> set[tuple[str, str, str, float | None]]:
    ids: dict[int, str] = {}
    for batch in store.node_batches():
        ids.update(
            zip(batch.column("nid").to_pylist(), batch.column("id").to_pylist(), strict=True)
        )
    facts = set()
    for batch in store.inferred_batches():
        for row in batch.to_pylist():
            value = None if row["value"] is None else round(row["value"], 6)
            facts.add((row["predicate"], ids[row["src"]], ids[row["dst"]], value))
    return facts


def risk_answers(store: GraphStore) -> dict[str, Any]:
    index = build_risk_index(store, PARAMS, save=False)
    groups = {
        frozenset(g.members): (round(g.exposure, 2), round(g.guarantees_given, 2))
        for g in index.groups.values()
    }
    circles = {frozenset(c.members) for c in index.circles.values()}
    return {"groups": groups, "circles": circles, "balance": index.balance}


def loaded_reference(tmp_path: Path, bank: Path) -> SQLiteStore:
    reference = SQLiteStore(tmp_path / "reference.db")
    ingest_directory(reference, bank)
    materialise(reference)
    return reference


def test_reasoning_and_risk_answers_match_the_embedded_store(
    store: GraphStore, tmp_path: Path
) -> None:
    bank = write_scenario_bank(tmp_path / "bank")
    reference = loaded_reference(tmp_path, bank)
    ingest_directory(store, bank)
    materialise(store)
    assert inferred_facts(store) == inferred_facts(reference)
    assert risk_answers(store) == risk_answers(reference)
    reference.close()


def test_rings_match_the_embedded_store(store: GraphStore, tmp_path: Path) -> None:
    bank = tmp_path / "generated"
    generate_bank(bank, customers=2500, seed=21, progress=False)
    reference = SQLiteStore(tmp_path / "reference.db")
    ingest_directory(reference, bank)
    ingest_directory(store, bank)
    ours = run_ring_detection(store)
    theirs = run_ring_detection(reference)
    assert theirs.rings, "the generated bank should hold at least one flagged ring"
    assert {frozenset(r["members"]) for r in ours.rings} == {
        frozenset(r["members"]) for r in theirs.rings
    }
    reference.close()
