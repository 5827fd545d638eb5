import itertools
import math

import igraph as ig
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from risk.community import (
    as_csr_adjacency,
    infomap_communities,
    leiden_communities,
    to_igraph,
)


def _ring_of_cliques(cliques: int, size: int) -> sp.csr_matrix:
    return sp.csr_matrix(nx.to_scipy_sparse_array(nx.ring_of_cliques(cliques, size), dtype=float))


def _same_partition(labels: np.ndarray, expected: list[int]) -> bool:
    pairs = set(zip(labels.tolist(), expected, strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(expected))


def test_leiden_puts_each_clique_of_a_ring_of_cliques_in_its_own_community() -> None:
    labels = leiden_communities(_ring_of_cliques(6, 5))
    assert _same_partition(labels, [v // 5 for v in range(30)])


def test_leiden_gives_the_same_labels_for_csr_and_igraph_input() -> None:
    adj = _ring_of_cliques(5, 4)
    assert (
        leiden_communities(adj, seed=3).tolist()
        == leiden_communities(to_igraph(adj), seed=3).tolist()
    )


def test_leiden_is_deterministic_for_a_seed() -> None:
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(nx.karate_club_graph(), dtype=float))
    assert leiden_communities(adj, seed=7).tolist() == leiden_communities(adj, seed=7).tolist()


def test_leiden_uses_edge_weights() -> None:
    # A 4-cycle: heavy edges 0-1 and 2-3 decide the split, the light ones are cut.
    adj = sp.csr_matrix(
        np.array([[0, 10, 0, 1], [10, 0, 1, 0], [0, 1, 0, 10], [1, 0, 10, 0]], dtype=float)
    )
    labels = leiden_communities(adj)
    assert labels[0] == labels[1] != labels[2] == labels[3]


def test_infomap_puts_each_clique_of_a_ring_of_cliques_in_its_own_community() -> None:
    labels = infomap_communities(_ring_of_cliques(6, 5))
    assert _same_partition(labels, [v // 5 for v in range(30)])


def test_igraph_round_trip_keeps_the_weighted_adjacency() -> None:
    dense = np.array([[0, 2.5, 0], [2.5, 0, 0.5], [0, 0.5, 0]])
    adj = as_csr_adjacency(to_igraph(sp.csr_matrix(dense)))
    assert np.array_equal(adj.toarray(), dense)


def test_as_csr_adjacency_rejects_a_non_square_matrix() -> None:
    with pytest.raises(ValueError, match="square"):
        as_csr_adjacency(sp.csr_matrix(np.zeros((2, 3))))


def _brute_force_nmi(a: list[int], b: list[int]) -> float:
    n = len(a)

    def entropy(labels: list[int]) -> float:
        return -sum(labels.count(c) / n * math.log(labels.count(c) / n) for c in set(labels))

    mutual = 0.0
    for x, y in itertools.product(set(a), set(b)):
        joint = sum(1 for i in range(n) if a[i] == x and b[i] == y) / n
        if joint:
            mutual += joint * math.log(joint / (a.count(x) / n * b.count(y) / n))
    return 2 * mutual / (entropy(a) + entropy(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]),
        ([0, 1, 2, 0, 1, 2, 0], [1, 1, 1, 0, 0, 0, 2]),
        ([0, 0, 1, 1], [5, 5, 7, 7]),
    ],
)
def test_igraph_nmi_used_by_the_benchmark_equals_brute_force_nmi(
    a: list[int], b: list[int]
) -> None:
    assert ig.compare_communities(a, b, method="nmi") == pytest.approx(_brute_force_nmi(a, b))
