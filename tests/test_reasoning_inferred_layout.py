"""The SQLite layout of inferred facts: compressed blocks per predicate and run of src.

These tests pin down that every fact reads back with exactly the premises it was written
with, that replaced and retracted facts leave no block behind, and that files of schema 1
and 3 keep their inferred facts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg import inferred_blocks as blocks
from kg import sql
from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import SCHEMA_VERSION, InferredColumns, PremiseKind, Premises, StoreError
from reasoning.materialise import load_graph, materialise
from reasoning.provenance import explain

INFERRED = pa.schema(
    [
        ("predicate", pa.string()),
        ("src", pa.string()),
        ("dst", pa.string()),
        ("rule", pa.string()),
        ("premises", pa.large_string()),
        ("value", pa.float64()),
    ]
)


def _rows(*facts: tuple[str, str, str, str, list[dict[str, object]], float | None]) -> pa.Table:
    return pa.table(
        {
            "predicate": [f[0] for f in facts],
            "src": [f[1] for f in facts],
            "dst": [f[2] for f in facts],
            "rule": [f[3] for f in facts],
            "premises": [json.dumps(f[4], ensure_ascii=False) for f in facts],
            "value": [f[5] for f in facts],
        },
        schema=INFERRED,
    )


def _blocks(store: SQLiteStore) -> int:
    return int(store._conn.execute("SELECT count(*) FROM inferred_blocks").fetchone()[0])


@pytest.fixture()
def people(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "kg.db")
    ids = [f"p{i}" for i in range(40)]
    store.upsert_nodes(Label.PERSON, pa.table({"id": ids}))
    yield store
    store.close()


def _edge(src: str, dst: str, key: str) -> dict[str, object]:
    return {"kind": "edge", "type": "GUARANTEES", "src": src, "dst": dst, "key": key}


def test_every_fact_reads_back_its_own_premises_across_many_blocks(
    people: SQLiteStore,
) -> None:
    # 40 x 39 facts with premises of ~2 KB each: more than one block of 1,024 facts
    facts = []
    for i in range(40):
        for j in range(40):
            if i != j:
                note = f"担保 {i}->{j} " + "x" * (i * 50)
                premises = [_edge(f"p{i}", f"p{j}", note), {"kind": "node", "id": f"p{j}"}]
                facts.append(("guaranteesVia", f"p{i}", f"p{j}", f"rule_{i % 3}", premises, None))
    people.replace_inferred(_rows(*facts))
    assert _blocks(people) > 1
    assert people.count_inferred() == len(facts)
    for pred, src, dst, rule, premises, _ in facts[::37]:
        (fact,) = people.get_inferred(src, pred, dst)
        assert (fact.rule, list(fact.premises)) == (rule, premises)


def test_a_rewritten_fact_has_the_new_premises_and_leaves_no_old_copy(
    people: SQLiteStore,
) -> None:
    people.replace_inferred(_rows(("controls", "p1", "p2", "old", [_edge("p1", "p2", "a")], 1.0)))
    assert _blocks(people) == 1
    people.apply_inferred_delta(
        _rows(("controls", "p1", "p2", "new", [_edge("p1", "p2", "b")], 2.0)),
        INFERRED.empty_table(),
    )
    (fact,) = people.get_inferred("p1", "controls", "p2")
    assert (fact.rule, fact.premises, fact.value) == ("new", (_edge("p1", "p2", "b"),), 2.0)
    assert (_blocks(people), people.count_inferred()) == (1, 1)


def test_retracted_facts_leave_reads_and_counts_and_a_full_replace_drops_their_rows(
    people: SQLiteStore,
) -> None:
    people.replace_inferred(
        _rows(
            ("controls", "p1", "p2", "r", [_edge("p1", "p2", "a")], None),
            ("controls", "p1", "p3", "r", [_edge("p1", "p3", "a")], None),
        )
    )
    gone = _rows(("controls", "p1", "p2", "r", [], None))
    people.apply_inferred_delta(INFERRED.empty_table(), gone)
    assert _blocks(people) == 1  # a small write never rewrites a block
    assert [f.premises for f in people.get_inferred("p1", "controls")] == [
        (_edge("p1", "p3", "a"),)
    ]
    assert people.count_inferred("controls") == 1
    people.apply_inferred_delta(
        INFERRED.empty_table(), _rows(("controls", "p1", "p3", "r", [], None))
    )
    assert (people.count_inferred(), people.get_inferred("p1")) == (0, [])
    assert sum(b.num_rows for b in people.inferred_batches()) == 0
    people.replace_inferred(_rows(("familyOf", "p4", "p5", "r", [], None)))
    assert _blocks(people) == 1
    assert int(people._conn.execute("SELECT count(*) FROM inferred_rows").fetchone()[0]) == 0


def test_a_delta_adds_new_keys_and_overrides_stored_ones_in_every_read(
    people: SQLiteStore,
) -> None:
    people.replace_inferred(
        _rows(
            ("controls", "p1", "p2", "old", [_edge("p1", "p2", "a")], 1.0),
            ("controls", "p3", "p4", "old", [_edge("p3", "p4", "a")], 2.0),
        )
    )
    people.apply_inferred_delta(
        _rows(
            ("controls", "p1", "p2", "new", [_edge("p1", "p2", "b")], 5.0),
            ("controls", "p1", "p5", "new", [_edge("p1", "p5", "c")], None),
        ),
        INFERRED.empty_table(),
    )
    facts = people.get_inferred("p1", "controls")
    assert [(f.dst, f.rule, f.premises, f.value) for f in facts] == [
        ("p2", "new", (_edge("p1", "p2", "b"),), 5.0),
        ("p5", "new", (_edge("p1", "p5", "c"),), None),
    ]
    assert people.count_inferred("controls") == people.count_inferred() == 3
    batches = pa.concat_tables(people.inferred_batches("controls")).to_pylist()
    nid = {f"p{i}": _nid(people, f"p{i}") for i in range(1, 6)}
    assert sorted((b["src"], b["dst"], b["rule"], b["value"]) for b in batches) == sorted(
        [
            (nid["p1"], nid["p2"], "new", 5.0),
            (nid["p1"], nid["p5"], "new", None),
            (nid["p3"], nid["p4"], "old", 2.0),
        ]
    )


def test_counts_stay_exact_when_another_connection_rewrites_the_blocks(
    people: SQLiteStore, tmp_path: Path
) -> None:
    # `people` remembers which keys its blocks hold; another store on the same file then
    # replaces the blocks, and a failed write rolls back on `people`
    people.replace_inferred(_rows(("controls", "p1", "p2", "r", [], None)))
    people.prepare_inferred_deltas()
    people.apply_inferred_delta(
        _rows(("controls", "p1", "p3", "r", [], None)), INFERRED.empty_table()
    )
    assert people.count_inferred() == 2
    other = SQLiteStore(tmp_path / "kg.db")
    other.replace_inferred(_rows(("controls", "p1", "p4", "r", [], None)))
    other.close()
    # p1->p4 is in a block now, p1->p2 is not: an override and a retraction count so
    people.apply_inferred_delta(
        _rows(("controls", "p1", "p4", "s", [], None)), INFERRED.empty_table()
    )
    assert people.count_inferred() == 1
    people.apply_inferred_delta(
        INFERRED.empty_table(), _rows(("controls", "p1", "p2", "", [], None))
    )
    assert people.count_inferred() == 1
    with pytest.raises(RuntimeError), people.transaction():
        people.replace_inferred(_rows(("controls", "p5", "p6", "r", [], None)))
        people.apply_inferred_delta(
            _rows(("controls", "p5", "p6", "s", [], None)), INFERRED.empty_table()
        )
        raise RuntimeError("the job fails after its writes")
    people.apply_inferred_delta(
        _rows(("controls", "p5", "p6", "s", [], None)), INFERRED.empty_table()
    )
    assert people.count_inferred() == 2
    assert sorted(f.dst for f in people.get_inferred("p1")) == ["p4"]


def test_the_last_of_equal_keys_in_one_batch_wins(people: SQLiteStore) -> None:
    written = people.replace_inferred(
        _rows(
            ("familyOf", "p1", "p2", "first", [_edge("p1", "p2", "1")], None),
            ("familyOf", "p1", "p2", "second", [_edge("p1", "p2", "2")], None),
        )
    )
    assert written == 2  # rows handed over, as before
    (fact,) = people.get_inferred("p1", "familyOf", "p2")
    assert (fact.rule, fact.premises) == ("second", (_edge("p1", "p2", "2"),))


def test_replacing_some_predicates_keeps_the_others_with_their_premises(
    people: SQLiteStore,
) -> None:
    people.replace_inferred(
        _rows(
            ("controls", "p1", "p2", "r1", [_edge("p1", "p2", "c")], None),
            ("familyOf", "p1", "p3", "r2", [_edge("p1", "p3", "f")], None),
        )
    )
    people.replace_inferred(
        _rows(("controls", "p4", "p5", "r3", [_edge("p4", "p5", "c2")], None)), ["controls"]
    )
    assert people.count_inferred("controls") == 1
    assert people.get_inferred("p1", "controls") == []
    (family,) = people.get_inferred("p1", "familyOf")
    assert family.premises == (_edge("p1", "p3", "f"),)
    batches = pa.concat_tables(people.inferred_batches())
    assert batches.column("predicate").to_pylist() == ["controls", "familyOf"]  # name order
    assert batches.column("rule").to_pylist() == ["r3", "r2"]


def _schema_1_file(path: Path) -> None:
    """A store file as riskgraph wrote it before schema 2: premises inline as JSON text."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sql.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    for nid, node_id in enumerate(["P1", "P2", "C1"], start=1):
        label = "Company" if node_id.startswith("C") else "Person"
        conn.execute("INSERT INTO nodes (nid, id, label) VALUES (?, ?, ?)", (nid, node_id, label))
    conn.executemany(
        "INSERT INTO inferred (predicate, src, dst, rule, premises, value) VALUES (?,?,?,?,?,?)",
        [
            ("controls", 1, 3, "control_majority", json.dumps([_edge("P1", "C1", "")]), None),
            ("effectiveShare", 1, 3, "ownership:effective_share", "[]", 55.5),
            ("familyOf", 1, 2, "family_spouse", json.dumps([{"kind": "node", "id": "P2"}]), None),
        ],
    )
    conn.close()


