"""Graph clustering for fraud-ring detection on a projected weighted undirected graph.

* :func:`leiden_communities`, :func:`infomap_communities`: global partitions via igraph.
* :func:`density_peak_communities`: density-peak clustering driven by random-path sampling.
* :func:`mappr_cluster`: local triangle-motif cluster around one seed node (MAPPR).
"""

from risk.community.density_peak import DensityPeakClustering, density_peak_communities
from risk.community.leiden import (
    Graph,
    as_csr_adjacency,
    infomap_communities,
    leiden_communities,
    to_igraph,
)
from risk.community.local_motif import (
    LocalCluster,
    edge_conductance,
    mappr_cluster,
    motif_conductance,
    push_ppr,
    triangle_weights,
)

__all__ = [
    "DensityPeakClustering",
    "Graph",
    "LocalCluster",
    "as_csr_adjacency",
    "density_peak_communities",
    "edge_conductance",
    "infomap_communities",
    "leiden_communities",
    "mappr_cluster",
    "motif_conductance",
    "push_ppr",
    "to_igraph",
    "triangle_weights",
]
