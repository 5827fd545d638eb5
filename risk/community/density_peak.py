"""Density-peak graph clustering driven by random-path sampling.

The clustering follows Rodriguez & Laio's density peaks (Science 2014), carried over to graphs:

* **density** ``ρ_i``: short random walks (``walks_per_node`` walkers start at every node, each
  takes ``walk_length`` steps, a step picks an edge with probability proportional to its
  weight) are simulated all at once with numpy; ``ρ_i`` is how often the walkers stand on
  ``i`` after leaving their start, scaled so that the mean density is 1.
* **edge length** ``ℓ_ij``: the random-walk distance of Pons & Latapy (Walktrap),
  ``‖D^-1/2 (P^t_i - P^t_j)‖`` with ``t = walk_length``, estimated with a Gaussian random
  projection to ``sketch_dim`` columns. Two nodes are close when walks leaving them end up in
  the same places, which is what "in the same community" means; a bare hop count cannot tell
  an edge inside a community from one between communities.
* **distance to higher density** ``δ_i``: the length of the shortest path from ``i`` to a node of
  higher density. Most nodes have a denser neighbour, and for them ``δ_i`` is the shortest
  edge to such a neighbour (one hop). Local maxima, and nodes whose one-hop ``δ`` would make
  them centres, are searched further, all at once, for the shortest path of at most
  ``max_radius`` hops (a path through a denser node of the same community often beats a
  direct edge to another community). A node with no denser node within the radius has
  ``δ = inf`` and is always a centre.
* **centres**: nodes whose ``γ = ρ·δ`` is an outlier: ``log γ`` above the median by
  ``centre_threshold`` robust standard deviations (1.4826·MAD, floored at 0.3 so that a
  near-regular graph does not turn small fluctuations into centres; ``γ`` at rounding-noise
  level, as between identical nodes of a clique, is left out of the statistics), or the
  ``n_clusters`` largest.
* **assignment**: every other node joins the cluster of its nearest denser node, so labels
  flow down the density gradient from the centres (done by pointer jumping rather than a
  sequential pass; the result is the same). Clusters smaller than ``min_cluster_size`` are
  merged, again along the gradient, into the cluster of their centre's nearest denser node.

Cost is linear in the number of edges times ``walk_length`` (walks and sketch) plus the
bounded searches around local maxima.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from risk.community.leiden import Graph, as_csr_adjacency

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Rows of (edge, sketch) differences evaluated at once; bounds peak memory at ~0.5 GB.
_LENGTH_CHUNK = 1 << 20
# Local maxima searched at once; bounds the (source, node) pairs a hop can create.
_SEARCH_CHUNK = 1 << 14
# Scales a median absolute deviation to a standard deviation for normal data.
_MAD_TO_SIGMA = 1.4826
# γ below this fraction of the largest γ is rounding noise, not a distance.
_NOISE_FLOOR = 1e-4
# Lower bound on the robust spread of log γ, so near-identical γ values (regular graphs)
# do not turn small fluctuations into centres.
_MIN_LOG_SPREAD = 0.3


@dataclass(frozen=True)
class DensityPeakClustering:
    """Result of :func:`density_peak_communities`.

    Attributes:
        membership: cluster label per node; cluster ``c`` is the one whose centre is
            ``centres[c]``, and clusters are numbered by decreasing centre density.
        density: random-path density ``ρ`` per node (mean 1).
        delta: distance from each node to its nearest denser node (``inf`` if none within
            the search radius).
        parent: that nearest denser node, or -1.
        gamma: ``ρ·δ`` per node, the centre score.
        centres: centre node of each cluster.
        sizes: number of nodes in each cluster.
    """

    membership: IntArray
    density: FloatArray
    delta: FloatArray
    parent: IntArray
    gamma: FloatArray
    centres: IntArray
    sizes: IntArray

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.centres.size)

    @property
    def centre_density(self) -> FloatArray:
        """Density of each cluster's centre, indexed by cluster label."""
        return self.density[self.centres]