def test_a_schema_1_store_keeps_its_inferred_facts(tmp_path: Path) -> None:
    _schema_1_file(tmp_path / "old.db")
    store = SQLiteStore(tmp_path / "old.db")
    assert store.schema_version() == SCHEMA_VERSION
    assert store.count_inferred() == 3
    assert store.count_inferred("controls") == 1
    (control,) = store.get_inferred("P1", "controls", "C1")
    assert (control.rule, control.premises) == ("control_majority", (_edge("P1", "C1", ""),))
    (share,) = store.get_inferred("P1", "effectiveShare")
    assert share.value == 55.5
    batches = pa.concat_tables(store.inferred_batches()).to_pylist()
    assert [(b["predicate"], b["src"], b["dst"], b["rule"]) for b in batches] == [
        ("controls", 1, 3, "control_majority"),
        ("effectiveShare", 1, 3, "ownership:effective_share"),
        ("familyOf", 1, 2, "family_spouse"),
    ]
    # a carried-over fact is replaced like any other
    store.apply_inferred_delta(
        _rows(("controls", "P1", "C1", "control_actual", [_edge("P1", "C1", "x")], None)),
        _rows(("familyOf", "P1", "P2", "", [], None)),
    )
    (control,) = store.get_inferred("P1", "controls", "C1")
    assert (control.rule, control.premises) == ("control_actual", (_edge("P1", "C1", "x"),))
    assert store.get_inferred("P1", "familyOf") == []
    store.close()


