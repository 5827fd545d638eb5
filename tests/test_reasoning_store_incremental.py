"""Store-level incremental reasoning: after inserts and deletes of edges, the stored inferred
facts equal those a full `materialise` writes for the same edges."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import StoreError
from reasoning import premises
from reasoning.materialise import materialise
from reasoning.store_incremental import StoreReasoner

PERSONS = ["p0", "p1", "p2", "p3"]
COMPANIES = ["c0", "c1", "c2", "c3"]
DEVICES = ["d0", "d1"]
PARTIES = PERSONS + COMPANIES

Edge = tuple[RelType, str, str, float]

edge = st.one_of(
    st.tuples(
        st.just(RelType.HOLDS_SHARES),
        st.sampled_from(PARTIES),
        st.sampled_from(COMPANIES),
        st.sampled_from([20.0, 30.0, 60.0]),
    ),
    st.tuples(
        st.just(RelType.GUARANTEES),
        st.sampled_from(PARTIES),
        st.sampled_from(PARTIES),
        st.just(1.0),
    ),
    # One direction per pair of persons: a kinship recorded from both sides states the same
    # explicit facts twice, and the incremental reasoner does not count explicit support, so
    # deleting one of the two rows would retract facts the other still states (a known
    # limitation of `StoreReasoner`; the contract stores a kinship once).
    st.tuples(
        st.just(RelType.RELATIVE_OF),
        st.sampled_from(PERSONS[:2]),
        st.sampled_from(PERSONS[2:]),
        st.just(0.0),
    ),
    st.tuples(
        st.just(RelType.USES_DEVICE),
        st.sampled_from(PARTIES),
        st.sampled_from(DEVICES),
        st.just(0.0),
    ),
)
batch = st.tuples(st.lists(edge, max_size=5), st.lists(st.integers(0, 100), max_size=3))


def _store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    for label, ids in (
        (Label.PERSON, PERSONS),
        (Label.COMPANY, COMPANIES),
        (Label.DEVICE, DEVICES),
    ):
        store.upsert_nodes(
            label,
            pa.table(
                {
                    "id": ids,
                    "_source": ["n.csv"] * len(ids),
                    "_line": [2] * len(ids),
                    "_job": ["j"] * len(ids),
                }
            ),
        )
    return store


def _tables(edges: list[Edge]) -> dict[RelType, pa.Table]:
    out: dict[RelType, pa.Table] = {}
    for rel_type in RelType:
        rows = [e for e in edges if e[0] is rel_type]
        if not rows:
            continue
        cols: dict[str, list[object]] = {
            "src": [r[1] for r in rows],
            "dst": [r[2] for r in rows],
            "key": [""] * len(rows),
        }
        if rel_type is RelType.HOLDS_SHARES:
            cols["share_pct"] = cols["voting_pct"] = [r[3] for r in rows]
        elif rel_type is RelType.GUARANTEES:
            cols["key"] = cols["guarantee_id"] = [f"g-{r[1]}-{r[2]}" for r in rows]
        elif rel_type is RelType.RELATIVE_OF:
            cols["relation"] = ["spouse"] * len(rows)
        n = len(rows)
        cols |= {"_source": ["e.csv"] * n, "_line": list(range(2, n + 2)), "_job": ["j"] * n}
        out[rel_type] = pa.table(cols)
    return out


def _inferred(store: SQLiteStore) -> set[tuple[str, str, str, float | None]]:
    out = set()
    for entity in PARTIES:
        for fact in store.get_inferred(entity):
            value = None if fact.value is None else round(fact.value, 6)
            out.add((fact.predicate, fact.src, fact.dst, value))
    return out


def _aggregate_premises(store: SQLiteStore) -> dict[tuple[str, str], str]:
    """The premises of each stored aggregate fact (summed votes), as JSON text."""
    return {
        (fact.src, fact.dst): json.dumps(fact.premises, sort_keys=True)
        for entity in PARTIES
        for fact in store.get_inferred(entity, "votingPower")
    }


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(batch, min_size=1, max_size=3))
@pytest.mark.parametrize("few_groups", [16, 1], ids=["whole-aggregates", "group-bindings"])
def test_store_inferred_facts_equal_full_materialise_after_changes(
    tmp_path_factory: object,
    monkeypatch: pytest.MonkeyPatch,
    few_groups: int,
    batches: list[tuple[list[Edge], list[int]]],
) -> None:
    # few_groups=1: every aggregate fact's premises come from its groups' bindings alone
    monkeypatch.setattr(premises, "_FEW_GROUPS", few_groups)
    base = Path(tmp_path_factory.mktemp("inc"))  # type: ignore[attr-defined]
    live_store = _store(base / "live.db")
    live = StoreReasoner.open(live_store, write=True)
    current: dict[tuple[RelType, str, str], Edge] = {}
    for inserts, delete_picks in batches:
        present = sorted(current)
        gone = {present[i % len(present)] for i in delete_picks} if present else set()
        deleted = [current.pop(k) for k in sorted(gone)]
        new = {}
        for e in inserts:
            key = (e[0], e[1], e[2])
            if e[1] != e[2] and key not in current and key not in gone:
                new[key] = e
        current.update(new)
        live.apply_changes(inserted=_tables(list(new.values())), deleted=_tables(deleted))
    oracle = _store(base / "full.db")
    for rel_type, rows in _tables(list(current.values())).items():
        oracle.upsert_edges(rel_type, rows)
    materialise(oracle)
    assert _inferred(live_store) == _inferred(oracle)
    # the contributors of a sum, in one order whichever join found them
    assert _aggregate_premises(live_store) == _aggregate_premises(oracle)
    live_store.close()
    oracle.close()


def test_control_below_a_quarter_share_makes_a_ubo_and_its_loss_unmakes_it(
    tmp_path: Path,
) -> None:
    # p0 -60%-> c0 -60%-> c1 -60%-> c2: p0 controls c2 down the chain but owns only
    # 0.6³ = 21.6% of it, under the 25% UBO threshold: p0 is a UBO of c2 by control alone
    store = _store(tmp_path / "kg.db")
    live = StoreReasoner.open(store, write=True)
    chain = [(RelType.HOLDS_SHARES, "p0", "c0", 60.0), (RelType.HOLDS_SHARES, "c0", "c1", 60.0)]
    live.apply_changes(inserted=_tables(chain))
    assert ("beneficialOwnerOf", "p0", "c2", None) not in _inferred(store)
    last = [(RelType.HOLDS_SHARES, "c1", "c2", 60.0)]
    live.apply_changes(inserted=_tables(last))
    facts = _inferred(store)
    assert ("effectiveShare", "p0", "c2", 21.6) in facts
    assert ("beneficialOwnerOf", "p0", "c2", None) in facts
    live.apply_changes(deleted=_tables(last))
    facts = _inferred(store)
    assert not {f for f in facts if f[1:3] == ("p0", "c2")}
    assert ("beneficialOwnerOf", "p0", "c1", None) in facts
    store.close()


def test_summed_votes_list_their_contributors_as_a_full_run_does(tmp_path: Path) -> None:
    # p0 holds 60% of c1 (so controls it) and 30% of c0; c1 holds 30% of c0: p0 commands
    # 30 + 30 = 60% of c0's votes. The vote through c1 arrives first, p0's own vote in a later
    # update; the explanation of the sum must not depend on that order.
    store = _store(tmp_path / "live.db")
    live = StoreReasoner.open(store, write=True)
    shares = RelType.HOLDS_SHARES
    first = [(shares, "c1", "c0", 30.0), (shares, "p0", "c1", 60.0)]
    later = [(shares, "p0", "c0", 30.0)]
    live.apply_changes(inserted=_tables(first))
    live.apply_changes(inserted=_tables(later))
    oracle = _store(tmp_path / "full.db")
    for rel_type, rows in _tables(first + later).items():
        oracle.upsert_edges(rel_type, rows)
    materialise(oracle)
    (fact,) = store.get_inferred("p0", "votingPower", "c0")
    assert fact.value == 60.0
    assert sorted(p["rule"] for p in fact.premises) == ["commanded_own", "commanded_via"]
    assert _aggregate_premises(store) == _aggregate_premises(oracle)
    store.close()
    oracle.close()


def test_a_failed_update_leaves_the_store_as_it_was_and_the_reasoner_refuses_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path / "live.db")
    live = StoreReasoner.open(store, write=True)
    first = [(RelType.HOLDS_SHARES, "p0", "c0", 60.0)]
    live.apply_changes(inserted=_tables(first))
    before = _inferred(store)
    # An error before the fixpoint moves (an unknown edge end) costs nothing.
    with pytest.raises(StoreError, match="unknown nodes"):
        live.apply_changes(inserted=_tables([(RelType.HOLDS_SHARES, "p0", "nobody", 60.0)]))
    later = [(RelType.HOLDS_SHARES, "c0", "c1", 60.0)]

    def disk_full(added: pa.Table, removed: pa.Table) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "apply_inferred_delta", disk_full)
    with pytest.raises(StoreError, match="disk full"):
        live.apply_changes(inserted=_tables(later))
    monkeypatch.undo()
    assert _inferred(store) == before
    assert store.count_edges(RelType.HOLDS_SHARES) == 1
    # the engine moved before the write failed: it is out of step with the store
    with pytest.raises(StoreError, match="open a new one"):
        live.apply_changes(inserted=_tables(later))
    assert _inferred(store) == before
    StoreReasoner.open(store).apply_changes(inserted=_tables(later))
    oracle = _store(tmp_path / "full.db")
    for rel_type, rows in _tables(first + later).items():
        oracle.upsert_edges(rel_type, rows)
    materialise(oracle)
    assert _inferred(store) == _inferred(oracle)
    assert ("controls", "p0", "c1", None) in _inferred(store)
    store.close()
    oracle.close()