def density_peak_communities(
    graph: Graph,
    *,
    walk_length: int = 8,
    walks_per_node: int = 8,
    sketch_dim: int = 64,
    n_clusters: int | None = None,
    centre_threshold: float = 3.0,
    min_cluster_size: int = 10,
    max_radius: int = 2,
    seed: int = 0,
) -> DensityPeakClustering:
    """Clusters a weighted undirected graph around its random-path density peaks.

    Args:
        graph: symmetric CSR adjacency (float64 weights, no self loops) or igraph Graph.
        walk_length: steps per random walk; also the walk length ``t`` of the edge lengths.
        walks_per_node: walkers started at every node to estimate the density.
        sketch_dim: columns of the random projection that estimates the edge lengths.
        n_clusters: take this many centres (largest ``γ``) instead of choosing outliers.
            Peaks with no denser node within ``max_radius`` are centres regardless.
        centre_threshold: outlier cut on ``log γ`` in robust standard deviations.
        min_cluster_size: smaller clusters are merged down the density gradient.
        max_radius: hop bound of the search from local maxima to a denser node.
        seed: seed of the walks and the projection; equal seeds give equal results.

    Returns:
        The clustering with per-node density, distance and parent, and per-cluster centres.

    Example:
        >>> import networkx as nx
        >>> ring = nx.to_scipy_sparse_array(nx.ring_of_cliques(4, 8), format="csr")
        >>> result = density_peak_communities(ring, min_cluster_size=3)
        >>> result.n_clusters
        4
    """
    if walk_length < 1 or walks_per_node < 1 or sketch_dim < 1 or max_radius < 2:
        raise ValueError(
            "walk_length, walks_per_node and sketch_dim must be >= 1 and max_radius >= 2"
        )
    adj = as_csr_adjacency(graph)
    n = adj.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(adj.indptr))
    density = _random_path_density(adj, walks_per_node, walk_length, rng)
    lengths = _walk_distance_lengths(adj, rows, walk_length, sketch_dim, rng)

    # A strict total order on density; equal densities are broken by the lower node id.
    order = np.lexsort((-np.arange(n), density))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    parent, delta = _nearest_denser_neighbour(adj, rows, rank, lengths)
    # One hop is exact enough for nodes that will follow a parent anyway; local maxima and
    # would-be centres get the hop-bounded shortest path, which may run through a neighbour
    # of the same community rather than across a long edge.
    candidates = np.flatnonzero(
        (parent < 0) | _choose_centres(density * delta, n_clusters, centre_threshold)
    )
    far_parent, far_delta = _bounded_search(adj, candidates, rank, lengths, max_radius)
    closer = far_delta < delta[candidates]
    parent[candidates[closer]] = far_parent[closer]
    delta[candidates[closer]] = far_delta[closer]

    gamma = density * delta
    centre = _choose_centres(gamma, n_clusters, centre_threshold) | (parent < 0)
    labels = _follow_gradient(parent, centre)
    labels, centre = _merge_small_clusters(labels, parent, centre, min_cluster_size)

    centres = np.flatnonzero(centre)
    centres = centres[np.argsort(-rank[centres], kind="stable")]
    cluster_of_centre = np.empty(n, dtype=np.int64)
    cluster_of_centre[centres] = np.arange(centres.size)
    membership = cluster_of_centre[labels]
    return DensityPeakClustering(
        membership=membership,
        density=density,
        delta=delta,
        parent=parent,
        gamma=gamma,
        centres=centres,
        sizes=np.bincount(membership, minlength=centres.size).astype(np.int64),
    )