def _schema_3_file(path: Path) -> list[list[dict[str, object]]]:
    """A store file as riskgraph wrote it with schema 3: premises JSON in a zstd segment
    (int64 offsets, then the texts), one carried-over row with its premises inline."""
    conn = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2, 3):
        for statement in sql.MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '3')")
    for nid, node_id in enumerate(["P1", "P2", "C1", "C2"], start=1):
        label = "Company" if node_id.startswith("C") else "Person"
        conn.execute("INSERT INTO nodes (nid, id, label) VALUES (?, ?, ?)", (nid, node_id, label))
    terms = ["connectedClient", "controls", "control_majority", "r_inline", "symmetric"]
    conn.executemany("INSERT INTO inferred_terms (name) VALUES (?)", [(t,) for t in terms])
    code = dict(conn.execute("SELECT name, code FROM inferred_terms").fetchall())
    premises = [
        [_edge("P1", "C1", "")],
        [_edge("P1", "C2", "k"), {"kind": "node", "id": "C2"}],
        [{"kind": "inferred", "predicate": "controls", "src": "P1", "dst": "C1"}],
    ]
    texts = [json.dumps(p).encode() for p in premises]
    offsets = [0]
    for text in texts:
        offsets.append(offsets[-1] + len(text))
    body = b"".join(o.to_bytes(8, "little") for o in offsets) + b"".join(texts)
    packed = pa.compress(body, codec="zstd", asbytes=True)
    conn.execute(
        "INSERT INTO inferred_premises (segment, items, size, live, body) VALUES (1, 3, ?, 3, ?)",
        (len(body), packed),
    )
    rows = [
        ("controls", 1, 3, "control_majority", None, 1, 0),
        ("controls", 1, 4, "control_majority", 51.0, 1, 1),
        ("connectedClient", 3, 4, "symmetric", None, 1, 2),
    ]
    conn.executemany(
        "INSERT INTO inferred (predicate, src, dst, rule, value, segment, item) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(code[p], s, d, code[r], v, seg, item) for p, s, d, r, v, seg, item in rows],
    )
    inline = [_edge("P2", "C1", "x")]
    conn.execute(
        "INSERT INTO inferred (predicate, src, dst, rule, premises) VALUES (?, 2, 3, ?, ?)",
        (code["controls"], code["r_inline"], json.dumps(inline)),
    )
    conn.close()
    return [*premises, inline]


