"""Incremental reasoning: after any inserts and deletes, the closure equals a full run."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoning import engine as engine_module
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


@pytest.fixture(params=["scan", "index"])
def joins(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Joins of an update read whole relations ("scan"), or always fetch rows through the
    column indexes ("index"; the test relations are too small for the size rule to)."""
    if request.param == "index":
        monkeypatch.setattr(engine_module, "_PROBE_RATIO", 0)
    return str(request.param)


def _state(engine: Engine) -> dict[str, set[tuple[object, ...]]]:
    out = {}
    for pred in engine.relations:
        cols = engine.rows(pred)
        out[pred] = set(zip(*(c.tolist() for c in cols), strict=True)) if cols else set()
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(op, min_size=1, max_size=10))
def test_incremental_closure_equals_full_rematerialisation(
    joins: str, ops: list[tuple[str, str, list[tuple[int, int]]]]
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


# Control through summed votes (a recursive stratum with an aggregate), a count with a
# non-monotone cap feeding a rule below it (a changed count removes and adds facts), and
# rules above both.
AGGREGATE_RULES = parse_rules(
    """
    directlyControls(X, C) :- vote(X, C, V), V > 50.
    controls(X, C) :- directlyControls(X, C).
    controls(X, Z) :- controls(X, Y), controls(Y, Z).
    commanded(X, C, X, V) :- vote(X, C, V).
    commanded(X, C, Y, V) :- controls(X, Y), vote(Y, C, V), X != C.
    power(X, C, sum(V)) :- commanded(X, C, _, V).
    controls(X, C) :- power(X, C, T), T > 50, X != C.
    sameController(X, Y) :- controls(P, X), controls(P, Y), X != Y.
    users(D, count(X)) :- uses(X, D).
    sharesDevice(X, Y) :- uses(X, D), users(D, K), K <= 2, uses(Y, D), X != Y.
    linked(X, Y) :- sharesDevice(X, Y).
    linked(X, Y) :- sameController(X, Y).
    """
)
vote = st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([20.0, 30.0, 60.0]))
use = st.tuples(st.integers(0, 4), st.integers(10, 11))
aggregate_op = st.one_of(
    st.tuples(st.sampled_from(["insert", "delete"]), st.just("vote"), st.lists(vote, max_size=4)),
    st.tuples(st.sampled_from(["insert", "delete"]), st.just("uses"), st.lists(use, max_size=3)),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(aggregate_op, min_size=1, max_size=10))
def test_incremental_aggregates_equal_full_rematerialisation(
    joins: str, ops: list[tuple[str, str, list[tuple[float, ...]]]]
) -> None:
    inc = IncrementalReasoner(AGGREGATE_RULES)
    base: dict[str, set[tuple[float, ...]]] = {"vote": set(), "uses": set()}
    for kind, pred, rows in ops:
        cols = tuple(list(c) for c in zip(*rows, strict=True)) if rows else ([], [])
        if pred == "vote" and not rows:
            cols = ([], [], [])
        if kind == "insert":
            inc.update(insert={pred: cols})
            base[pred] |= set(rows)
        else:
            inc.update(delete={pred: cols})
            base[pred] -= set(rows)
        full = Engine(AGGREGATE_RULES)
        for p, facts in base.items():
            if facts:
                full.add_facts(p, *(list(c) for c in zip(*facts, strict=True)))
        full.run()
        assert _state(inc.engine) == {
            p: s for p, s in _state(full).items() if p in inc.engine.relations
        }


def test_a_lost_vote_removes_control_gained_through_a_subsidiary() -> None:
    # 0 holds 60% of 1 and 30% of 2; 1 holds 30% of 2: 0 commands 60% of 2 and controls it
    inc = IncrementalReasoner(AGGREGATE_RULES)
    inc.update(insert={"vote": ([0, 0, 1], [1, 2, 2], [60.0, 30.0, 30.0])})
    assert (0, 2) in _state(inc.engine)["controls"]
    change = inc.update(delete={"vote": ([1], [2], [30.0])})
    assert (0, 2) not in _state(inc.engine)["controls"]
    assert (0, 2, 30.0) in _state(inc.engine)["power"]
    removed = set(zip(*(c.tolist() for c in change.removed["power"]), strict=True))
    assert (0, 2, 60.0) in removed


def test_a_third_device_user_unlinks_the_first_two() -> None:
    inc = IncrementalReasoner(AGGREGATE_RULES)
    inc.update(insert={"uses": ([0, 1], [10, 10])})
    assert _state(inc.engine)["sharesDevice"] == {(0, 1), (1, 0)}
    change = inc.update(insert={"uses": ([2], [10])})
    assert _state(inc.engine)["sharesDevice"] == set()
    assert set(zip(*(c.tolist() for c in change.removed["sharesDevice"]), strict=True)) == {
        (0, 1),
        (1, 0),
    }


def test_negated_fact_arriving_and_leaving_moves_the_top_controller() -> None:
    # top(X): a party nobody controls. 0 controls 1; then 2 comes to control 0, then goes.
    inc = IncrementalReasoner(RULES)
    inc.update(insert={"directlyControls": ([0], [1])})
    assert _state(inc.engine)["top"] == {(0,)}
    change = inc.update(insert={"directlyControls": ([2], [0])})
    assert _state(inc.engine)["top"] == {(2,)}
    assert set(change.removed["top"][0].tolist()) == {0}
    assert set(change.added["top"][0].tolist()) == {2}
    change = inc.update(delete={"directlyControls": ([2], [0])})
    assert _state(inc.engine)["top"] == {(0,)}
    assert set(change.added["top"][0].tolist()) == {0}