def _random_path_density(
    adj: sp.csr_matrix, walks_per_node: int, walk_length: int, rng: np.random.Generator
) -> FloatArray:
    n = adj.shape[0]
    indptr = adj.indptr.astype(np.int64)
    indices = adj.indices.astype(np.int64)
    uniform = adj.nnz == 0 or bool(np.all(adj.data == adj.data[0]))
    # Global running sum of weights: a weighted step is one binary search inside the row.
    cumulative = np.concatenate([[0.0], np.cumsum(adj.data)])
    position = np.repeat(np.arange(n, dtype=np.int64), walks_per_node)
    visits = np.zeros(n, dtype=np.float64)
    for _ in range(walk_length):
        lo, hi = indptr[position], indptr[position + 1]
        draw = rng.random(position.size)
        if uniform:
            edge = lo + (draw * (hi - lo)).astype(np.int64)
        else:
            target = cumulative[lo] + draw * (cumulative[hi] - cumulative[lo])
            edge = np.searchsorted(cumulative, target, side="right") - 1
        stuck = hi == lo  # isolated nodes keep their walkers
        edge = np.clip(edge, lo, np.maximum(hi - 1, lo))
        position = np.where(stuck, position, indices[np.minimum(edge, indices.size - 1)])
        visits += np.bincount(position, minlength=n)
    result: FloatArray = visits / (walks_per_node * walk_length)
    return result


def _walk_distance_lengths(
    adj: sp.csr_matrix,
    rows: IntArray,
    walk_length: int,
    sketch_dim: int,
    rng: np.random.Generator,
) -> FloatArray:
    n = adj.shape[0]
    degree = np.asarray(adj.sum(axis=1)).ravel()
    inv_degree = np.divide(1.0, degree, out=np.zeros(n), where=degree > 0)
    # ‖D^-1/2 (P^t_i - P^t_j)‖ ≈ ‖(P^t D^-1/2 Ω)_i - (P^t D^-1/2 Ω)_j‖ for Gaussian Ω
    # (Johnson–Lindenstrauss), so t sparse products replace n dense walk distributions.
    sketch = (rng.standard_normal((n, sketch_dim)) * np.sqrt(inv_degree)[:, None]).astype(
        np.float32
    )
    # float32 halves memory and time at a million nodes; relative error ~1e-7 is far below
    # the differences between edges inside and across communities.
    transition = sp.csr_matrix(sp.diags(inv_degree) @ adj, dtype=np.float32)
    for _ in range(walk_length):
        sketch = np.asarray(transition @ sketch, dtype=np.float32)
    sketch /= np.float32(np.sqrt(sketch_dim))
    lengths = np.empty(adj.nnz, dtype=np.float64)
    cols = adj.indices
    for start in range(0, adj.nnz, _LENGTH_CHUNK):
        stop = min(start + _LENGTH_CHUNK, adj.nnz)
        diff = sketch[rows[start:stop]] - sketch[cols[start:stop]]
        lengths[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return lengths


def _nearest_denser_neighbour(
    adj: sp.csr_matrix, rows: IntArray, rank: IntArray, lengths: FloatArray
) -> tuple[IntArray, FloatArray]:
    n = adj.shape[0]
    cols = adj.indices.astype(np.int64)
    candidate = np.where(rank[cols] > rank[rows], lengths, np.inf)
    best = np.full(n, np.inf)
    np.minimum.at(best, rows, candidate)
    # First (lowest column) entry per row attaining the row minimum breaks ties.
    hit = np.flatnonzero(np.isfinite(candidate) & (candidate == best[rows]))
    nodes, first = np.unique(rows[hit], return_index=True)
    parent = np.full(n, -1, dtype=np.int64)
    parent[nodes] = cols[hit[first]]
    delta = np.full(n, np.inf)
    delta[nodes] = best[nodes]
    return parent, delta


def _bounded_search(
    adj: sp.csr_matrix,
    sources: IntArray,
    rank: IntArray,
    lengths: FloatArray,
    max_radius: int,
) -> tuple[IntArray, FloatArray]:
    parent = np.full(sources.size, -1, dtype=np.int64)
    delta = np.full(sources.size, np.inf)
    for start in range(0, sources.size, _SEARCH_CHUNK):
        chunk = slice(start, min(start + _SEARCH_CHUNK, sources.size))
        parent[chunk], delta[chunk] = _bounded_search_chunk(
            adj, sources[chunk], rank, lengths, max_radius
        )
    return parent, delta


def _bounded_search_chunk(
    adj: sp.csr_matrix,
    sources: IntArray,
    rank: IntArray,
    lengths: FloatArray,
    max_radius: int,
) -> tuple[IntArray, FloatArray]:
    n = adj.shape[0]
    indptr = adj.indptr.astype(np.int64)
    cols = adj.indices.astype(np.int64)
    parent = np.full(sources.size, -1, dtype=np.int64)
    delta = np.full(sources.size, np.inf)
    # Frontier of (source slot, node, path length) triples, advanced one hop at a time.
    slot = np.arange(sources.size, dtype=np.int64)
    node = sources.astype(np.int64)
    dist = np.zeros(sources.size)
    for _ in range(max_radius):
        degree = indptr[node + 1] - indptr[node]
        total = int(degree.sum())
        if total == 0:
            break
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(degree) - degree, degree)
        edge = np.repeat(indptr[node], degree) + offsets
        slot = np.repeat(slot, degree)
        node = cols[edge]
        dist = np.repeat(dist, degree) + lengths[edge]
        # Keep the shortest path per (source, node).
        key = slot * n + node
        order = np.lexsort((dist, key))
        key, slot, node, dist = key[order], slot[order], node[order], dist[order]
        first = np.r_[True, key[1:] != key[:-1]]
        slot, node, dist = slot[first], node[first], dist[first]

        denser = np.flatnonzero((rank[node] > rank[sources[slot]]) & (dist < delta[slot]))
        # Shortest first, so the first entry per source is its best; ties to the lower id.
        denser = denser[np.lexsort((node[denser], dist[denser], slot[denser]))]
        improved, first_best = np.unique(slot[denser], return_index=True)
        parent[improved] = node[denser[first_best]]
        delta[improved] = dist[denser[first_best]]
        # Lengths are non-negative: a path already as long as the best cannot improve it.
        open_ = dist < delta[slot]
        slot, node, dist = slot[open_], node[open_], dist[open_]
        if slot.size == 0:
            break
    return parent, delta