def test_a_schema_3_store_keeps_its_inferred_facts_and_premises(tmp_path: Path) -> None:
    premises = _schema_3_file(tmp_path / "v3.db")
    store = SQLiteStore(tmp_path / "v3.db")
    assert store.schema_version() == SCHEMA_VERSION
    assert (store.count_inferred(), store.count_inferred("controls")) == (4, 3)
    facts = {(f.predicate, f.src, f.dst): f for f in store.get_inferred("P1")}
    facts |= {(f.predicate, f.src, f.dst): f for f in store.get_inferred("P2")}
    facts |= {(f.predicate, f.src, f.dst): f for f in store.get_inferred("C1")}
    assert {k: (f.rule, list(f.premises), f.value) for k, f in facts.items()} == {
        ("controls", "P1", "C1"): ("control_majority", premises[0], None),
        ("controls", "P1", "C2"): ("control_majority", premises[1], 51.0),
        ("connectedClient", "C1", "C2"): ("symmetric", premises[2], None),
        ("controls", "P2", "C1"): ("r_inline", premises[3], None),
    }
    tables = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master")}
    assert {"inferred", "inferred_premises"}.isdisjoint(tables)
    # the derivation of the carried-over symmetric fact still expands through its premise
    tree = explain(store, "C1", "connectedClient", "C2")
    assert tree is not None
    assert [(c.predicate, c.args, c.rule) for c in tree.children] == [
        ("controls", ["P1", "C1"], "control_majority")
    ]
    store.close()


