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
* **refinement** (``refine_sweeps > 0``): a single parent is a fragile witness — one wrong
  choice carries the whole subtree below it into the wrong cluster, and in well-mixed graphs
  many parent choices cross communities. So the labels from the gradient are then refined
  with the centres held fixed: in each sweep every other node takes the label of its
  neighbours with the largest gain ``w_ic - resolution · k_i · K_c / K̄`` (``w_ic`` its
  walk-similarity weight to cluster ``c``, each edge weighted by ``exp(-ℓ_ij / 2 median ℓ)``;
  ``k_i`` and ``K_c`` the node's and the cluster's total such weight, ``K̄ = Σ K_c² / Σ K_c``
  the cluster volume a random edge end sees). This is the modularity gain of the move with
  ``K̄`` in place of ``2m``: the penalty for joining a cluster then does not fade as the
  graph grows, so clusters of the same make-up are kept apart on a 5k and on a 1M graph
  alike (modularity's resolution limit). On a graph of few clusters, where any two share a
  sizeable weight by chance, the penalty is kept at least at modularity's with resolution
  2 (``2 · k_i · K_c / 2m``). Half of the nodes that would move do, at random,
  so that neighbours do not swap labels back and forth; later sweeps revisit only the
  neighbours of moved nodes.
* **merging** (``merge_rounds > 0``, not with ``n_clusters``): centres are chosen generously
  (a low ``centre_threshold``) so that every community gets one, and clusters that are two
  halves of one community are then joined: each cluster names the neighbouring cluster with
  the largest gain ``w_cd - resolution · K_c · K_d / K̄``, mutually named pairs with a
  positive gain merge (the denser centre stays), and the labels are refined again.
  Clusters still smaller than ``min_cluster_size`` after that are dissolved: their centres
  are released and their members take the best label of their neighbours.

Cost is linear in the number of edges times ``walk_length`` (walks and sketch) plus the
bounded searches around local maxima, plus a few passes over the edges per refinement
sweep and merge round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from risk.community.leiden import Graph, as_csr_adjacency

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Rows of (edge, sketch) differences evaluated at once; bounds that buffer at ~128 MB.
_LENGTH_CHUNK = 1 << 18
# Local maxima searched at once; bounds the (source, node) pairs a hop can create.
_SEARCH_CHUNK = 1 << 14
# Scales a median absolute deviation to a standard deviation for normal data.
_MAD_TO_SIGMA = 1.4826
# γ below this fraction of the largest γ is rounding noise, not a distance.
_NOISE_FLOOR = 1e-4
# Lower bound on the robust spread of log γ, so near-identical γ values (regular graphs)
# do not turn small fluctuations into centres.
_MIN_LOG_SPREAD = 0.3
# Share of the nodes that would change label in a refinement sweep that actually do;
# moving all at once lets two neighbours swap labels forever.
_MOVE_SHARE = 0.5
# The refinement and merge penalties are never below this modularity resolution's.
_MODULARITY_FLOOR = 2.0


@dataclass(frozen=True)
class DensityPeakClustering:
    """Result of :func:`density_peak_communities`.

    Attributes:
        membership: cluster label per node; cluster ``c`` is the one whose centre is
            ``centres[c]``, and clusters are numbered by decreasing centre density.
            Without refinement every non-centre node is in the cluster of its parent.
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
    walk_length: int = 12,
    walks_per_node: int = 8,
    sketch_dim: int = 128,
    n_clusters: int | None = None,
    centre_threshold: float = 1.5,
    min_cluster_size: int = 10,
    max_radius: int = 2,
    refine_sweeps: int = 10,
    merge_rounds: int = 5,
    resolution: float = 0.03,
    seed: int = 0,
) -> DensityPeakClustering:
    """Clusters a weighted undirected graph around its random-path density peaks.

    Args:
        graph: symmetric CSR adjacency (float64 weights, no self loops) or igraph Graph.
        walk_length: steps per random walk; also the walk length ``t`` of the edge lengths.
        walks_per_node: walkers started at every node to estimate the density.
        sketch_dim: columns of the random projection that estimates the edge lengths.
        n_clusters: take this many centres (largest ``γ``) instead of choosing outliers,
            and do not merge clusters. Peaks with no denser node within ``max_radius`` are
            centres regardless.
        centre_threshold: outlier cut on ``log γ`` in robust standard deviations.
        min_cluster_size: smaller clusters are merged down the density gradient, and
            dissolved into their neighbours after refinement.
        max_radius: hop bound of the search from local maxima to a denser node.
        refine_sweeps: most label-refinement sweeps after the gradient assignment and
            after each merge round (0: labels follow the gradient only, no merging).
        merge_rounds: most rounds of joining mutually best cluster pairs.
        resolution: weight of the expected-weight term in the refinement and merge gains;
            larger keeps more, smaller clusters.
        seed: seed of the walks, the projection and the refinement; equal seeds give equal
            results.

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
    if refine_sweeps < 0 or merge_rounds < 0 or resolution < 0:
        raise ValueError("refine_sweeps, merge_rounds and resolution must be >= 0")
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
    if refine_sweeps > 0:
        refiner = _Refiner(adj, rows, _walk_similarity(adj, lengths), resolution, rng)
        labels = refiner.refine(labels, centre, refine_sweeps)
        for _ in range(merge_rounds if n_clusters is None else 0):
            merged = refiner.merge_mutual_best(labels, centre, rank)
            if merged is None:
                break
            labels, centre, affected = merged
            labels = refiner.refine(labels, centre, refine_sweeps, affected)
        labels, centre = refiner.dissolve_small(labels, centre, min_cluster_size, refine_sweeps)

    centres = _cluster_centres(labels, rank)
    centres = centres[np.argsort(-rank[centres], kind="stable")]
    cluster_of_label = np.empty(n, dtype=np.int64)
    cluster_of_label[labels[centres]] = np.arange(centres.size)
    membership = cluster_of_label[labels]
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
    if adj.nnz == 0:  # no edges: every walker stays home
        return np.ones(n, dtype=np.float64)
    indptr = adj.indptr.astype(np.int64)
    indices = adj.indices.astype(np.int64)
    uniform = bool(np.all(adj.data == adj.data[0]))
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
    # ℓ is symmetric: measure each edge once, from its upper-triangle entry, and copy it to
    # the mirrored entry (the gathers of sketch rows are the cost here).
    cols = adj.indices
    upper = np.flatnonzero(rows < cols)
    upper_lengths = np.empty(upper.size, dtype=np.float64)
    for start in range(0, upper.size, _LENGTH_CHUNK):
        edges = upper[start : start + _LENGTH_CHUNK]
        diff = sketch[rows[edges]] - sketch[cols[edges]]
        upper_lengths[start : start + edges.size] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    lengths = np.zeros(adj.nnz, dtype=np.float64)
    lengths[upper] = upper_lengths
    lengths[_mirror_positions(adj)[upper]] = upper_lengths
    return lengths


def _mirror_positions(adj: sp.csr_matrix) -> IntArray:
    """For each stored entry (i, j) of a symmetric CSR matrix, the position of (j, i)."""
    # Transposing a matrix that holds each entry's position (plus one, so none is an
    # explicit zero) lists, in the same structure, the position of the mirrored entry.
    positions = sp.csr_matrix(
        (np.arange(1, adj.nnz + 1, dtype=np.int64), adj.indices, adj.indptr), shape=adj.shape
    )
    mirrored = sp.csr_matrix(positions.T)
    mirrored.sort_indices()
    result: IntArray = mirrored.data - 1
    return result


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


def _walk_similarity(adj: sp.csr_matrix, lengths: FloatArray) -> FloatArray:
    """Edge weight scaled by ``exp(-ℓ / (2 median ℓ))``: a cross-community edge, whose walks
    end up in different places, counts for less than an edge inside a community. (Sharper
    scalings trust the sketch too much in well-mixed graphs, where the edge lengths of the
    two kinds overlap most.)"""
    finite = lengths[np.isfinite(lengths)]
    scale = float(np.median(finite)) if finite.size else 0.0
    if scale <= 0:
        return np.asarray(adj.data, dtype=np.float64).copy()
    result: FloatArray = adj.data * np.exp(-0.5 * lengths / scale)
    return result


class _Refiner:
    """Label refinement and cluster merging on the walk-similarity weights.

    Labels are node ids (a cluster is named by its centre); ``fixed`` marks the centres,
    which never move.
    """

    def __init__(
        self,
        adj: sp.csr_matrix,
        rows: IntArray,
        weight: FloatArray,
        resolution: float,
        rng: np.random.Generator,
    ) -> None:
        self._indptr = adj.indptr.astype(np.int64)
        self._rows = rows
        self._cols = adj.indices.astype(np.int64)
        self._weight = weight
        self._n = int(adj.shape[0])
        self._strength = np.bincount(rows, weights=weight, minlength=self._n)
        self._total = float(self._strength.sum())
        self._resolution = resolution
        self._rng = rng

    def refine(
        self,
        labels: IntArray,
        fixed: npt.NDArray[np.bool_],
        sweeps: int,
        active: npt.NDArray[np.bool_] | None = None,
    ) -> IntArray:
        """Sweeps of label moves; ``active`` limits the first sweep (default: all nodes)."""
        labels = labels.copy()
        active = ~fixed if active is None else active & ~fixed
        for _ in range(sweeps):
            best = self._best_labels(labels, active, banned=None)
            wants = active & (best != labels)
            if not wants.any():
                break
            moved = np.flatnonzero(wants & (self._rng.random(self._n) < _MOVE_SHARE))
            labels[moved] = best[moved]
            # Only nodes next to a move (or still wanting one) can want to move next time.
            active = wants.copy()
            active[moved] = False
            active[self._neighbours(moved)] = True
            active &= ~fixed
        return labels

    def merge_mutual_best(
        self, labels: IntArray, fixed: npt.NDArray[np.bool_], rank: IntArray
    ) -> tuple[IntArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None:
        """Joins mutually best cluster pairs of positive gain; returns the labels, the held
        centres and the nodes next to or inside a merged cluster, or None if none merged."""
        n = self._n
        volume: FloatArray = np.bincount(labels, weights=self._strength, minlength=n).astype(
            np.float64
        )
        # Only edges between clusters matter; the diagonal is never a merge.
        cross = np.flatnonzero(labels[self._rows] != labels[self._cols])
        between = sp.csr_matrix(
            (self._weight[cross], (labels[self._rows[cross]], labels[self._cols[cross]])),
            shape=(n, n),
        )
        between.sum_duplicates()
        source = np.repeat(np.arange(n, dtype=np.int64), np.diff(between.indptr))
        target = between.indices.astype(np.int64)
        gain = between.data - (self._penalty_scale(volume) * volume[source] * volume[target])
        best = np.full(n, -np.inf)
        np.maximum.at(best, source, gain)
        hit = np.flatnonzero((gain > 0) & (gain >= best[source]))
        # Ties go to the lower cluster id (entries are sorted by target within a source).
        named, first = np.unique(source[hit], return_index=True)
        partner = np.full(n, -1, dtype=np.int64)
        partner[named] = target[hit[first]]
        mutual = named[partner[partner[named]] == named]
        if mutual.size == 0:
            return None
        loser = mutual[rank[mutual] < rank[partner[mutual]]]
        rename = np.arange(n, dtype=np.int64)
        rename[loser] = partner[loser]
        fixed = fixed.copy()
        fixed[loser] = False
        touched = np.zeros(n, dtype=np.bool_)
        touched[mutual] = True
        affected = touched[labels]
        affected[self._neighbours(np.flatnonzero(affected))] = True
        return rename[labels], fixed, affected

    def dissolve_small(
        self,
        labels: IntArray,
        fixed: npt.NDArray[np.bool_],
        min_cluster_size: int,
        sweeps: int,
    ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        labels = labels.copy()
        sizes = np.bincount(labels, minlength=self._n)
        banned = (sizes > 0) & (sizes < min_cluster_size)
        if not banned.any():
            return labels, fixed
        fixed = fixed & ~banned
        for _ in range(sweeps):
            stranded = banned[labels]
            if not stranded.any():
                break
            best = self._best_labels(labels, stranded, banned=banned)
            moves = stranded & ~banned[best]
            if not moves.any():
                break  # the rest have no neighbour outside the dissolved clusters
            labels[moves] = best[moves]
        return labels, fixed

    def _best_labels(
        self,
        labels: IntArray,
        active: npt.NDArray[np.bool_],
        banned: npt.NDArray[np.bool_] | None,
    ) -> IntArray:
        """The neighbouring label of largest gain for each active node: its own label when
        it has a neighbour there and keeping it is at least as good, else the lowest label
        of largest gain among its neighbours' (unchanged when it has no neighbours)."""
        n = self._n
        edges = np.flatnonzero(active[self._rows])
        rows, neighbour_label = self._rows[edges], labels[self._cols[edges]]
        volume: FloatArray = np.bincount(labels, weights=self._strength, minlength=n).astype(
            np.float64
        )
        scale = self._penalty_scale(volume)
        strength = self._strength
        # The own label from a plain sum; only edges to other clusters need grouping by
        # label, and once the labels settle they are the minority.
        same = neighbour_label == labels[rows]
        own_weight = np.bincount(rows[same], weights=self._weight[edges[same]], minlength=n)
        # Leaving its own cluster removes the node's weight from that cluster's volume.
        own_gain = own_weight - scale * strength * (volume[labels] - strength)
        own_gain[np.bincount(rows[same], minlength=n) == 0] = -np.inf
        if banned is not None:
            own_gain[banned[labels]] = -np.inf
        cross = ~same
        # Rows of a CSR matrix built from (node, neighbour's label) sum the weight per label;
        # its entries come sorted by node, then label.
        per_label = sp.csr_matrix(
            (self._weight[edges[cross]], (rows[cross], neighbour_label[cross])), shape=(n, n)
        )
        per_label.sum_duplicates()
        node = np.repeat(np.arange(n, dtype=np.int64), np.diff(per_label.indptr))
        label = per_label.indices.astype(np.int64)
        gain = per_label.data - scale * strength[node] * volume[label]
        if banned is not None:
            gain[banned[label]] = -np.inf
        best_gain = np.full(n, -np.inf)
        np.maximum.at(best_gain, node, gain)
        # First (lowest-label) entry of each node reaching its best, if that beats staying.
        hit = np.flatnonzero(
            (gain >= best_gain[node]) & np.isfinite(gain) & (gain > own_gain[node])
        )
        first = hit[np.r_[True, node[hit][1:] != node[hit][:-1]]] if hit.size else hit
        best = labels.copy()
        best[node[first]] = label[first]
        return best

    def _penalty_scale(self, volume: FloatArray) -> float:
        # Never below modularity's own penalty (1 / 2m): on a graph of few clusters, each
        # pair shares a sizeable weight by chance, which the size-free term alone would
        # take for a split community and merge.
        floor = _MODULARITY_FLOOR / self._total if self._total > 0 else 0.0
        return max(self._resolution / _typical_volume(volume), floor)

    def _neighbours(self, nodes: IntArray) -> IntArray:
        starts = self._indptr[nodes]
        degree = self._indptr[nodes + 1] - starts
        offsets = np.arange(int(degree.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(degree) - degree, degree
        )
        result: IntArray = self._cols[np.repeat(starts, degree) + offsets]
        return result


def _typical_volume(volume: FloatArray) -> float:
    """The cluster volume a random edge end sees, ``Σ K_c² / Σ K_c``: the reference of the
    gains. It keeps the penalty of joining a cluster from fading as the graph grows
    (modularity's ``K_c / 2m`` does, and so merges ever larger groups on larger graphs),
    and unlike the plain mean it is not dragged down by a crowd of tiny clusters (the
    fraud graph's families and singletons), which would split its large, dense rings."""
    used = volume[volume > 0]
    return float((used**2).sum() / used.sum()) if used.size else 1.0


def _cluster_centres(labels: IntArray, rank: IntArray) -> IntArray:
    """One centre per cluster: the node the cluster is named after when it is still a
    member (always, for held centres), otherwise the densest member."""
    named = np.unique(labels)
    centre = np.full(labels.size, -1, dtype=np.int64)
    kept = named[labels[named] == named]
    centre[kept] = kept
    orphan = named[labels[named] != named]
    if orphan.size:
        members = np.flatnonzero(np.isin(labels, orphan))
        # Densest member per orphaned label: sort by (label, -rank), take the first.
        members = members[np.lexsort((-rank[members], labels[members]))]
        first = np.r_[True, labels[members][1:] != labels[members][:-1]]
        centre[labels[members[first]]] = members[first]
    result: IntArray = centre[named]
    return result
