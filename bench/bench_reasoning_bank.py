"""Reasoning benchmark on the synthetic bank: full materialisation and incremental batches.

Prepare a store once (ingest is the slow part), then run this on a copy of it:

    .venv/bin/riskgraph generate /tmp/rb --customers 1000000 --seed 42
    .venv/bin/riskgraph ingest /tmp/rb --db /tmp/rb.db
    .venv/bin/python bench/bench_reasoning_bank.py --db /tmp/rb.db [--batch 1000]

Measures `materialise` wall time by stage (load, fixpoint, premises, write), peak RSS and the
inferred facts per predicate; then opens a `StoreReasoner` and times two batches of new
edges between existing customers: guarantees and device uses (device counts are an
aggregate with a cap), and shareholdings (control sums votes through controlled companies;
effective ownership follows). Each batch is timed from the edges to the committed store.
`--materialised` skips the full run on a store whose inferred facts are current (after
`riskgraph reason`). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from reasoning.store_incremental import StoreReasoner


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def ids_of(store: SQLiteStore, label: Label, limit: int = 200_000) -> list[str]:
    out: list[str] = []
    for batch in store.node_batches(label):
        out += batch.column("id").to_pylist()
        if len(out) >= limit:
            break
    return out[:limit]


def provenance(n: int, name: str) -> dict[str, list[object]]:
    return {"_source": [name] * n, "_line": list(range(2, n + 2)), "_job": ["bench"] * n}


def batches(store: SQLiteStore, size: int, seed: int = 1) -> dict[str, dict[RelType, pa.Table]]:
    rng = np.random.default_rng(seed)
    persons, companies = ids_of(store, Label.PERSON), ids_of(store, Label.COMPANY)
    devices = ids_of(store, Label.DEVICE)
    parties = persons + companies
    g = size // 2
    src = [parties[i] for i in rng.integers(0, len(parties), g)]
    dst = [parties[i] for i in rng.integers(0, len(parties), g)]
    gid = [f"BENCH-G{i}" for i in range(g)]
    guarantees = pa.table(
        {"src": src, "dst": dst, "key": gid, "guarantee_id": gid, "amount": [1e6] * g}
        | provenance(g, "bench_guarantees.csv")
    )
    d = size - g
    uses = pa.table(
        {
            "src": [parties[i] for i in rng.integers(0, len(parties), d)],
            "dst": [devices[i] for i in rng.integers(0, len(devices), d)],
            "key": [""] * d,
        }
        | provenance(d, "bench_devices.csv")
    )
    holders = [parties[i] for i in rng.integers(0, len(parties), size)]
    held = [companies[i] for i in rng.integers(0, len(companies), size)]
    pct = rng.uniform(5, 60, size).round(2).tolist()
    shares = pa.table(
        {"src": holders, "dst": held, "key": [""] * size, "share_pct": pct, "voting_pct": pct}
        | provenance(size, "bench_shareholdings.csv")
    )
    return {
        f"{g} guarantees + {d} device uses": {
            RelType.GUARANTEES: guarantees,
            RelType.USES_DEVICE: uses,
        },
        f"{size} shareholdings": {RelType.HOLDS_SHARES: shares},
    }


def full_run(store: SQLiteStore, customers: int) -> None:
    summary = materialise(store)
    rss = peak_rss_gib()
    print(f"## Full materialisation — {customers:,} customers\n")
    print("| stage | seconds |\n| --- | ---: |")
    for stage, seconds in summary.stages.items():
        # `premises` and `write` split the `premises+write` stage above them
        label = f"of which {stage}" if stage in ("premises", "write") else stage
        print(f"| {label} | {seconds:.1f} |")
    print(f"| **total** | **{summary.seconds:.1f}** |")
    print(
        f"\nfacts in {summary.facts_in:,}; derived {summary.inferred:,} in "
        f"{summary.iterations} rounds; written {summary.written:,}; peak RSS {rss:.2f} GiB\n"
    )
    print("| predicate | inferred facts |\n| --- | ---: |")
    for pred, count in sorted(summary.per_predicate.items()):
        print(f"| {pred} | {count:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True, help="an ingested synthetic bank")
    parser.add_argument("--work", type=Path, default=None, help="copy to reason on")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--materialised",
        action="store_true",
        help="the store's inferred facts are current (riskgraph reason): time the batches only",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="reason on --db itself (a scratch copy already: a 1M bank is 15 GB)",
    )
    args = parser.parse_args()
    if args.in_place:
        work = args.db
    else:
        work = args.work or args.db.with_name(args.db.stem + "-bench.db")
        shutil.copyfile(args.db, work)
    store = SQLiteStore(work)
    customers = store.count_nodes(Label.PERSON) + store.count_nodes(Label.COMPANY)

    if not args.materialised:
        full_run(store, customers)
    gc.collect()

    t0 = time.perf_counter()
    live = StoreReasoner.open(store)
    opened = time.perf_counter() - t0
    print(
        f"\n## Incremental batches — {customers:,} customers "
        f"(reasoner opened in {opened:.1f} s, peak RSS {peak_rss_gib():.2f} GiB)\n"
    )
    print(
        "| batch | seconds | facts added | facts removed | peak RSS GiB |\n"
        "| --- | ---: | ---: | ---: | ---: |"
    )
    for name, tables in batches(store, args.batch).items():
        t0 = time.perf_counter()
        change = live.apply_changes(inserted=tables)
        seconds = time.perf_counter() - t0
        added, removed = change.count()
        print(f"| {name} | {seconds:.2f} | {added:,} | {removed:,} | {peak_rss_gib():.2f} |")
    store.close()


if __name__ == "__main__":
    main()
