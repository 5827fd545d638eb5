import igraph as ig
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from risk.community import density_peak_communities
from risk.community.density_peak import _Refiner, _typical_volume


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


def test_without_refinement_every_non_centre_node_is_in_the_cluster_of_its_parent() -> None:
    adj, _ = _planted_blocks()
    result = density_peak_communities(adj, refine_sweeps=0)
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


@pytest.mark.parametrize("n", [0, 1, 5])
def test_a_graph_without_edges_is_all_singletons(n: int) -> None:
    # A bank with no shared identifiers yet gives the nightly job an edgeless fraud graph.
    result = density_peak_communities(sp.csr_matrix((n, n)))
    assert result.n_clusters == n
    assert sorted(result.membership.tolist()) == list(range(n))


def _barbell() -> sp.csr_matrix:
    # Two 4-cliques {0..3} and {4..7} joined by the edge 3 - 4.
    return _adjacency(nx.barbell_graph(4, 0))


def _refiner(adj: sp.csr_matrix, resolution: float) -> _Refiner:
    rows = np.repeat(np.arange(adj.shape[0], dtype=np.int64), np.diff(adj.indptr))
    return _Refiner(adj, rows, adj.data.copy(), resolution, np.random.default_rng(0))


def test_refinement_moves_a_node_to_the_cluster_holding_most_of_its_edges() -> None:
    # Node 3 starts in the right clique's cluster (centre 7) but has three edges to the
    # left clique (centre 0) and one to the right: with no penalty the gains are 3 vs 1.
    adj = _barbell()
    labels = np.array([0, 0, 0, 7, 7, 7, 7, 7])
    fixed = np.zeros(8, dtype=bool)
    fixed[[0, 7]] = True
    refined = _refiner(adj, 0.0).refine(labels, fixed, sweeps=40)
    assert refined.tolist() == [0, 0, 0, 0, 7, 7, 7, 7]


def test_refinement_never_moves_a_held_centre() -> None:
    # Centre 3 is held in its own cluster although all its neighbours but one are in 0's.
    adj = _barbell()
    labels = np.array([0, 0, 0, 3, 7, 7, 7, 7])
    fixed = np.zeros(8, dtype=bool)
    fixed[[0, 3, 7]] = True
    refined = _refiner(adj, 0.0).refine(labels, fixed, sweeps=40)
    assert refined[3] == 3
    assert refined[[0, 7]].tolist() == [0, 7]


def test_typical_volume_is_the_volume_seen_from_a_random_edge_end() -> None:
    # Volumes 1 and 3 (and an empty cluster): (1² + 3²) / (1 + 3) = 2.5.
    assert _typical_volume(np.array([1.0, 0.0, 3.0])) == pytest.approx(2.5)


def test_mutually_best_halves_of_a_clique_merge_and_a_loosely_tied_clique_does_not() -> None:
    # K8 on 0..7 split into halves A = {0..3} (label 0) and B = {4..7} (label 7), a K4
    # C = {8..11} (label 11) tied to node 7 by one edge, and ten separate K4s (one cluster
    # each) that only add volume: 2m = 56 + 12 + 2 + 120 = 190. Unit weights: w(A, B) = 16,
    # w(B, C) = 1; volumes 28, 29, 13. The typical volume is (28² + 29² + 13² + 10·12²) /
    # 190 = 17.02, so resolution 0.03 gives 0.03 / 17.02 = 0.0018 per unit of K_c·K_d,
    # below modularity's floor 2 / 190 = 0.0105. Gains: A-B 16 - 0.0105·28·29 = 7.45,
    # B-C 1 - 0.0105·29·13 = -2.97. A and B name each other and merge, into the label of
    # the denser centre; C names nobody.
    graph = nx.complete_graph(8)
    graph.add_edges_from(nx.complete_graph(range(8, 12)).edges)
    graph.add_edge(7, 8)
    for k in range(10):
        graph.add_edges_from(nx.complete_graph(range(12 + 4 * k, 16 + 4 * k)).edges)
    adj = _adjacency(graph)
    labels = np.repeat(np.arange(0, 52, 4), 4)
    labels[4:8] = 7
    labels[8:12] = 11
    fixed = np.zeros(52, dtype=bool)
    fixed[np.unique(labels)] = True
    rank = np.arange(52)  # node 7 is denser than node 0
    merged = _refiner(adj, 0.03).merge_mutual_best(labels, fixed, rank)
    assert merged is not None
    new_labels, new_fixed, affected = merged
    assert new_labels[:12].tolist() == [7] * 8 + [11] * 4
    assert np.array_equal(new_labels[12:], labels[12:])
    assert not new_fixed[0] and new_fixed[7] and new_fixed[11]
    # Every node of a merged cluster or next to one is revisited, nothing else.
    assert np.flatnonzero(affected).tolist() == list(range(9))


def test_no_pair_merges_when_every_gain_is_negative() -> None:
    # Two 4-cliques joined by one edge, each its own cluster: w = 1 against a penalty of
    # 2 · 13 · 13 / 26 = 13 at modularity's floor alone (2m = 26).
    adj = _barbell()
    labels = np.array([0] * 4 + [7] * 4)
    fixed = np.zeros(8, dtype=bool)
    fixed[[0, 7]] = True
    assert _refiner(adj, 0.0).merge_mutual_best(labels, fixed, np.arange(8)) is None


@pytest.mark.parametrize("mu", [0.4, 0.5])
def test_refinement_beats_the_gradient_assignment_on_well_mixed_lfr_graphs(mu: float) -> None:
    adj, truth = _lfr(2000, mu)
    gradient = density_peak_communities(adj, refine_sweeps=0)
    refined = density_peak_communities(adj)
    assert _nmi(refined.membership, truth) >= _nmi(gradient.membership, truth) + 0.05


def test_refined_clusters_keep_their_centres_and_reach_the_minimum_size() -> None:
    adj, _ = _lfr(2000, 0.5)
    result = density_peak_communities(adj, min_cluster_size=10)
    assert result.membership[result.centres].tolist() == list(range(result.n_clusters))
    assert result.sizes.min() >= 10
    assert result.sizes.sum() == adj.shape[0]
