"""Ingest and projection throughput on a synthetic bank, with peak memory.

Usage:
    .venv/bin/python bench/bench_ingest.py --customers 1000000 [--data DIR] [--db PATH]

Generates the bank first (in a child process, so its memory is not counted) unless DIR
already holds one, ingests it into a fresh SQLite store, then builds the projection of every
relationship type. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest.pipeline import ingest_directory
from kg.projection import Projection
from kg.sqlite_store import SQLiteStore


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="riskgraph-bench-"))
    data = args.data or work / "bank"
    if not (data / "persons.csv").exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "api.cli",
                "generate",
                str(data),
                "--customers",
                str(args.customers),
                "--seed",
                "42",
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        print(f"generated {args.customers:,} customers in {time.perf_counter() - started:.1f} s")
    db = args.db or work / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    store = SQLiteStore(db)
    report = ingest_directory(store, data)
    ingest_peak = peak_rss_mib()

    print(
        f"\n### Ingest, {args.customers:,} customers ({platform.node()}, {os.cpu_count()} cores)\n"
    )
    print("| file | rows | seconds | rows/s |")
    print("| --- | ---: | ---: | ---: |")
    for f in report.files:
        print(f"| {f.file} | {f.rows:,} | {f.seconds:.1f} | {f.rows_per_second:,.0f} |")
    print(
        f"| **all** | **{report.rows:,}** | **{report.seconds:.1f}** | "
        f"**{report.rows / report.seconds:,.0f}** |"
    )
    store_mib = db.stat().st_size / 2**20
    print(f"\npeak RSS during ingest: {ingest_peak:,.0f} MiB; store file {store_mib:,.0f} MiB")

    started = time.perf_counter()
    projection = Projection.from_store(store)
    seconds = time.perf_counter() - started
    print(
        f"\nprojection of all relationship types: {projection.num_nodes:,} nodes, "
        f"{projection.num_edges:,} edges in {seconds:.1f} s "
        f"({projection.num_edges / seconds:,.0f} edges/s); peak RSS {peak_rss_mib():,.0f} MiB"
    )
    store.close()


if __name__ == "__main__":
    main()
