"""Generate a synthetic bank, ingest it, and check the graph against the generator's truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.generator import generate_bank
from ingest.pipeline import IngestReport, ingest_directory
from kg.model import Label, RelType
from kg.store import GraphStore

RELATIONSHIP_TYPES = {
    "shareholdings": RelType.HOLDS_SHARES,
    "positions": RelType.HOLDS_POSITION,
    "kinships": RelType.RELATIVE_OF,
    "guarantees": RelType.GUARANTEES,
    "loans": RelType.BORROWED,
    "accounts": RelType.OWNS_ACCOUNT,
    "devices": RelType.USES_DEVICE,
}
ENTITY_LABELS = {
    "persons": Label.PERSON,
    "companies": Label.COMPANY,
    "accounts": Label.ACCOUNT,
    "loans": Label.LOAN,
    "devices": Label.DEVICE,
}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bank")
    generate_bank(directory, customers=1500, seed=11, bad_rows=True, progress=False)
    return directory


def truth(bank: Path, name: str) -> object:
    return json.loads((bank / "truth" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture()
def loaded(store: GraphStore, bank: Path) -> tuple[GraphStore, IngestReport]:
    return store, ingest_directory(store, bank)


def test_entity_and_relationship_counts_match_the_truth(
    loaded: tuple[GraphStore, IngestReport], bank: Path
) -> None:
    store, _ = loaded
    counts = truth(bank, "counts")
    assert isinstance(counts, dict)
    for name, label in ENTITY_LABELS.items():
        assert store.count_nodes(label) == counts["entities"][name], name
    for name, rel_type in RELATIONSHIP_TYPES.items():
        assert store.count_edges(rel_type) == counts["relationships"][name], name
    assert store.count_transactions() == counts["relationships"]["transactions"]


def test_every_planted_bad_row_is_rejected_where_it_is(
    loaded: tuple[GraphStore, IngestReport], bank: Path
) -> None:
    _, report = loaded
    planted = truth(bank, "bad_rows")
    assert isinstance(planted, list)
    expected = {(r["file"], r["line"], r["column"]) for r in planted}
    assert {(r.file, r.line, r.column) for r in report.rejects} == expected


def test_duplicate_customer_numbers_resolve_to_one_entity(
    loaded: tuple[GraphStore, IngestReport], bank: Path
) -> None:
    store, report = loaded
    aliases = truth(bank, "aliases")
    assert isinstance(aliases, dict)
    assert report.aliases == len(aliases)
    for alias, canonical in aliases.items():
        assert store.resolve(alias) == canonical
        node = store.get_node(alias)
        assert node is not None and node.id == canonical


def test_second_ingest_changes_nothing(loaded: tuple[GraphStore, IngestReport], bank: Path) -> None:
    store, _ = loaded
    before = (store.count_nodes(), store.count_edges(), store.count_transactions())
    ingest_directory(store, bank)
    assert (store.count_nodes(), store.count_edges(), store.count_transactions()) == before
