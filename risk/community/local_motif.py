"""Local higher-order clustering around a seed node: motif-weighted approximate PageRank (MAPPR).

Yin, Benson, Leskovec & Gleich, "Local Higher-Order Graph Clustering", KDD 2017. The motif is
the triangle: ``W_M[i, j]`` is the number of triangles that contain edge ``(i, j)``. A personalised
PageRank vector of the seed on ``W_M`` is approximated by the push algorithm of Andersen, Chung &
Lang (FOCS 2006), and a sweep over the nodes sorted by ``p_u / d_u`` returns the prefix of least
motif conductance ``cut_M(S) / min(vol_M(S), vol_M(V \\ S))``. A seed in no triangle falls back
to the same procedure on the edge weights.

On a large graph a single query computes ``W_M`` only for the rows the push touches, so its
cost depends on the neighbourhood explored (bounded by ``1 / epsilon`` motif volume), not on the
graph size; a small graph (a neighbourhood cut out for the query) gets all of ``W_M`` from one
sparse product. The push runs in rounds, every node over its threshold at once, so a query is
a few array operations per round rather than a Python step per push.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from risk.community.leiden import Graph, as_csr_adjacency

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Graphs up to this many nodes get their whole triangle-motif matrix at once.
_EAGER_NODES = 20_000


@dataclass(frozen=True)
class LocalCluster:
    """Result of :func:`mappr_cluster`.

    Attributes:
        nodes: members of the best sweep set, ascending.
        conductance: motif conductance of ``nodes`` (edge conductance if ``used_motif`` is
            False).
        sweep_order: the swept nodes, by decreasing ``p_u / d_u``.
        sweep_conductance: conductance of each prefix ``sweep_order[:k + 1]``.
        used_motif: False when the seed is in no triangle and edge weights were used.
    """

    nodes: IntArray
    conductance: float
    sweep_order: IntArray
    sweep_conductance: FloatArray
    used_motif: bool


def triangle_weights(adj: Graph) -> sp.csr_matrix:
    """Returns the triangle-motif adjacency of the whole graph.

    ``W_M[i, j]`` is the number of triangles containing edge ``(i, j)`` (edge weights are
    ignored: a triangle counts once). Entries for edges in no triangle are not stored.

    Example:
        >>> import networkx as nx
        >>> k4 = nx.to_scipy_sparse_array(nx.complete_graph(4), format="csr")
        >>> triangle_weights(k4).toarray()[0].tolist()
        [0.0, 2.0, 2.0, 2.0]
    """
    pattern = as_csr_adjacency(adj)
    pattern.data = np.ones_like(pattern.data)
    weights = sp.csr_matrix((pattern @ pattern).multiply(pattern), dtype=np.float64)
    weights.eliminate_zeros()
    weights.sort_indices()
    return weights


def motif_conductance(adj: Graph, nodes: npt.ArrayLike) -> float:
    """Triangle-motif conductance of a node set: cut_M(S) / min(vol_M(S), vol_M(V \\ S)).

    Returns 1.0 for a set whose smaller side has no motif volume.
    """
    return _conductance(triangle_weights(adj), np.asarray(nodes, dtype=np.int64))


def edge_conductance(adj: Graph, nodes: npt.ArrayLike) -> float:
    """Weighted edge conductance of a node set: cut(S) / min(vol(S), vol(V \\ S))."""
    return _conductance(as_csr_adjacency(adj), np.asarray(nodes, dtype=np.int64))


def push_ppr(
    weights: Graph, seed: int, alpha: float = 0.05, epsilon: float = 1e-4
) -> tuple[IntArray, FloatArray]:
    """Approximate personalised PageRank of ``seed`` by the Andersen–Chung–Lang push.

    The vector approximated is ``ppr = alpha * e_seed (I - (1 - alpha) D^-1 W)^-1`` with
    ``alpha`` the restart probability. On return ``0 <= ppr_u - p_u <= epsilon * d_u`` for
    every node ``u`` (``d_u`` the weighted degree).

    Args:
        weights: symmetric non-negative weights, e.g. :func:`triangle_weights`.
        seed: the node the walk restarts at.
        alpha: restart probability (MAPPR's ``α = 0.98`` continuation is ``alpha = 0.02``).
        epsilon: residual tolerance per unit of degree.

    Returns:
        The nodes with non-zero approximate PageRank (ascending) and their values.
    """
    rows = _CsrRows(as_csr_adjacency(weights))
    p = _push(rows, seed, alpha, epsilon)
    support = np.flatnonzero(p)
    return support, p[support]


def mappr_cluster(
    graph: Graph,
    seed: int,
    *,
    alpha: float = 0.05,
    epsilon: float = 1e-4,
    motif_weights: sp.csr_matrix | None = None,
) -> LocalCluster:
    """Finds the low motif-conductance cluster around a seed node (MAPPR).

    Args:
        graph: symmetric CSR adjacency (float64 weights, no self loops) or igraph Graph.
        seed: the node to cluster around.
        alpha: restart probability of the personalised PageRank.
        epsilon: push tolerance; smaller explores more and finds larger clusters.
        motif_weights: :func:`triangle_weights` of ``graph`` when already computed for a
            batch of queries. Without it only the rows the push touches are computed, and
            motif volumes are then measured on the set's side alone (``min(vol_M(S), ·)`` is
            taken as ``vol_M(S)``, exact whenever the set holds at most half the motif volume).

    Returns:
        The best sweep set with its conductance and the sweep profile.

    Raises:
        ValueError: if the seed is out of range or has no edges.

    Example:
        >>> import networkx as nx
        >>> ring = nx.to_scipy_sparse_array(nx.ring_of_cliques(5, 6), format="csr")
        >>> mappr_cluster(ring, seed=7).nodes.tolist()
        [6, 7, 8, 9, 10, 11]
    """
    adj = as_csr_adjacency(graph)
    n = adj.shape[0]
    if not 0 <= seed < n:
        raise ValueError(f"seed {seed} is not a node of a graph with {n} nodes")
    if adj.indptr[seed + 1] == adj.indptr[seed]:
        raise ValueError(f"seed {seed} has no edges")
    rows: _Rows
    total_volume: float | None
    if motif_weights is not None:
        rows = _CsrRows(motif_weights)
        total_volume = float(motif_weights.sum())
    elif n <= _EAGER_NODES:
        # A small graph (a neighbourhood cut out for one query): one sparse product gives
        # every row at once, the same rows the lazy path would compute one by one.
        rows = _CsrRows(triangle_weights(adj))
        total_volume = None
    else:
        rows = _LocalTriangleRows(adj)
        total_volume = None
    used_motif = rows.degree(seed) > 0
    if not used_motif:
        rows = _CsrRows(adj)
        total_volume = float(adj.data.sum())
    p = _push(rows, seed, alpha, epsilon)
    order, profile = _sweep(rows, p, total_volume)
    best = int(np.argmin(profile))
    return LocalCluster(
        nodes=np.sort(order[: best + 1]),
        conductance=float(profile[best]),
        sweep_order=order,
        sweep_conductance=profile,
        used_motif=used_motif,
    )


class _Rows(Protocol):
    n: int

    def row(self, node: int) -> tuple[IntArray, FloatArray]: ...

    def rows(self, nodes: IntArray) -> tuple[IntArray, IntArray, FloatArray]: ...

    def degree(self, node: int) -> float: ...

    def degrees(self, nodes: IntArray) -> FloatArray: ...


class _CsrRows:
    """Rows of a precomputed symmetric weight matrix; degrees are summed on demand."""

    def __init__(self, weights: sp.csr_matrix) -> None:
        self.matrix = weights
        self._indptr = weights.indptr
        self._indices = weights.indices
        self._data = weights.data
        self.n: int = weights.shape[0]

    def row(self, node: int) -> tuple[IntArray, FloatArray]:
        lo, hi = self._indptr[node], self._indptr[node + 1]
        return (
            self._indices[lo:hi].astype(np.int64),
            self._data[lo:hi].astype(np.float64),
        )

    def degree(self, node: int) -> float:
        return float(self._data[self._indptr[node] : self._indptr[node + 1]].sum())

    def rows(self, nodes: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The rows of ``nodes`` at once: (slot in ``nodes``, neighbour, weight) per entry."""
        starts = self._indptr[nodes].astype(np.int64)
        lengths = self._indptr[nodes + 1].astype(np.int64) - starts
        owner = np.repeat(np.arange(nodes.size, dtype=np.int64), lengths)
        entries = concat_ranges(starts, lengths)
        return (
            owner,
            self._indices[entries].astype(np.int64),
            self._data[entries].astype(np.float64),
        )

    def degrees(self, nodes: IntArray) -> FloatArray:
        starts = self._indptr[nodes].astype(np.int64)
        lengths = self._indptr[nodes + 1].astype(np.int64) - starts
        owner = np.repeat(np.arange(nodes.size), lengths)
        result: FloatArray = np.bincount(
            owner, weights=self._data[concat_ranges(starts, lengths)], minlength=nodes.size
        ).astype(np.float64)
        return result


