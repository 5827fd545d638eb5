"""Guarantee circles and chains: hand-worked graphs, and networkx as the oracle."""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.guarantees import (
    GuaranteeGraph,
    chain_index,
    chain_through,
    guarantee_circles,
    longest_chains,
    strong_components,
)


def graph_of(edges: list[tuple[int, int, float]]) -> GuaranteeGraph:
    return GuaranteeGraph.from_edges(
        [a for a, _, _ in edges], [b for _, b, _ in edges], [v for _, _, v in edges]
    )


def as_nids(graph: GuaranteeGraph, positions: list[int]) -> list[int]:
    return [int(graph.nids[p]) for p in positions]


def test_three_company_circle_has_one_cycle_and_its_total() -> None:
    g = graph_of([(10, 11, 1.0), (11, 12, 2.0), (12, 10, 3.0), (12, 13, 9.0)])
    (circle,) = guarantee_circles(g)
    assert as_nids(g, circle.members) == [10, 11, 12]
    assert [as_nids(g, c) for c in circle.cycles] == [[10, 11, 12]]
    assert circle.total_amount == 6.0  # the guarantee to 13 leaves the circle
    assert circle.mutual_pairs == []


def test_mutual_pair_is_a_circle_with_one_mutual_pair() -> None:
    g = graph_of([(1, 2, 5.0), (2, 1, 7.0)])
    (circle,) = guarantee_circles(g)
    assert [tuple(as_nids(g, list(p))) for p in circle.mutual_pairs] == [(1, 2)]
    assert circle.total_amount == 12.0


def test_parallel_guarantees_between_two_parties_are_summed() -> None:
    g = graph_of([(1, 2, 5.0), (1, 2, 6.0), (2, 1, 1.0)])
    (circle,) = guarantee_circles(g)
    assert circle.total_amount == 12.0


def test_chain_that_is_not_a_circle_has_no_circle_and_one_longest_path() -> None:
    g = graph_of([(1, 2, 100.0), (2, 3, 200.0), (3, 4, 300.0), (5, 3, 1.0)])
    assert guarantee_circles(g) == []
    (chain,) = longest_chains(chain_index(g), min_length=3)
    assert as_nids(g, chain.path) == [1, 2, 3, 4]
    assert chain.total_amount == 600.0


def test_chain_through_a_middle_node_joins_the_paths_before_and_after_it() -> None:
    g = graph_of([(1, 2, 1.0), (2, 3, 2.0), (3, 4, 3.0)])
    chain = chain_through(chain_index(g), 2)  # position of nid 3
    assert chain is not None
    assert as_nids(g, chain.path) == [1, 2, 3, 4]


def test_chains_leave_out_circle_members() -> None:
    g = graph_of([(1, 2, 1.0), (2, 1, 1.0), (2, 3, 1.0), (3, 4, 1.0)])
    index = chain_index(g)
    chain = chain_through(index, 2)  # nid 3: 2 is in a circle, so the chain is 3 -> 4
    assert chain is not None
    assert as_nids(g, chain.path) == [3, 4]


def test_cycle_length_bound_leaves_out_longer_cycles() -> None:
    g = graph_of([(1, 2, 1.0), (2, 3, 1.0), (3, 4, 1.0), (4, 1, 1.0), (1, 3, 1.0), (3, 1, 1.0)])
    (circle,) = guarantee_circles(g, max_cycle_length=2)
    assert [as_nids(g, c) for c in circle.cycles] == [[1, 3]]


edges_strategy = st.lists(
    st.tuples(st.integers(0, 11), st.integers(0, 11)), min_size=0, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(edges_strategy)
def test_circles_are_the_non_trivial_strong_components_of_networkx(
    edges: list[tuple[int, int]],
) -> None:
    g = graph_of([(a, b, 1.0) for a, b in edges])
    oracle = nx.DiGraph(edges)
    expected = {
        frozenset(c)
        for c in nx.strongly_connected_components(oracle)
        if len(c) > 1 or any(oracle.has_edge(n, n) for n in c)
    }
    got = {frozenset(as_nids(g, c)) for c in strong_components(g)}
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(edges_strategy, st.integers(1, 5))
def test_cycles_match_networkx_simple_cycles_with_a_length_bound(
    edges: list[tuple[int, int]], bound: int
) -> None:
    g = graph_of([(a, b, 1.0) for a, b in edges])
    oracle = nx.DiGraph(edges)

    def canonical(cycle: list[int]) -> tuple[int, ...]:
        k = cycle.index(min(cycle))
        return tuple(cycle[k:] + cycle[:k])

    expected = {canonical(c) for c in nx.simple_cycles(oracle, length_bound=bound)}
    got = {
        canonical(as_nids(g, c))
        for circle in guarantee_circles(g, max_cycle_length=bound, max_cycles=10**6)
        for c in circle.cycles
    }
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(edges_strategy)
def test_longest_chain_length_matches_networkx_dag_longest_path(
    edges: list[tuple[int, int]],
) -> None:
    g = graph_of([(a, b, 1.0) for a, b in edges])
    oracle = nx.DiGraph(edges)
    in_circles = {
        n
        for c in nx.strongly_connected_components(oracle)
        for n in c
        if len(c) > 1 or oracle.has_edge(n, n)
    }
    dag = oracle.subgraph(n for n in oracle if n not in in_circles)
    expected = nx.dag_longest_path_length(dag) if dag.number_of_nodes() else 0
    chains = longest_chains(chain_index(g), min_length=1)
    assert max((c.length for c in chains), default=0) == expected
