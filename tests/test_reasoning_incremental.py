"""Incremental reasoning: after any inserts and deletes, the closure equals a full run."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning.datalog import parse_rules
from reasoning.engine import Engine
from reasoning.incremental import IncrementalReasoner

# OWL-style axioms as rules (sub-property, inverse, symmetric, transitive, chains including
# self-referential ones, domain, range, sub-class), a rule with a comparison and a negation.
RULES = parse_rules(
    """
    controls(X, Y) :- directlyControls(X, Y).
    controls(X, Z) :- controls(X, Y), controls(Y, Z).
    controlledBy(Y, X) :- controls(X, Y).
    controls(Y, X) :- controlledBy(X, Y).
    sameControllerAs(X, Z) :- controlledBy(X, Y), controls(Y, Z).
    spouseOf(Y, X) :- spouseOf(X, Y).
    familyOf(X, Y) :- spouseOf(X, Y).
    familyOf(X, Z) :- familyOf(X, Y), familyOf(Y, Z).
    reach(X, Z) :- link(X, Y), reach(Y, Z).
    reach(X, Y) :- link(X, Y).
    party(X) :- controls(X, _).
    party(Y) :- controls(_, Y).
    entity(X) :- party(X).
    loop(X) :- controls(X, X), X != 3.
    top(X) :- party(X), not controlledAny(X).
    controlledAny(Y) :- controls(_, Y).
    """
)
PREDS = ["directlyControls", "spouseOf", "link", "controls"]
pair = st.tuples(st.integers(0, 6), st.integers(0, 6))
op = st.tuples(
    st.sampled_from(["insert", "delete"]), st.sampled_from(PREDS), st.lists(pair, max_size=4)
)


def _state(engine: Engine) -> dict[str, set[tuple[object, ...]]]:
    out = {}
    for pred in engine.relations:
        cols = engine.rows(pred)
        out[pred] = set(zip(*(c.tolist() for c in cols), strict=True)) if cols else set()
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(op, min_size=1, max_size=10))
def test_incremental_closure_equals_full_rematerialisation(
    ops: list[tuple[str, str, list[tuple[int, int]]]],
) -> None:
    inc = IncrementalReasoner(RULES)
    base: dict[str, set[tuple[int, int]]] = {p: set() for p in PREDS}
    for kind, pred, rows in ops:
        cols = ([r[0] for r in rows], [r[1] for r in rows])
        if kind == "insert":
            inc.update(insert={pred: cols})
            base[pred] |= set(rows)
        else:
            inc.update(delete={pred: cols})
            base[pred] -= set(rows)
        full = Engine(RULES)
        for p, facts in base.items():
            if facts:
                full.add_facts(p, [a for a, _ in facts], [b for _, b in facts])
        full.run()
        assert _state(inc.engine) == {
            p: s for p, s in _state(full).items() if p in inc.engine.relations
        }


def test_deleting_one_of_two_derivations_keeps_the_fact() -> None:
    inc = IncrementalReasoner(RULES)
    inc.update(insert={"directlyControls": ([0, 0, 1], [1, 2, 2])})
    change = inc.update(delete={"directlyControls": ([0], [2])})
    assert (0, 2) in _state(inc.engine)["controls"]
    assert "controls" not in change.removed


def test_delete_reports_the_facts_that_went_away() -> None:
    inc = IncrementalReasoner(RULES)
    inc.update(insert={"directlyControls": ([0, 1], [1, 2])})
    change = inc.update(delete={"directlyControls": ([1], [2])})
    removed = set(zip(*(c.tolist() for c in change.removed["controls"]), strict=True))
    assert removed == {(1, 2), (0, 2)}