class _LocalTriangleRows:
    """Rows of the triangle-motif matrix, computed on first use for the nodes touched."""

    def __init__(self, adj: sp.csr_matrix) -> None:
        self._indptr = adj.indptr
        self._indices = adj.indices
        self.n: int = adj.shape[0]
        self._rows: dict[int, tuple[IntArray, FloatArray]] = {}
        self._degree: dict[int, float] = {}

    def row(self, node: int) -> tuple[IntArray, FloatArray]:
        if node not in self._rows:
            self._compute(np.array([node], dtype=np.int64))
        return self._rows[node]

    def degree(self, node: int) -> float:
        return float(self.degrees(np.array([node], dtype=np.int64))[0])

    def rows(self, nodes: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The rows of ``nodes`` at once: (slot in ``nodes``, neighbour, weight) per entry."""
        missing = np.array([u for u in nodes.tolist() if u not in self._rows], dtype=np.int64)
        if missing.size:
            self._compute(missing)
        parts = [self._rows[u] for u in nodes.tolist()]
        lengths = np.array([nbrs.size for nbrs, _ in parts], dtype=np.int64)
        owner = np.repeat(np.arange(nodes.size, dtype=np.int64), lengths)
        if not parts:
            return owner, np.zeros(0, dtype=np.int64), np.zeros(0)
        return (
            owner,
            np.concatenate([nbrs for nbrs, _ in parts]),
            np.concatenate([weights for _, weights in parts]),
        )

    def degrees(self, nodes: IntArray) -> FloatArray:
        missing = np.array([u for u in nodes.tolist() if u not in self._degree], dtype=np.int64)
        if missing.size:
            self._compute(missing)
        return np.array([self._degree[u] for u in nodes.tolist()], dtype=np.float64)

    def _compute(self, nodes: IntArray) -> None:
        # For every edge (u, v) with u in `nodes`, count the neighbours of v that are also
        # neighbours of u: one membership test over (u, neighbour) keys for the whole batch.
        indptr, indices, n = self._indptr, self._indices, self.n
        degree = (indptr[nodes + 1] - indptr[nodes]).astype(np.int64)
        owner = np.repeat(np.arange(nodes.size, dtype=np.int64), degree)
        first_hop: IntArray = indices[concat_ranges(indptr[nodes], degree)].astype(np.int64)
        own_keys = np.sort(owner * n + first_hop)
        hop_degree = (indptr[first_hop + 1] - indptr[first_hop]).astype(np.int64)
        pair = np.repeat(np.arange(first_hop.size, dtype=np.int64), hop_degree)
        second_hop = indices[concat_ranges(indptr[first_hop], hop_degree)].astype(np.int64)
        closes = np.isin(owner[pair] * n + second_hop, own_keys, assume_unique=False)
        counts: FloatArray = np.bincount(pair, weights=closes, minlength=first_hop.size).astype(
            np.float64
        )
        bounds = np.concatenate([[0], np.cumsum(degree)])
        for slot, node in enumerate(nodes.tolist()):
            nbrs = first_hop[bounds[slot] : bounds[slot + 1]]
            weights = counts[bounds[slot] : bounds[slot + 1]]
            keep = weights > 0
            self._rows[node] = (nbrs[keep], weights[keep])
            self._degree[node] = float(weights.sum())


def concat_ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenation of ``arange(s, s + l)`` for each start ``s`` and length ``l``."""
    total = int(lengths.sum())
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    result: IntArray = np.repeat(starts.astype(np.int64), lengths) + offsets
    return result


def _push(rows: _Rows, seed: int, alpha: float, epsilon: float) -> FloatArray:
    # ACL push, all nodes over the threshold at once. Invariant: ppr(seed) = p + ppr(r),
    # whatever the order of the pushes; stopping once r_u < ε d_u everywhere gives
    # 0 <= ppr_u - p_u <= ε d_u on an undirected graph. Pushing a whole round together
    # costs a few array operations per round instead of a Python step per push, which is
    # what bounds a query on a dense neighbourhood (thousands of pushes, ~100 rounds).
    if not 0 < alpha <= 1 or epsilon <= 0:
        raise ValueError("alpha must be in (0, 1] and epsilon positive")
    if isinstance(rows, _CsrRows) and rows.n <= _EAGER_NODES:
        return _push_dense(rows.matrix, seed, alpha, epsilon)
    p = np.zeros(rows.n)
    residual = np.zeros(rows.n)
    residual[seed] = 1.0
    over = np.array([seed], dtype=np.int64)
    over_degree = rows.degrees(over)
    while over.size:
        keep = (over_degree > 0) & (residual[over] >= epsilon * over_degree)
        over, over_degree = over[keep], over_degree[keep]
        if over.size == 0:
            break
        mass = residual[over]
        p[over] += alpha * mass
        residual[over] = 0.0
        owner, nbrs, weights = rows.rows(over)
        np.add.at(residual, nbrs, (1.0 - alpha) * mass[owner] * weights / over_degree[owner])
        # A lower bound on the degree (the weight of the entry just pushed along) rules out
        # most neighbours before their degrees are looked up.
        maybe = np.unique(nbrs[residual[nbrs] >= epsilon * weights])
        maybe_degree = rows.degrees(maybe)
        reached = residual[maybe] >= epsilon * maybe_degree
        over, over_degree = maybe[reached], maybe_degree[reached]
    return p


def _push_dense(weights: sp.csr_matrix, seed: int, alpha: float, epsilon: float) -> FloatArray:
    # The same rounds as `_push` on whole vectors of a small graph: a round is a handful of
    # vector operations and one sparse product, and a query on a small closed group takes
    # ~150 rounds (the residual shrinks by 1 - alpha per round until it is below ε d).
    degree = np.asarray(weights.sum(axis=1)).ravel()
    threshold = np.where(degree > 0, epsilon * degree, np.inf)
    inverse_degree = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    p = np.zeros(weights.shape[0])
    residual = np.zeros(weights.shape[0])
    residual[seed] = 1.0
    while True:
        mass = np.where(residual >= threshold, residual, 0.0)
        if not mass.any():
            return p
        p += alpha * mass
        residual -= mass
        # Symmetric weights: the spread to v is sum_u W[v, u] mass_u / d_u.
        residual += (1.0 - alpha) * (weights @ (mass * inverse_degree))


def _sweep(rows: _Rows, p: FloatArray, total_volume: float | None) -> tuple[IntArray, FloatArray]:
    support = np.flatnonzero(p)
    degree = rows.degrees(support)
    # Decreasing p_u / d_u; ties go to the lower node id.
    rank = np.lexsort((support, -(p[support] / degree)))
    order = support[rank]
    degree = degree[rank]
    position = np.full(rows.n, order.size, dtype=np.int64)
    position[order] = np.arange(order.size, dtype=np.int64)
    # Adding the k-th node moves its weight to earlier nodes from the cut into the set:
    # cut_k = cut_{k-1} + d_k - 2 w(k, earlier). Each edge inside the prefix is counted
    # once, at its later end.
    owner, nbrs, weights = rows.rows(order)
    earlier = position[nbrs] < owner
    inner = np.bincount(owner[earlier], weights=weights[earlier], minlength=order.size)
    cut = np.cumsum(degree - 2.0 * inner)
    volume = np.cumsum(degree)
    smaller = volume if total_volume is None else np.minimum(volume, total_volume - volume)
    profile = np.divide(cut, smaller, out=np.ones(order.size), where=smaller > 0)
    return order, profile


def _conductance(weights: sp.csr_matrix, nodes: IntArray) -> float:
    member = np.zeros(weights.shape[0], dtype=np.bool_)
    member[nodes] = True
    degree = np.asarray(weights.sum(axis=1)).ravel()
    volume = float(degree[member].sum())
    inside = float(weights[member][:, member].sum())
    smaller = min(volume, float(degree.sum()) - volume)
    return (volume - inside) / smaller if smaller > 0 else 1.0
