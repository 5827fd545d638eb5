"""Ring detection at scale: nightly-job stages, quality against planted rings, local queries.

Usage:
    .venv/bin/python bench/bench_rings.py --data DIR [--db PATH] [--queries 1000]

DIR holds a generated bank (`riskgraph generate DIR --customers 1000000`) with its truth;
the store (default DIR/kg.db) must already hold it (`riskgraph ingest DIR`). Runs the nightly
job once (stage wall times and peak memory), scores density-peak and Leiden detection and
both baselines against `truth/rings.json`, then times local ring queries from random
customers and from planted ring members. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from kg.sqlite_store import SQLiteStore
from risk.rings.detect import DetectionParams, detect_rings, local_ring
from risk.rings.evaluate import (
    identifier_components_baseline,
    leiden_bad_loan_baseline,
    load_planted_rings,
    ring_quality,
)
from risk.rings.fraud_graph import FraudGraph
from risk.rings.nightly import run_ring_detection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--skip-leiden", action="store_true", help="skip Leiden detection")
    args = parser.parse_args()
    db = args.db or args.data / "kg.db"
    store = SQLiteStore(db)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")

    started = time.perf_counter()
    run = run_ring_detection(store, artefact_dir=db.parent)
    total = time.perf_counter() - started
    graph = run.graph
    assert graph is not None
    print(
        f"\n## Nightly job: {graph.num_customers:,} customers, "
        f"{graph.adjacency.nnz // 2:,} fraud-graph edges, {run.candidates:,} candidates, "
        f"{len(run.rings)} flagged\n"
    )
    print("| stage | wall s | peak RSS MiB (process, so far) |\n| --- | ---: | ---: |")
    doc = store.get_document("ring_runs", run.run_id) or {}
    for stage, seconds in run.stage_seconds.items():
        print(f"| {stage} | {seconds:.1f} | {doc.get('peak_rss_mib', {}).get(stage, '')} |")
    for stage, seconds in graph.stage_seconds.items():
        print(f"| · fraud graph / {stage} | {seconds:.1f} | |")
    print(f"| **total** | **{total:.1f}** | **{run.peak_rss_mib:.0f}** |")

    planted = load_planted_rings(args.data / "truth")
    print(f"\n## Quality against {len(planted)} planted rings\n")
    print("| method | precision | recall | F1 | ring recall | flagged | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ids = graph.ids

    def row(name: str, flagged: list[set[str]], seconds: float) -> None:
        q = ring_quality(flagged, planted)
        print(
            f"| {name} | {q.precision:.3f} | {q.recall:.3f} | {q.f1:.3f} | "
            f"{q.ring_recall:.3f} | {q.flagged_rings} | {seconds:.1f} |"
        )

    row(
        "density peak + cores (nightly job)",
        [set(r["members"]) for r in run.rings],
        run.stage_seconds["clustering"] + run.stage_seconds["scoring"],
    )
    if not args.skip_leiden:
        mark = time.perf_counter()
        rings = detect_rings(graph, DetectionParams(method="leiden"))
        row(
            "Leiden + cores",
            [{str(ids[i]) for i in r.members.tolist()} for r in rings if r.flagged],
            time.perf_counter() - mark,
        )
    mark = time.perf_counter()
    wcc = identifier_components_baseline(graph)
    row("baseline (a): identifier WCC", wcc, time.perf_counter() - mark)
    mark = time.perf_counter()
    leiden = leiden_bad_loan_baseline(graph)
    row("baseline (b): Leiden + bad-loan filter", leiden, time.perf_counter() - mark)

    loaded = FraudGraph.load(Path(run.artefact)) if run.artefact else graph
    rng = np.random.default_rng(0)
    members = sorted({m for ring in planted for m in ring})
    seeds = [str(ids[i]) for i in rng.integers(0, graph.num_customers, args.queries // 2)]
    seeds += [members[i] for i in rng.integers(0, len(members), args.queries - len(seeds))]
    wall, cpu = [], []
    for seed in seeds:
        w, c = time.perf_counter(), time.thread_time()
        local_ring(loaded, seed)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    w_ms, c_ms = np.array(wall) * 1000, np.array(cpu) * 1000
    print(f"\n## Local ring queries ({len(seeds)}: half random customers, half ring members)\n")
    print("| | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: |")
    print(
        f"| wall | {np.percentile(w_ms, 50):.1f} | {np.percentile(w_ms, 99):.1f} | "
        f"{w_ms.max():.1f} |"
    )
    print(
        f"| CPU (this thread) | {np.percentile(c_ms, 50):.1f} | {np.percentile(c_ms, 99):.1f} | "
        f"{c_ms.max():.1f} |"
    )
    store.close()


if __name__ == "__main__":
    main()
