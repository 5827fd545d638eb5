"""The Datalog engine: parser, joins, semi-naive fixpoint, negation, aggregation."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning.datalog import Aggregate, RuleSyntaxError, parse_rules
from reasoning.engine import (
    Engine,
    EngineError,
    Relation,
    first_positions,
    first_unique,
    sorted_order,
    unique_first_inverse,
    unique_keys,
)


def _pairs(engine: Engine, pred: str) -> set[tuple[object, ...]]:
    cols = engine.rows(pred)
    return set(zip(*(c.tolist() for c in cols), strict=True)) if cols else set()


def _run(text: str, **facts: tuple[list[object], ...]) -> Engine:
    engine = Engine(parse_rules(text))
    for pred, cols in facts.items():
        engine.add_facts(pred, *cols)
    engine.run()
    return engine


def test_parser_reads_labels_comparisons_negation_and_aggregates() -> None:
    rules = parse_rules(
        """
        % comment
        r1: p(X, Y) :- q(X, Y, V), V >= 5, not r(X), X != Y.
        total(X, sum(V)) :- q(X, _, V).
        """,
        "t.dl",
    )
    assert [r.id for r in rules] == ["r1", "t.dl:4"]
    assert isinstance(rules[1].head_args[1], Aggregate)
    assert len(rules[0].positives) == 1


def test_parser_rejects_unbound_head_variable() -> None:
    with pytest.raises(RuleSyntaxError, match="unsafe"):
        parse_rules("p(X, Y) :- q(X).")


def test_parser_reports_line_of_syntax_error() -> None:
    with pytest.raises(RuleSyntaxError, match=r"x\.dl:2"):
        parse_rules("p(X) :- q(X).\np(X :- q(X).", "x.dl")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=40))
def test_transitive_closure_matches_networkx_on_cyclic_graphs(
    edges: list[tuple[int, int]],
) -> None:
    engine = _run("t(X, Y) :- e(X, Y).\nt(X, Z) :- t(X, Y), t(Y, Z).", e=_cols(edges, 2))
    graph = nx.DiGraph(edges)
    expected = {(a, b) for a in graph for b in nx.descendants(graph, a)} | {
        (a, a) for a in graph if _on_cycle(graph, a)
    }
    assert _pairs(engine, "t") == expected


def _on_cycle(graph: nx.DiGraph, node: int) -> bool:
    return graph.has_edge(node, node) or any(
        node in nx.descendants(graph, s) for s in graph.successors(node)
    )


def _cols(rows: list[tuple[int, ...]], arity: int) -> tuple[list[object], ...]:
    return tuple([r[k] for r in rows] for k in range(arity))


def test_self_referential_chain_terminates_and_is_the_transitive_closure() -> None:
    # p ⊒ p∘p is transitivity written as a chain; q ⊒ r∘q is left-recursive
    engine = _run(
        "p(X, Z) :- p(X, Y), p(Y, Z).\nq(X, Z) :- r(X, Y), q(Y, Z).",
        p=([0, 1, 2], [1, 2, 0]),
        r=([5, 6], [6, 5]),
        q=([5], [7]),
    )
    assert _pairs(engine, "p") == set(itertools.product([0, 1, 2], repeat=2))
    assert _pairs(engine, "q") == {(5, 7), (6, 7)}


def test_three_way_join_with_repeated_variable_and_constant() -> None:
    engine = _run(
        "tri(X, Y, Z) :- e(X, Y), e(Y, Z), e(Z, X).\nloop(X) :- e(X, X).\nfrom1(Y) :- e(1, Y).",
        e=([0, 1, 2, 3, 1], [1, 2, 0, 3, 3]),
    )
    assert _pairs(engine, "tri") == {(0, 1, 2), (1, 2, 0), (2, 0, 1), (3, 3, 3)}
    assert _pairs(engine, "loop") == {(3,)}
    assert _pairs(engine, "from1") == {(2,), (3,)}


def test_comparisons_filter_numeric_values() -> None:
    engine = _run(
        "big(X, C) :- share(X, C, V), V > 50.", share=([0, 1, 2], [9, 9, 9], [50.0, 50.5, 80])
    )
    assert _pairs(engine, "big") == {(1, 9), (2, 9)}


def test_stratified_negation_sees_the_complete_lower_stratum() -> None:
    engine = _run(
        "reach(X) :- root(X).\nreach(Y) :- reach(X), e(X, Y).\n"
        "unreached(X) :- node(X), not reach(X).",
        root=([0],),
        e=([0, 1], [1, 2]),
        node=([0, 1, 2, 3, 4],),
    )
    assert _pairs(engine, "unreached") == {(3,), (4,)}


def test_negation_through_recursion_is_rejected() -> None:
    with pytest.raises(EngineError, match="negation"):
        Engine(parse_rules("p(X) :- n(X), not q(X).\nq(X) :- n(X), not p(X)."))


def test_sum_counts_each_distinct_body_binding_once() -> None:
    engine = _run(
        "total(C, sum(V)) :- votes(X, C, V).\nn(C, count(X)) :- votes(X, C, _).",
        votes=([1, 2, 3, 3], [9, 9, 9, 8], [20.0, 20.0, 15.0, 5.0]),
    )
    assert _pairs(engine, "total") == {(9, 55.0), (8, 5.0)}
    assert _pairs(engine, "n") == {(9, 3.0), (8, 1.0)}


def test_recursive_aggregation_reaches_the_fixpoint() -> None:
    # x=0 holds 30% of c=3 and controls 1 (60%), 1 holds 15% of 3 and controls 2 (51%),
    # 2 holds 10% of 3: 30 + 15 + 10 = 55 > 50 only once 2 is known to be controlled.
    engine = _run(
        """
        cv(X, C, X, V) :- vote(X, C, V).
        cv(X, C, Y, V) :- ctl(X, Y), vote(Y, C, V).
        power(X, C, sum(V)) :- cv(X, C, _, V).
        ctl(X, C) :- power(X, C, T), T > 50.
        ctl(X, Z) :- ctl(X, Y), ctl(Y, Z).
        """,
        vote=([0, 0, 1, 1, 2], [3, 1, 3, 2, 3], [30.0, 60.0, 15.0, 51.0, 10.0]),
    )
    assert (0, 3) in _pairs(engine, "ctl")
    assert (0, 3, 55.0) in _pairs(engine, "power")
    assert (0, 3, 30.0) not in _pairs(engine, "power")


def test_every_derived_fact_records_rule_and_premises() -> None:
    engine = _run("t(X, Y) :- e(X, Y).\nt(X, Z) :- t(X, Y), e(Y, Z).", e=([0, 1], [1, 2]))
    rel = engine.relations["t"]
    row = int(rel.find([np.array([0]), np.array([2])])[0])
    rule = engine.rules[int(rel.rule[row])]
    assert rule.id.endswith(":2")
    premise_preds = [a.pred for a in rule.positives]
    rows = [
        engine.fid_row(p, int(f)) for p, f in zip(premise_preds, rel.premises[row], strict=True)
    ]
    assert [engine.relations[p].cols[1][r] for p, r in zip(premise_preds, rows, strict=True)] == [
        1,
        2,
    ]


def test_string_constants_use_the_symbol_table() -> None:
    engine = Engine(
        parse_rules('ctl(X, C) :- pos(X, C, "actual_controller").'), {"actual_controller": 7}
    )
    engine.add_facts("pos", [1, 2], [5, 5], [7, 8])
    engine.run()
    assert _pairs(engine, "ctl") == {(1, 5)}


def test_explain_engine_walks_back_to_explicit_facts() -> None:
    from reasoning.provenance import explain_engine

    engine = _run("t(X, Y) :- e(X, Y).\nt(X, Z) :- t(X, Y), e(Y, Z).", e=([0, 1], [1, 2]))
    tree = explain_engine(engine, "t", (0, 2))
    assert tree is not None
    assert sorted(leaf.args for leaf in tree.leaves()) == [[0, 1], [1, 2]]
    assert {leaf.rule for leaf in tree.leaves()} == {"explicit"}
    assert explain_engine(engine, "t", (2, 0)) is None


relation_step = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 6000)),
    st.tuples(st.just("keep"), st.integers(0, 2**32)),
    st.tuples(st.just("retire"), st.integers(0, 2**32)),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(relation_step, min_size=1, max_size=10), st.integers(0, 2**32))
def test_relation_indexes_agree_with_a_scan_after_appends_removals_and_retirements(
    steps: list[tuple[str, int]], seed: int
) -> None:
    # Enough rows that the appended tails are merged into both kinds of index.
    rng = np.random.default_rng(seed)
    rel = Relation("r", 2, 0)
    rel.coerce([np.zeros(1, np.int64), np.zeros(1, np.int64)])
    for kind, arg in steps:
        if kind == "append":
            cols = [rng.integers(0, 2000, arg), rng.integers(0, 2000, arg)]
            keys = rel.keys(cols)
            known = set(rel.keys(rel.cols)[rel.live_rows()].tolist())
            _, first = np.unique(keys, return_index=True)
            first = np.array([i for i in first if keys[i] not in known], np.int64)
            if not len(first):
                continue
            new = [c[first] for c in cols]
            order = np.argsort(rel.keys(new))
            new = [c[order] for c in new]
            n = len(order)
            rel.append(
                new,
                np.arange(n, dtype=np.int64),
                np.zeros(n, np.int32),
                np.empty((n, 0), np.int64),
                rel.keys(new),
            )
        elif len(rel):
            pick = np.random.default_rng(arg).random(len(rel)) < 0.2
            if kind == "keep":
                rel.keep(~pick)
            else:
                rel.retire(np.flatnonzero(pick))
        rel.index()
        rel.lookup(0, np.empty(0, np.int64))
    live = rel.live_rows()
    # live rows, rows removed or retired, and rows never there
    some = rng.integers(0, max(len(rel), 1), 300) if len(rel) else np.empty(0, np.int64)
    probe = [
        np.concatenate([rel.cols[0][some], rng.integers(0, 2000, 100)]),
        np.concatenate([rel.cols[1][some], rng.integers(0, 2000, 100)]),
    ]
    expected_rows = dict(zip(rel.keys(rel.cols)[live].tolist(), live.tolist(), strict=True))
    found = rel.find(probe)
    assert found.tolist() == [expected_rows.get(k, -1) for k in rel.keys(probe).tolist()]
    values = probe[0][::20]
    assert rel.lookup(0, values).tolist() == np.flatnonzero(np.isin(rel.cols[0], values)).tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]),
    st.integers(0, 3000),
    st.integers(0, 62),
    st.integers(0, 2**32),
)
def test_sorted_order_is_a_stable_argsort_for_every_int_dtype_and_range(
    dtype: str, n: int, bits: int, seed: int
) -> None:
    # Narrow ranges take the packed sort, ranges too wide for key and position the argsort.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    lo = max(int(info.min), -(2 ** min(bits, 62)))
    hi = min(int(info.max), lo + 2 ** min(bits, 62))
    keys = rng.integers(lo, hi, n, endpoint=True, dtype=dtype)
    keys[: n // 3] = keys[n // 3 : 2 * (n // 3)]  # duplicates for the tie order
    ordered, order = sorted_order(keys)
    expected = sorted(range(n), key=lambda i: (int(keys[i]), i))
    assert order.tolist() == expected
    assert ordered.dtype == keys.dtype
    assert ordered.tolist() == [keys[i] for i in expected]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2), st.integers(1, 4000), st.booleans(), st.integers(0, 2**32))
def test_relation_dedupes_rows_to_their_first_occurrence(
    arity: int, n: int, wide: bool, seed: int
) -> None:
    # ids from a narrow range (compact codes) or up to 2**31 (codes as wide as the keys)
    rng = np.random.default_rng(seed)
    top = 2**31 - 1 if wide else 50
    cols = [rng.integers(0, top, n) for _ in range(arity)]
    if n > 4:
        for c in cols:
            c[: n // 4] = c[n // 2 : n // 2 + n // 4]
    rel = Relation("r", arity, 0)
    cols = rel.coerce(cols)
    rows = list(zip(*(c.tolist() for c in cols), strict=True))
    firsts: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(rows):
        firsts.setdefault(row, i)
    codes = rel.sort_codes(cols)
    assert codes is not None
    first = first_positions(codes)
    assert [rows[i] for i in first.tolist()] == sorted(firsts)
    assert first.tolist() == [firsts[row] for row in sorted(firsts)]
    uniq, first_by_key = unique_keys(rel.keys(cols))
    assert first_by_key.tolist() == first.tolist()
    assert uniq.tolist() == rel.keys([c[first] for c in cols]).tolist()
    assert rows == list(zip(*(c.tolist() for c in cols), strict=True))  # columns untouched


def test_float_rows_dedupe_without_codes() -> None:
    rel = Relation("v", 2, 0)
    cols = rel.coerce([np.array([3, 1, 3, 1]), np.array([0.5, 2.0, 0.5, 2.5])])
    assert rel.sort_codes(cols) is None
    _, first = unique_keys(rel.keys(cols))
    assert sorted(first.tolist()) == [0, 1, 3]


def test_rows_added_to_an_empty_relation_are_found_by_key() -> None:
    engine = Engine([])
    first = engine.add_facts("e", [5, 1, 5, 9, 1], [2, 7, 2, 0, 7])
    second = engine.add_facts("e", [9, 4, 1], [0, 4, 7])
    assert first[0] == first[2] and first[1] == first[4]
    assert len(set(first.tolist())) == 3
    assert second[0] == first[3] and second[2] == first[1]
    assert second[1] not in first
    assert _pairs(engine, "e") == {(5, 2), (1, 7), (9, 0), (4, 4)}
    rel = engine.relations["e"]
    assert rel.find([np.array([4, 5, 2]), np.array([4, 2, 5])]).tolist()[2] == -1
    assert (rel.find(rel.cols) == np.arange(4)).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3000), st.sampled_from([4, 40, 2**40, 2**62]), st.integers(0, 2**32))
def test_unique_helpers_agree_with_numpy_unique_on_narrow_and_wide_keys(
    n: int, top: int, seed: int
) -> None:
    # keys of a wide range cannot be packed with their position: the argsort path
    keys = np.random.default_rng(seed).integers(-top, top, n)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    got_uniq, got_first = unique_keys(keys)
    assert got_uniq.tolist() == uniq.tolist() and got_first.tolist() == first.tolist()
    got = unique_first_inverse(keys)
    assert got[0].tolist() == uniq.tolist()
    assert got[1].tolist() == first.tolist()
    assert got[2].tolist() == inverse.ravel().tolist()
    assert first_unique(keys).tolist() == sorted(first.tolist())


def test_rules_undoing_one_another_are_the_inverse_and_symmetric_ones() -> None:
    rules = parse_rules(
        """
        by(Y, X) :- ctl(X, Y).
        ctl(X, Y) :- by(Y, X).
        sp(Y, X) :- sp(X, Y).
        same(X, Y) :- ctl(X, Y).
        ctl(X, Y) :- same(Y, X).
        r3(Z, X, Y) :- r3(X, Y, Z).
        w(X, Y) :- ctl(X, Y), X != Y.
        """
    )
    # `same` copies ctl and the way back swaps it: no undoing; a 3-cycle is not its own
    # inverse; a rule with a comparison is not a reordering
    assert Engine(rules).undoes == {0: frozenset({1}), 1: frozenset({0}), 2: frozenset({2})}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10)), max_size=30),
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10)), max_size=10),
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10)), max_size=10),
)
def test_inverse_of_a_transitive_property_and_a_symmetric_one_match_networkx(
    edges: list[tuple[int, int]], back: list[tuple[int, int]], links: list[tuple[int, int]]
) -> None:
    # explicit `by` facts reach ctl only through the inverse rule
    engine = _run(
        """
        ctl(X, Y) :- e(X, Y).
        ctl(X, Z) :- ctl(X, Y), ctl(Y, Z).
        by(Y, X) :- ctl(X, Y).
        ctl(X, Y) :- by(Y, X).
        sp(X, Y) :- s(X, Y).
        sp(Y, X) :- sp(X, Y).
        """,
        e=_cols(edges, 2),
        by=_cols(back, 2),
        s=_cols(links, 2),
    )
    graph = nx.DiGraph(edges + [(b, a) for a, b in back])
    closure = {(a, b) for a in graph for b in nx.descendants(graph, a)} | {
        (a, a) for a in graph if _on_cycle(graph, a)
    }
    assert _pairs(engine, "ctl") == closure
    assert _pairs(engine, "by") == {(b, a) for a, b in closure}
    assert _pairs(engine, "sp") == set(links) | {(b, a) for a, b in links}
