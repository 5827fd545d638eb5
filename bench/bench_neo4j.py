"""The embedded store and a real Neo4j server side by side on the same synthetic bank.

Usage:
    .venv/bin/python bench/bench_neo4j.py --customers 20000
    .venv/bin/python bench/bench_neo4j.py --data /tmp/rg1m/bank --neo4j-heap 4g \\
        --neo4j-page-cache 6g

Starts Neo4j Community 5.26 from the Maven launcher (kg/neo4j_server.py), ingests the same
bank into both stores (rows/s per file and overall), reasons on both, then times the
origination check: riskgraph's check on its precomputed index (built from each store) and, as
the peer, a straightforward Cypher query on Neo4j that sums the loan balances of the
borrower's connected clients. Peak memory (RSS) is sampled for this process and for the
server's JVM.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
from neo4j import GraphDatabase

from ingest.generator import generate_bank
from ingest.pipeline import IngestReport, ingest_directory
from kg.neo4j_server import Neo4jDevServer
from kg.neo4j_store import Neo4jStore
from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore
from reasoning.materialise import materialise
from risk.index import build_risk_index
from risk.limits import load_bank_parameters
from risk.origination import check_origination

# The peer: what a team would write first against Neo4j (benchmark only, not product code).
CYPHER_GROUP_EXPOSURE = (
    "MATCH (b:Node {id: $id}) "
    "OPTIONAL MATCH (b)-[:INFERRED {predicate: 'connectedClient'}]-(m:Node) "
    "WITH b, collect(DISTINCT m) + [b] AS members "
    "UNWIND members AS member "
    "OPTIONAL MATCH (member)-[:BORROWED]->(loan:Loan) "
    "RETURN sum(loan.balance) AS exposure, count(DISTINCT member) AS members"
)
GIB = 1 << 30


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process, this one by default (0 once it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


class PeakMemory:
    """Samples the RSS of some processes twice a second and keeps each one's peak."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_bytes(pid))

    @contextmanager
    def watching(self) -> Iterator[PeakMemory]:
        self.peaks = {name: rss_bytes(pid) for name, pid in self.pids.items()}
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    def describe(self) -> str:
        return ", ".join(f"{name} {peak / GIB:.1f} GiB" for name, peak in self.peaks.items())


def packstream_packer() -> str:
    """Which packer the driver uses: the Rust extension (neo4j-rust-ext) packs parameters
    tens of times faster than the pure-Python one."""
    from neo4j._codec.packstream import v1

    return "rust" if getattr(v1, "_rust_pack", None) else "python"


def print_files(name: str, report: IngestReport) -> None:
    print(f"\n{name}: rows/s per file\n")
    print("| file | rows | seconds | rows/s |")
    print("| --- | ---: | ---: | ---: |")
    for file in report.files:
        print(f"| {file.file} | {file.rows:,} | {file.seconds:.1f} | {file.rows_per_second:,.0f} |")


def run_store(
    name: str,
    store: GraphStore,
    bank: Path,
    memory: PeakMemory,
    checks: int,
    borrowers: list[str],
) -> tuple[str, list[str]]:
    """Ingest, reason and time the check on one store; returns its summary row."""
    params = load_bank_parameters(bank / "bank.toml")
    with memory.watching():
        started = time.perf_counter()
        report = ingest_directory(store, bank)
        ingest_s = time.perf_counter() - started
    ingest_memory = memory.describe()
    print_files(name, report)
    print(f"\n{name}: ingest {report.rows:,} rows in {ingest_s:.1f} s; peak RSS {ingest_memory}")
    with memory.watching():
        reason_s = timed(lambda: materialise(store))
    inferred = store.count_inferred()
    print(
        f"{name}: reasoning {reason_s:.1f} s, {inferred:,} inferred facts "
        f"({inferred / reason_s:,.0f} facts/s end to end); peak RSS {memory.describe()}"
    )
    with memory.watching():
        started = time.perf_counter()
        index = build_risk_index(store, params, save=False)
        index_s = time.perf_counter() - started
    print(
        f"{name}: risk index {index_s:.1f} s ({len(index.groups):,} groups, "
        f"{len(index.labels):,} parties); peak RSS {memory.describe()}"
    )
    if not borrowers:
        rng = random.Random(7)
        borrowers = rng.sample(sorted(index.balance), min(checks, len(index.balance)))
    samples = [
        timed(lambda b=borrower: check_origination(index, params, b, 1e6, [])) * 1e3
        for borrower in borrowers
    ]
    p50, p99 = percentiles(samples)
    row = (
        f"| {name} | {report.rows:,} | {ingest_s:.1f} | {report.rows / ingest_s:,.0f} | "
        f"{reason_s:.1f} | {inferred:,} | {p50:.3f} / {p99:.3f} |"
    )
    return row, borrowers


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--customers", type=int, default=20_000, help="generate a bank")
    source.add_argument("--data", type=Path, help="an already generated bank directory")
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument(
        "--stores", default="sqlite,neo4j", help="comma-separated: sqlite, neo4j (in order)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go")
    parser.add_argument(
        "--neo4j-data",
        type=Path,
        default=None,
        help="keep the Neo4j database in this (new) directory instead of a temporary one",
    )
    parser.add_argument("--neo4j-heap", default="4g", help="the server JVM's -Xmx")
    parser.add_argument("--neo4j-page-cache", default="4g", help="Neo4j's page cache")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="riskgraph-neo4j-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.data is not None:
        bank = args.data
        label = str(bank)
    else:
        bank = work / "bank"
        generate_bank(bank, customers=args.customers, seed=42, progress=False)
        label = f"{args.customers:,} customers"
    names = [n.strip() for n in args.stores.split(",") if n.strip()]
    print(f"### {label}: {', '.join(names)}; driver packer: {packstream_packer()}")
    summary: list[str] = []
    borrowers: list[str] = []
    server = Neo4jDevServer(
        heap=args.neo4j_heap,
        page_cache=args.neo4j_page_cache,
        jvm_options=(),
        data_dir=args.neo4j_data,
    )
    with ExitStack() as stack:
        if "neo4j" in names:
            stack.enter_context(server)
        for name in names:
            pids: dict[str, int | None] = {"client": None}
            if name == "sqlite":
                store: GraphStore = SQLiteStore(work / "kg.db")
            else:
                store = Neo4jStore(server.uri, "neo4j", server.password or "")
                assert server._process is not None
                pids["server"] = server._process.pid
                print(f"\nneo4j: heap {args.neo4j_heap}, page cache {args.neo4j_page_cache}")
            row, borrowers = run_store(name, store, bank, PeakMemory(pids), args.checks, borrowers)
            summary.append(row)
            store.close()
        print(f"\n### {label}, both stores\n")
        print(
            "| store | ingest rows | ingest s | rows/s | reasoning s | inferred "
            "| check p50 / p99 ms |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        print("\n".join(summary))
        if "neo4j" in names:
            samples = []
            driver = GraphDatabase.driver(server.uri, auth=None)
            with driver.session() as session:
                for borrower in borrowers[:200]:
                    samples.append(
                        timed(lambda b=borrower: session.run(CYPHER_GROUP_EXPOSURE, id=b).single())
                        * 1e3
                    )
            driver.close()
            p50, p99 = percentiles(samples)
            print(
                f"\nstraightforward Cypher group exposure on Neo4j: p50 {p50:.2f} ms, "
                f"p99 {p99:.2f} ms"
            )


if __name__ == "__main__":
    main()
