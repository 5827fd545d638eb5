import itertools

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from risk.community import (
    edge_conductance,
    local_motif,
    mappr_cluster,
    motif_conductance,
    push_ppr,
    triangle_weights,
)
from risk.community.local_motif import _CsrRows, _LocalTriangleRows, _push


def _adjacency(graph: nx.Graph) -> sp.csr_matrix:
    return sp.csr_matrix(
        nx.to_scipy_sparse_array(graph, nodelist=range(graph.number_of_nodes()), dtype=float)
    )


def _triangles(graph: nx.Graph) -> list[tuple[int, int, int]]:
    return [
        (a, b, c)
        for a, b, c in itertools.combinations(graph.nodes, 3)
        if graph.has_edge(a, b) and graph.has_edge(b, c) and graph.has_edge(a, c)
    ]


def _brute_force_motif_conductance(graph: nx.Graph, nodes: set[int]) -> float:
    # Every triangle adds 2 to the motif degree of each of its corners; a triangle split by
    # the cut puts 2 of its edges across it, each of motif weight 1 per triangle.
    triangles = _triangles(graph)
    cut = 2 * sum(1 for t in triangles if 0 < len(nodes.intersection(t)) < 3)
    volume = sum(2 * sum(1 for t in triangles if v in t) for v in nodes)
    total = 6 * len(triangles)
    smaller = min(volume, total - volume)
    return cut / smaller if smaller > 0 else 1.0


def _random_graph(seed: int) -> nx.Graph:
    return nx.gnp_random_graph(14, 0.4, seed=seed)


@pytest.mark.parametrize("seed", range(5))
def test_triangle_weights_count_the_triangles_on_each_edge(seed: int) -> None:
    graph = _random_graph(seed)
    expected = np.zeros((14, 14))
    for triangle in _triangles(graph):
        for a, b in itertools.permutations(triangle, 2):
            expected[a, b] += 1
    assert np.array_equal(triangle_weights(_adjacency(graph)).toarray(), expected)


@pytest.mark.parametrize("seed", range(5))
def test_local_triangle_rows_equal_the_whole_graph_weights(seed: int) -> None:
    adj = _adjacency(_random_graph(seed))
    whole = triangle_weights(adj).toarray()
    local = _LocalTriangleRows(adj)
    for node in range(14):
        nbrs, weights = local.row(node)
        row = np.zeros(14)
        row[nbrs] = weights
        assert np.array_equal(row, whole[node])
        assert local.degree(node) == whole[node].sum()


@pytest.mark.parametrize("epsilon", [1e-2, 1e-3, 1e-5])
def test_push_pagerank_is_within_epsilon_times_degree_below_exact_pagerank(
    epsilon: float,
) -> None:
    # The club's edge weights (interaction counts) make the walk non-uniform.
    weights = _adjacency(nx.karate_club_graph())
    alpha, seed = 0.1, 0
    dense = weights.toarray()
    degree = dense.sum(axis=1)
    transition = dense / degree[:, None]
    start = np.zeros(34)
    start[seed] = 1.0
    exact = np.linalg.solve((np.eye(34) - (1 - alpha) * transition).T, alpha * start)
    support, values = push_ppr(weights, seed, alpha=alpha, epsilon=epsilon)
    approx = np.zeros(34)
    approx[support] = values
    gap = exact - approx
    assert np.all(gap >= -1e-12)
    assert np.all(gap <= epsilon * degree + 1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_motif_conductance_matches_a_count_over_all_triangles(seed: int) -> None:
    graph = _random_graph(seed)
    nodes = set(range(6))
    assert motif_conductance(_adjacency(graph), sorted(nodes)) == pytest.approx(
        _brute_force_motif_conductance(graph, nodes)
    )


def test_returned_set_has_the_reported_motif_conductance() -> None:
    graph = nx.karate_club_graph()
    adj = _adjacency(graph)
    result = mappr_cluster(adj, 0, motif_weights=triangle_weights(adj))
    assert result.conductance == pytest.approx(
        _brute_force_motif_conductance(graph, set(result.nodes.tolist()))
    )


def test_sweep_picks_the_prefix_of_least_conductance() -> None:
    graph = nx.karate_club_graph()
    adj = _adjacency(graph)
    result = mappr_cluster(adj, 33, epsilon=1e-5, motif_weights=triangle_weights(adj))
    order = result.sweep_order.tolist()
    brute = [_brute_force_motif_conductance(graph, set(order[: k + 1])) for k in range(len(order))]
    assert result.sweep_conductance == pytest.approx(brute)
    assert result.conductance == pytest.approx(min(brute))


def test_a_seed_in_a_ring_of_cliques_returns_its_clique() -> None:
    adj = _adjacency(nx.ring_of_cliques(6, 5))
    result = mappr_cluster(adj, 12)
    assert result.nodes.tolist() == [10, 11, 12, 13, 14]
    assert result.conductance == 0.0


def test_local_and_batch_queries_agree_on_a_small_cluster() -> None:
    adj = _adjacency(nx.ring_of_cliques(6, 5))
    local = mappr_cluster(adj, 3)
    batch = mappr_cluster(adj, 3, motif_weights=triangle_weights(adj))
    assert local.nodes.tolist() == batch.nodes.tolist()


def test_a_seed_in_no_triangle_falls_back_to_edge_conductance() -> None:
    # Two 4-cycles (triangle-free) joined by one edge: the seed's own cycle is the cluster.
    graph = nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (3, 4)])
    result = mappr_cluster(_adjacency(graph), 1, epsilon=1e-5)
    assert not result.used_motif
    assert result.nodes.tolist() == [0, 1, 2, 3]
    assert result.conductance == pytest.approx(1 / 9)
    assert result.conductance == pytest.approx(edge_conductance(_adjacency(graph), [0, 1, 2, 3]))


def test_a_seed_without_edges_is_rejected() -> None:
    adj = sp.csr_matrix(sp.block_diag([_adjacency(nx.complete_graph(3)), sp.csr_matrix((1, 1))]))
    with pytest.raises(ValueError, match="no edges"):
        mappr_cluster(adj, 3)


@pytest.mark.parametrize("seed", range(4))
def test_push_on_whole_vectors_equals_the_push_along_the_frontier(seed: int) -> None:
    # The dense rounds (small graphs) and the frontier rounds (lazy rows of large graphs)
    # push the same nodes in the same rounds, so they end at the same vector.
    graph = nx.planted_partition_graph(4, 12, 0.6, 0.05, seed=seed)
    adj = _adjacency(graph)
    dense = _push(_CsrRows(triangle_weights(adj)), 0, 0.05, 1e-4)
    frontier = _push(_LocalTriangleRows(adj), 0, 0.05, 1e-4)
    assert np.count_nonzero(dense) > 1
    assert np.allclose(dense, frontier, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_eager_and_lazy_triangle_rows_give_the_same_local_cluster(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = nx.planted_partition_graph(5, 10, 0.7, 0.03, seed=seed)
    adj = _adjacency(graph)
    eager = [mappr_cluster(adj, node) for node in (0, 17, 33)]
    monkeypatch.setattr(local_motif, "_EAGER_NODES", 0)
    lazy = [mappr_cluster(adj, node) for node in (0, 17, 33)]
    for one, other in zip(eager, lazy, strict=True):
        assert one.nodes.tolist() == other.nodes.tolist()
        assert one.sweep_order.tolist() == other.sweep_order.tolist()
        assert np.allclose(one.sweep_conductance, other.sweep_conductance)