def test_materialised_premises_read_back_exactly_as_derived(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(
        Label.PERSON, pa.table({"id": ["a", "b"], "_source": ["p.csv"] * 2, "_line": [2, 3]})
    )
    store.upsert_nodes(Label.COMPANY, pa.table({"id": ["x", "y", "z"]}))
    store.upsert_edges(
        RelType.HOLDS_SHARES,
        pa.table(
            {
                "src": ["a", "x", "b", "y"],
                "dst": ["x", "y", "y", "z"],
                "key": [""] * 4,
                "share_pct": [60.0, 30.0, 25.0, 51.0],
                "_source": ["s.csv"] * 4,
                "_line": [2, 3, 4, 5],
            }
        ),
    )
    store.upsert_edges(
        RelType.RELATIVE_OF,
        pa.table({"src": ["a"], "dst": ["b"], "key": [""], "relation": ["spouse"]}),
    )
    materialise(store)
    # the derivations as the reasoner hands them over, before the store sees them
    kg = load_graph(store)
    kg.engine.run()
    expected = kg.inferred_table().to_pylist()
    assert store.count_inferred() == len(expected)
    for row in expected:
        (fact,) = store.get_inferred(row["src"], row["predicate"], row["dst"])
        assert (fact.rule, list(fact.premises)) == (row["rule"], json.loads(row["premises"]))
    # a holds 60% of x: control rests on that one shareholding row
    tree = explain(store, "a", "controls", "x")
    assert tree is not None
    assert {(leaf.source, leaf.line) for leaf in tree.leaves()} == {("s.csv", 2)}
    store.close()


def test_a_generated_bank_reads_back_every_derivation_the_reasoner_spells_as_json(
    tmp_path: Path,
) -> None:
    # The structured write must render, fact by fact, the JSON derivations of the reasoner
    # (the path every other store takes): same facts, rules, values and premises.
    generate_bank(tmp_path, customers=1500, seed=11, bad_rows=False, progress=False)
    store = SQLiteStore(tmp_path / "kg.db")
    ingest_directory(store, tmp_path)
    summary = materialise(store)
    kg = load_graph(store)
    kg.engine.run()
    expected = kg.inferred_table().to_pylist()
    assert summary.written == store.count_inferred() == len(expected)
    kinds = set()
    by_src: dict[str, list[dict[str, object]]] = {}
    for row in expected:
        by_src.setdefault(row["src"], []).append(row)
    for src, rows in by_src.items():
        stored = {(f.predicate, f.dst): f for f in store.get_inferred(src)}
        assert len(stored) == len(rows)
        for row in rows:
            fact = stored[(row["predicate"], row["dst"])]
            premises = json.loads(row["premises"])
            assert (fact.rule, list(fact.premises)) == (row["rule"], premises)
            assert fact.value == (None if row["value"] is None else pytest.approx(row["value"]))
            kinds |= {p["kind"] for p in premises}
    assert kinds == {"edge", "node", "inferred", "derived"}  # every shape was exercised
    batches = pa.concat_tables(store.inferred_batches(batch_size=1000))
    stored_keys = zip(
        batches.column("predicate").to_pylist(), batches.column("rule").to_pylist(), strict=True
    )
    assert sorted(stored_keys) == sorted((row["predicate"], row["rule"]) for row in expected)
    store.close()


def _column_part(predicate: str, pairs: list[tuple[int, int]]) -> InferredColumns:
    """Facts `predicate(src, dst)` by nid, each resting on the GUARANTEES edge between them."""
    n = len(pairs)
    names = [predicate, "rule_g", "GUARANTEES"]
    premises = Premises(
        np.arange(n + 1, dtype=np.int64),
        np.full(n, PremiseKind.EDGE, np.int8),
        np.full(n, 2, np.int32),
        np.full(n, -1, np.int32),
        np.array([s for s, _ in pairs], np.int32),
        np.array([d for _, d in pairs], np.int32),
        np.ones(n, np.int32),
        pa.array([f"g{s}-{d}" for s, d in pairs], pa.large_string()),
    )
    return InferredColumns(
        predicate,
        np.array([s for s, _ in pairs], np.int64),
        np.array([d for _, d in pairs], np.int64),
        np.ones(n, np.int32),
        np.full(n, np.nan),
        premises,
        names,
    )


def _nid(store: SQLiteStore, node_id: str) -> int:
    return int(store._conn.execute("SELECT nid FROM nodes WHERE id = ?", (node_id,)).fetchone()[0])


def test_column_parts_read_back_with_their_structured_premises(people: SQLiteStore) -> None:
    p1, p2, p3 = (_nid(people, f"p{i}") for i in (1, 2, 3))
    parts = [_column_part("guaranteesVia", [(p1, p2)]), _column_part("guaranteesVia", [(p1, p3)])]
    assert people.replace_inferred_columns(iter(parts)) == 2
    facts = people.get_inferred("p1", "guaranteesVia")
    assert [(f.dst, f.rule, f.premises, f.value) for f in facts] == [
        ("p2", "rule_g", (_edge("p1", "p2", f"g{p1}-{p2}"),), None),
        ("p3", "rule_g", (_edge("p1", "p3", f"g{p1}-{p3}"),), None),
    ]


def test_a_failed_column_write_leaves_the_previous_facts(people: SQLiteStore) -> None:
    people.replace_inferred(_rows(("controls", "p1", "p2", "r", [_edge("p1", "p2", "a")], None)))
    p3, p4 = _nid(people, "p3"), _nid(people, "p4")

    def parts() -> Iterator[InferredColumns]:
        yield _column_part("guaranteesVia", [(p3, p4)])
        raise RuntimeError("the reasoner failed half-way")

    with pytest.raises(RuntimeError):
        people.replace_inferred_columns(parts())
    assert people.count_inferred() == 1
    (fact,) = people.get_inferred("p1")
    assert (fact.predicate, fact.premises) == ("controls", (_edge("p1", "p2", "a"),))


def test_column_parts_out_of_key_order_are_refused_and_change_nothing(
    people: SQLiteStore,
) -> None:
    p1, p2, p3 = (_nid(people, f"p{i}") for i in (1, 2, 3))
    with pytest.raises(StoreError, match="key order"):
        people.replace_inferred_columns(iter([_column_part("guaranteesVia", [(p2, p3), (p1, p2)])]))
    with pytest.raises(StoreError, match="consecutive"):
        parts = [_column_part(p, [(p1, p2)]) for p in ("a", "b", "a")]
        people.replace_inferred_columns(iter(parts))
    assert people.count_inferred() == 0


def test_every_premise_record_kind_renders_as_its_premise_dict() -> None:
    # one fact, its premises in preorder: an edge, a node with a property, a derived helper
    # (args, rule, two premises of its own: an inferred fact and a derived leaf without
    # premises), and a premise given as JSON; a second fact given as a JSON list
    kind = [
        PremiseKind.EDGE,
        PremiseKind.NODE,
        PremiseKind.DERIVED,
        PremiseKind.INFERRED,
        PremiseKind.DERIVED_LEAF,
        PremiseKind.JSON,
        PremiseKind.JSON_LIST,
    ]
    texts = ["g1", "", '["P1", 3]', "", "[]", '{"kind": "inferred", "src": "x"}', '[{"a": 1}]']
    premises = Premises(
        np.array([0, 6, 7], np.int64),
        np.array(kind, np.int8),
        np.array([10, 11, 12, 13, 14, -1, -1], np.int32),
        np.array([-1, -1, 20, -1, -1, -1, -1], np.int32),
        np.array([1, 2, 0, 1, 0, 0, 0], np.int32),
        np.array([3, 0, 0, 3, 0, 0, 0], np.int32),
        np.array([1, 1, 3, 1, 1, 1, 1], np.int32),
        pa.array(texts, pa.large_string()),
    )
    facts = blocks.Facts(
        np.array([1, 1], np.int64),
        np.array([3, 4], np.int64),
        np.array([20, 20], np.int32),
        np.array([np.nan, 2.5]),
        premises,
    )
    (first, last, rows, srcs, keys, body) = blocks.encode_block(facts)
    assert (first, last, rows) == (1, 1, 2) and blocks.holds_src(srcs, 1)
    assert not blocks.holds_src(srcs, 2)
    decoded = blocks.decode_block(rows, keys, body)
    names = {10: "GUARANTEES", 11: "phone", 12: "phoneHolders", 13: "controls", 14: "sharePct"}
    names[20] = "shared_phone"
    ids = {1: "P1", 2: "P2", 3: "C3"}
    assert blocks.render_premises(decoded.premises, 0, names, ids.get) == [
        {"kind": "edge", "type": "GUARANTEES", "src": "P1", "dst": "C3", "key": "g1"},
        {"kind": "node", "id": "P2", "prop": "phone"},
        {
            "kind": "derived",
            "predicate": "phoneHolders",
            "args": ["P1", 3],
            "rule": "shared_phone",
            "premises": [
                {"kind": "inferred", "predicate": "controls", "src": "P1", "dst": "C3"},
                {"kind": "derived", "predicate": "sharePct", "args": [], "rule": None},
            ],
        },
        {"kind": "inferred", "src": "x"},
    ]
    assert blocks.render_premises(decoded.premises, 1, names, ids.get) == [{"a": 1}]
    assert decoded.value[1] == 2.5 and np.isnan(decoded.value[0])
