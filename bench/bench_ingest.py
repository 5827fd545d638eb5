"""Ingest and projection throughput on a synthetic bank, with peak memory.

Usage:
    .venv/bin/python bench/bench_ingest.py --customers 1000000 [--data DIR] [--db PATH]

Generates the bank first (in a child process, so its memory is not counted) unless DIR
already holds one, ingests it into a fresh SQLite store, then builds the projection of every
relationship type twice: from the columnar copies the ingest wrote, and cold (copies
dropped, rows read and the copies written again). Resident memory is sampled every 0.2 s and
reported per stage: each file, then the transfer rebuild (which first waits for the index
builds and copies the load runs on a worker thread while the transactions are read), the end
of the bulk load, then the last copies and the commit. Prints markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from ingest.pipeline import ingest_directory
from kg.projection import Projection
from kg.sqlite_store import SQLiteStore


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageMemory:
    """Samples this process's resident memory and keeps the peak per named stage."""

    def __init__(self) -> None:
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._entered = time.perf_counter()
        self._rows: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.2):
            mib = process.memory_info().rss / 2**20
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), mib)

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self._entered
        self._entered = now
        self.stage = stage

    def progress(self, name: str, rows: int, total: int) -> None:
        """Ingest progress hook: called after each batch of a file."""
        self._rows[name] = self._rows.get(name, 0) + rows
        if self._rows[name] < total:
            self.enter(f"loading {name}")
        elif not self.stage.startswith(f"{name} done"):
            self.enter(f"{name} done, first batch of the next file")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class StagedStore(SQLiteStore):
    """The SQLite store, telling the memory sampler which bulk stage runs."""

    memory: StageMemory

    def rebuild_transfers(self) -> int:
        self.memory.enter("transfer rebuild")
        return super().rebuild_transfers()

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        with super().bulk_load():
            yield
            self.memory.enter("end of the bulk load (what the worker left)")

    def refresh_columnar_copies(self) -> None:
        self.memory.enter("last copies and commit")
        super().refresh_columnar_copies()


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

    memory = StageMemory()
    store = StagedStore(db)
    store.memory = memory
    started = time.perf_counter()
    report = ingest_directory(store, data, progress=memory.progress)
    wall = time.perf_counter() - started
    memory.enter("done")
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
    # The job's own figure stops before the end of the bulk load (last copies, commit).
    print(
        f"wall time including the end of the bulk load and the commit: {wall:.1f} s "
        f"({report.rows / wall:,.0f} rows/s)"
    )
    print("\n| stage | seconds | peak RSS MiB |\n| --- | ---: | ---: |")
    for stage, mib in memory.peaks.items():
        print(f"| {stage} | {memory.seconds.get(stage, 0.0):.1f} | {mib:,.0f} |")
    memory.stop()

    for kind in ("from the columnar copies", "cold (copies dropped)"):
        if kind.startswith("cold"):
            with sqlite3.connect(db) as conn:
                conn.execute("DELETE FROM columnar_segments")
        started = time.perf_counter()
        projection = Projection.from_store(store)
        seconds = time.perf_counter() - started
        print(
            f"\nprojection of all relationship types, {kind}: {projection.num_nodes:,} nodes, "
            f"{projection.num_edges:,} edges in {seconds:.1f} s "
            f"({projection.num_edges / seconds:,.0f} edges/s); peak RSS {peak_rss_mib():,.0f} MiB"
        )
        del projection
    store.close()


if __name__ == "__main__":
    main()
