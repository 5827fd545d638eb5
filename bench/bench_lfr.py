"""LFR benchmark: density-peak vs igraph Leiden vs Infomap, NMI and wall time per mixing mu.

Run from the repository root:

    .venv/bin/python bench/bench_lfr.py            # 5k and 50k nodes, mu = 0.1 ... 0.6
    .venv/bin/python bench/bench_lfr.py --sizes 5000 --mus 0.3 0.5

LFR graphs (networkx) use tau1 = 3, tau2 = 1.5, average degree 15, maximum degree 50 and
community sizes 20 to 100. Generation may fail to converge; the next seed is tried. NMI is
igraph's ``compare_communities(method="nmi")`` (2 I / (H1 + H2)) against the planted
communities (node attribute ``"community"``). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import igraph as ig
import networkx as nx
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from risk.community import (
    density_peak_communities,
    infomap_communities,
    leiden_communities,
    to_igraph,
)

Labels = npt.NDArray[np.int64]

AVERAGE_DEGREE = 15
MAX_DEGREE = 50
MIN_COMMUNITY = 20
MAX_COMMUNITY = 100
GENERATION_SEEDS = 20


@dataclass(frozen=True)
class LfrGraph:
    adjacency: sp.csr_matrix
    truth: Labels
    seed: int
    seconds: float


def lfr_graph(n: int, mu: float) -> LfrGraph:
    """Generates an LFR graph, trying successive seeds until networkx converges."""
    started = time.perf_counter()
    for seed in range(GENERATION_SEEDS):
        try:
            graph = nx.generators.community.LFR_benchmark_graph(
                n,
                3,
                1.5,
                mu,
                average_degree=AVERAGE_DEGREE,
                max_degree=MAX_DEGREE,
                min_community=MIN_COMMUNITY,
                max_community=MAX_COMMUNITY,
                seed=seed,
                max_iters=500,
            )
        except nx.ExceededMaxIterations:
            continue
        graph.remove_edges_from(nx.selfloop_edges(graph))
        community_id: dict[int, int] = {}
        truth = np.array(
            [
                community_id.setdefault(min(graph.nodes[v]["community"]), len(community_id))
                for v in range(n)
            ],
            dtype=np.int64,
        )
        adjacency = sp.csr_matrix(
            nx.to_scipy_sparse_array(graph, nodelist=range(n), dtype=np.float64)
        )
        return LfrGraph(adjacency, truth, seed, time.perf_counter() - started)
    raise RuntimeError(f"LFR generation did not converge for n={n}, mu={mu}")


def nmi(labels: Labels, truth: Labels) -> float:
    return float(ig.compare_communities(labels.tolist(), truth.tolist(), method="nmi"))


def timed(run: Callable[[], Labels]) -> tuple[Labels, float]:
    started = time.perf_counter()
    labels = run()
    return labels, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--mus", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    args = parser.parse_args()

    print(
        "| n | mu | edges | communities | density-peak NMI (k) | Leiden NMI (k) "
        "| Infomap NMI (k) | density-peak s | Leiden s | Infomap s | LFR gen s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for mu in args.mus:
            lfr = lfr_graph(n, mu)
            graph = to_igraph(lfr.adjacency)
            methods: dict[str, Callable[[], Labels]] = {
                "dp": lambda lfr=lfr: density_peak_communities(lfr.adjacency).membership,
                "leiden": lambda graph=graph: leiden_communities(graph),
                "infomap": lambda graph=graph: infomap_communities(graph),
            }
            results = {name: timed(run) for name, run in methods.items()}
            scores = {name: nmi(labels, lfr.truth) for name, (labels, _) in results.items()}
            best_other = max(scores["leiden"], scores["infomap"])
            cells = [
                f"{scores[name]:.3f} ({int(results[name][0].max()) + 1})"
                + (" **" if name == "dp" and scores["dp"] >= best_other - 0.005 else "")
                for name in methods
            ]
            times = [f"{results[name][1]:.2f}" for name in methods]
            print(
                f"| {n} | {mu:.1f} | {lfr.adjacency.nnz // 2} | {int(lfr.truth.max()) + 1} | "
                + " | ".join(cells)
                + " | "
                + " | ".join(times)
                + f" | {lfr.seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
