"""Modularity communities with igraph (Leiden, Infomap) and the CSR <-> igraph interop.

Every clustering in ``risk.community`` accepts either a symmetric ``scipy.sparse`` CSR
adjacency matrix (float64 weights, no self loops) or an undirected ``igraph.Graph`` with an
optional ``"weight"`` edge attribute; the two helpers here convert between them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

import igraph as ig
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Graph: TypeAlias = sp.csr_matrix | sp.csr_array | ig.Graph
"""A weighted undirected graph: symmetric CSR adjacency or igraph Graph."""


def as_csr_adjacency(graph: Graph) -> sp.csr_matrix:
    """Returns the graph as a symmetric float64 CSR adjacency matrix with sorted indices.

    Args:
        graph: symmetric CSR adjacency, or an undirected igraph Graph whose optional
            ``"weight"`` edge attribute holds the weights (1.0 otherwise).

    Raises:
        ValueError: if the matrix is not square.

    Example:
        >>> g = ig.Graph(edges=[(0, 1), (1, 2)])
        >>> as_csr_adjacency(g).toarray().tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    if isinstance(graph, ig.Graph):
        n = graph.vcount()
        edges = np.asarray(graph.get_edgelist(), dtype=np.int64).reshape(-1, 2)
        weights = (
            np.asarray(graph.es["weight"], dtype=np.float64)
            if "weight" in graph.es.attributes()
            else np.ones(len(edges), dtype=np.float64)
        )
        keep = edges[:, 0] != edges[:, 1]
        edges, weights = edges[keep], weights[keep]
        rows = np.concatenate([edges[:, 0], edges[:, 1]])
        cols = np.concatenate([edges[:, 1], edges[:, 0]])
        adj = sp.csr_matrix(
            (np.concatenate([weights, weights]), (rows, cols)), shape=(n, n), dtype=np.float64
        )
    else:
        if graph.shape[0] != graph.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {graph.shape}")
        if (
            isinstance(graph, sp.csr_matrix)
            and graph.dtype == np.float64
            and graph.has_canonical_format
        ):
            # Already what callers need: no copy, so a local query on a huge graph stays local.
            return graph
        adj = sp.csr_matrix(graph, dtype=np.float64)
    adj.sum_duplicates()
    adj.sort_indices()
    return adj


def to_igraph(adj: sp.csr_matrix) -> ig.Graph:
    """Builds an undirected igraph Graph with a ``"weight"`` attribute from a CSR adjacency.

    Each undirected edge is taken once, from the upper triangle.
    """
    upper = sp.triu(adj, k=1, format="coo")
    graph = ig.Graph(
        n=adj.shape[0], edges=np.column_stack([upper.row, upper.col]).tolist(), directed=False
    )
    graph.es["weight"] = upper.data.astype(np.float64).tolist()
    return graph


@contextmanager
def _seeded_igraph(seed: int) -> Iterator[None]:
    # igraph draws from one process-wide generator; give it a private seeded one and put the
    # default (the ``random`` module) back so callers' random state is left untouched.
    ig.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        ig.set_random_number_generator(random)


def leiden_communities(
    adj: Graph, resolution: float = 1.0, seed: int = 0, n_iterations: int = -1
) -> npt.NDArray[np.int64]:
    """Partitions the graph by maximising weighted modularity with the Leiden algorithm.

    Args:
        adj: the weighted undirected graph.
        resolution: modularity resolution; higher gives more, smaller communities.
        seed: seed of igraph's generator for this call; the same seed gives the same labels.
        n_iterations: Leiden iterations; negative runs until an iteration brings no gain.

    Returns:
        Community label per node, ``0..k-1``.

    Example:
        >>> two_triangles = ig.Graph(edges=[(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)])
        >>> leiden_communities(two_triangles).tolist()
        [0, 0, 0, 1, 1, 1]
    """
    graph = adj if isinstance(adj, ig.Graph) else to_igraph(as_csr_adjacency(adj))
    weights = graph.es["weight"] if "weight" in graph.es.attributes() else None
    with _seeded_igraph(seed):
        clustering = graph.community_leiden(
            objective_function="modularity",
            weights=weights,
            resolution=resolution,
            n_iterations=n_iterations,
        )
    return np.asarray(clustering.membership, dtype=np.int64)


def infomap_communities(adj: Graph, trials: int = 10, seed: int = 0) -> npt.NDArray[np.int64]:
    """Partitions the graph by minimising the map equation (Infomap), for benchmarking.

    Args:
        adj: the weighted undirected graph.
        trials: independent Infomap runs; the best code length wins.
        seed: seed of igraph's generator for this call.

    Returns:
        Community label per node, ``0..k-1``.
    """
    graph = adj if isinstance(adj, ig.Graph) else to_igraph(as_csr_adjacency(adj))
    weights = graph.es["weight"] if "weight" in graph.es.attributes() else None
    with _seeded_igraph(seed):
        clustering = graph.community_infomap(edge_weights=weights, trials=trials)
    return np.asarray(clustering.membership, dtype=np.int64)
