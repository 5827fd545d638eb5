"""Reasoning over a real store: materialise, explain down to source rows, export as RDF."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from rdflib import Graph, URIRef

from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from reasoning.incremental import IncrementalReasoner
from reasoning.materialise import default_rules, materialise
from reasoning.owl import RG
from reasoning.provenance import explain
from reasoning.rdf import ENTITY_BASE, export_rdf


def _nodes(store: SQLiteStore, label: Label, ids: list[str], **props: list[object]) -> None:
    store.upsert_nodes(
        label,
        pa.table(
            {
                "id": ids,
                **props,
                "_source": [f"{label.value.lower()}s.csv"] * len(ids),
                "_line": list(range(2, 2 + len(ids))),
                "_job": ["job-1"] * len(ids),
            }
        ),
    )


def _edges(
    store: SQLiteStore,
    rel: RelType,
    src: list[str],
    dst: list[str],
    source: str,
    **props: list[object],
) -> None:
    keys = props.pop("key", [""] * len(src))
    store.upsert_edges(
        rel,
        pa.table(
            {
                "src": src,
                "dst": dst,
                "key": keys,
                **props,
                "_source": [source] * len(src),
                "_line": list(range(2, 2 + len(src))),
                "_job": ["job-1"] * len(src),
            }
        ),
    )


@pytest.fixture()
def bank(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "kg.db")
    _nodes(store, Label.PERSON, ["p1", "p2", "p3"], phone=["13800000001", "13800000001", None])
    _nodes(store, Label.COMPANY, ["sub", "target", "other"])
    _edges(
        store,
        RelType.HOLDS_SHARES,
        ["p1", "p1", "sub", "p2"],
        ["target", "sub", "target", "other"],
        "shareholdings.csv",
        share_pct=[25.0, 60.0, 30.0, 70.0],
        voting_pct=[25.0, 60.0, 30.0, 70.0],
    )
    _edges(store, RelType.RELATIVE_OF, ["p1"], ["p2"], "kinships.csv", relation=["spouse"])
    _edges(
        store,
        RelType.GUARANTEES,
        ["sub", "other"],
        ["other", "sub"],
        "guarantees.csv",
        key=["g1", "g2"],
        guarantee_id=["g1", "g2"],
        amount=[1e6, 2e6],
    )
    yield store
    store.close()


def _facts(store: SQLiteStore, predicate: str) -> set[tuple[str, str]]:
    return {(f.src, f.dst) for f in _all(store, predicate)}


def _all(store: SQLiteStore, predicate: str) -> list:
    out = []
    for pid in ["p1", "p2", "p3", "sub", "target", "other"]:
        out += store.get_inferred(pid, predicate)
    return out


def test_materialise_writes_control_groups_and_links(bank: SQLiteStore) -> None:
    summary = materialise(bank)
    assert summary.written == bank.count_inferred()
    assert ("p1", "target") in _facts(bank, "controls")  # 25% + 30% via sub
    assert ("target", "other") in _facts(bank, "connectedClient")  # spouses' companies
    assert ("p1", "p2") in _facts(bank, "sharesPhone")
    assert ("sub", "other") in _facts(bank, "mutualGuarantee")
    assert ("p1", "p2") in _facts(bank, "familyOf")


def test_materialise_replaces_previous_inferred_facts(bank: SQLiteStore) -> None:
    first = materialise(bank)
    second = materialise(bank)
    assert first.written == second.written == bank.count_inferred()


def test_effective_share_and_ubo_are_written(bank: SQLiteStore) -> None:
    materialise(bank)
    shares = {(f.src, f.dst): f.value for f in _all(bank, "effectiveShare")}
    assert shares[("p1", "target")] == pytest.approx(25 + 60 * 0.30)
    assert ("p1", "target") in _facts(bank, "beneficialOwnerOf")


def test_explain_goes_down_to_source_file_and_line(bank: SQLiteStore) -> None:
    materialise(bank)
    tree = explain(bank, "p1", "controls", "target")
    assert tree is not None
    assert tree.rule == "control_aggregated"
    sources = {(leaf.source, leaf.line) for leaf in tree.leaves()}
    # the three shareholding rows that add up to control
    assert sources == {("shareholdings.csv", 2), ("shareholdings.csv", 3), ("shareholdings.csv", 4)}
    json.dumps(tree.to_dict())  # JSON-able


def test_explain_of_an_absent_fact_is_none(bank: SQLiteStore) -> None:
    materialise(bank)
    assert explain(bank, "p3", "controls", "target") is None


def test_export_rdf_types_nodes_and_writes_inferred_links(
    bank: SQLiteStore, tmp_path: Path
) -> None:
    materialise(bank)
    out = tmp_path / "kg.nt"
    count = export_rdf(bank, out)
    g = Graph().parse(out, format="nt")
    assert len(g) == count
    p1, target = URIRef(ENTITY_BASE + "p1"), URIRef(ENTITY_BASE + "target")
    assert (p1, URIRef(RG + "controls"), target) in g
    assert (p1, URIRef(RG + "spouseOf"), URIRef(ENTITY_BASE + "p2")) in g


def test_incremental_reasoner_runs_the_full_banking_program() -> None:
    inc = IncrementalReasoner(default_rules())
    inc.update(insert={"votingPct": ([0, 0, 1], [2, 1, 2], [25.0, 60.0, 30.0])})
    rows = set(zip(*(c.tolist() for c in inc.engine.rows("controls")), strict=True))
    assert (0, 2) in rows
    inc.update(delete={"votingPct": ([1], [2], [30.0])})
    rows = set(zip(*(c.tolist() for c in inc.engine.rows("controls")), strict=True))
    assert (0, 2) not in rows and (0, 1) in rows
