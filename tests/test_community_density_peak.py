import igraph as ig
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from risk.community import density_peak_communities


def _adjacency(graph: nx.Graph) -> sp.csr_matrix:
    return sp.csr_matrix(
        nx.to_scipy_sparse_array(graph, nodelist=range(graph.number_of_nodes()), dtype=float)
    )


def _nmi(labels: np.ndarray, truth: list[int]) -> float:
    return float(ig.compare_communities(labels.tolist(), truth, method="nmi"))


def _planted_blocks() -> tuple[sp.csr_matrix, list[int]]:
    sizes = [40, 50, 60, 70]
    probs = [[0.3 if i == j else 0.01 for j in range(4)] for i in range(4)]
    graph = nx.stochastic_block_model(sizes, probs, seed=1)
    return _adjacency(graph), [graph.nodes[v]["block"] for v in range(graph.number_of_nodes())]


def _lfr(n: int, mu: float) -> tuple[sp.csr_matrix, list[int]]:
    for seed in range(20):
        try:
            graph = nx.generators.community.LFR_benchmark_graph(
                n,
                3,
                1.5,
                mu,
                average_degree=15,
                max_degree=40,
                min_community=30,
                max_community=80,
                seed=seed,
            )
        except nx.ExceededMaxIterations:
            continue
        ids: dict[int, int] = {}
        truth = [ids.setdefault(min(graph.nodes[v]["community"]), len(ids)) for v in range(n)]
        return _adjacency(graph), truth
    raise RuntimeError("LFR generation did not converge")


def test_recovers_the_planted_blocks_of_a_stochastic_block_model() -> None:
    adj, truth = _planted_blocks()
    assert _nmi(density_peak_communities(adj).membership, truth) == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "mu", "least_nmi"), [(500, 0.1, 0.95), (1000, 0.2, 0.9)])
def test_recovers_lfr_communities_at_low_mixing(n: int, mu: float, least_nmi: float) -> None:
    adj, truth = _lfr(n, mu)
    assert _nmi(density_peak_communities(adj).membership, truth) >= least_nmi


def test_puts_each_clique_of_a_ring_of_cliques_in_its_own_cluster() -> None:
    adj = _adjacency(nx.ring_of_cliques(4, 8))
    result = density_peak_communities(adj, min_cluster_size=3)
    assert _nmi(result.membership, [v // 8 for v in range(32)]) == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_clustering() -> None:
    adj, _ = _planted_blocks()
    first = density_peak_communities(adj, seed=5)
    second = density_peak_communities(adj, seed=5)
    assert np.array_equal(first.membership, second.membership)
    assert np.array_equal(first.density, second.density)


def test_every_parent_is_denser_than_its_child() -> None:
    adj, _ = _planted_blocks()
    result = density_peak_communities(adj)
    child = np.flatnonzero(result.parent >= 0)
    assert np.all(result.density[result.parent[child]] >= result.density[child])


def test_every_non_centre_node_is_in_the_cluster_of_its_parent() -> None:
    adj, _ = _planted_blocks()
    result = density_peak_communities(adj)
    follower = np.ones(adj.shape[0], dtype=bool)
    follower[result.centres] = False
    assert np.array_equal(result.membership[follower], result.membership[result.parent[follower]])


def test_each_centre_is_in_its_own_cluster_and_sizes_add_up() -> None:
    adj, _ = _planted_blocks()
    result = density_peak_communities(adj)
    assert result.membership[result.centres].tolist() == list(range(result.n_clusters))
    assert result.sizes.sum() == adj.shape[0]


def test_n_clusters_sets_the_number_of_clusters_of_a_connected_graph() -> None:
    adj, _ = _planted_blocks()
    assert density_peak_communities(adj, n_clusters=2, min_cluster_size=1).n_clusters == 2


def test_density_of_a_star_centre_is_the_mean_visits_per_step() -> None:
    # Star with k leaves, two steps: every leaf walker stands on the centre after step one
    # and every centre walker is back after step two, so the centre gets (k + 1) / 2 per
    # walker-step exactly.
    k = 6
    result = density_peak_communities(_adjacency(nx.star_graph(k)), walk_length=2)
    assert result.density[0] == pytest.approx((k + 1) / 2)


def test_walkers_step_along_edges_in_proportion_to_weight() -> None:
    # Path a - b - c with weights 1 and 3: after one step only b's walkers reach a, a quarter
    # of them; 4000 walkers put the estimate within 0.03 of 1/4 (over 4 standard deviations).
    adj = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 3], [0, 3, 0]], dtype=float))
    result = density_peak_communities(adj, walk_length=1, walks_per_node=4000)
    assert result.density[0] == pytest.approx(0.25, abs=0.03)


def test_isolated_nodes_form_their_own_clusters() -> None:
    adj, _ = _planted_blocks()
    n = adj.shape[0]
    padded = sp.csr_matrix(sp.block_diag([adj, sp.csr_matrix((2, 2))]))
    result = density_peak_communities(padded)
    assert result.sizes[result.membership[n]] == 1
    assert result.membership[n] != result.membership[n + 1]