def _choose_centres(
    gamma: FloatArray, n_clusters: int | None, centre_threshold: float
) -> npt.NDArray[np.bool_]:
    n = gamma.size
    centre = np.zeros(n, dtype=np.bool_)
    if n_clusters is not None:
        # Stable sort of -γ: equal scores go to the lower node id, deterministically.
        centre[np.argsort(-gamma, kind="stable")[: max(n_clusters, 0)]] = True
        return centre
    finite = np.isfinite(gamma) & (gamma > 0)
    if not finite.any():
        return centre
    # Exactly symmetric nodes (inside a clique, say) have δ at rounding-noise level; keeping
    # them would drag the median towards zero and make every real peak look like an outlier.
    scored = finite & (gamma > _NOISE_FLOOR * gamma[finite].max())
    log_gamma = np.log(gamma[scored])
    median = float(np.median(log_gamma))
    spread = max(_MAD_TO_SIGMA * float(np.median(np.abs(log_gamma - median))), _MIN_LOG_SPREAD)
    centre[scored] = log_gamma > median + centre_threshold * spread
    return centre


def _follow_gradient(parent: IntArray, centre: npt.NDArray[np.bool_]) -> IntArray:
    # Parents are strictly denser, so the pointers form a forest rooted at the centres;
    # pointer jumping resolves every chain in O(log depth) vector passes.
    root = np.where(centre, np.arange(parent.size, dtype=np.int64), parent)
    while True:
        jumped = root[root]
        if np.array_equal(jumped, root):
            return root
        root = jumped


def _merge_small_clusters(
    labels: IntArray,
    parent: IntArray,
    centre: npt.NDArray[np.bool_],
    min_cluster_size: int,
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    centre = centre.copy()
    while True:
        sizes = np.bincount(labels, minlength=labels.size)
        small = centre & (sizes < min_cluster_size) & (parent >= 0)
        if not small.any():
            return labels, centre
        centre &= ~small
        labels = _follow_gradient(parent, centre)
