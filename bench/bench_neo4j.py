"""The embedded store and a real Neo4j server side by side on the same synthetic bank.

Usage:
    .venv/bin/python bench/bench_neo4j.py --customers 20000

Starts Neo4j Community 5.26 from the Maven launcher (kg/neo4j_server.py), ingests the same
bank into both stores (rows/s), reasons on both, then times the origination check: riskgraph's
check on its precomputed index (built from each store) and, as the peer, a straightforward
Cypher query on Neo4j that sums the loan balances of the borrower's connected clients.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from neo4j import GraphDatabase

from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
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


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--checks", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="riskgraph-neo4j-bench-"))
    bank = work / "bank"
    generate_bank(bank, customers=args.customers, seed=42, progress=False)
    params = load_bank_parameters(bank / "bank.toml")
    rows: dict[str, float] = {}
    with Neo4jDevServer(heap="2g", jvm_options=()) as server:
        stores: dict[str, GraphStore] = {
            "sqlite": SQLiteStore(work / "kg.db"),
            "neo4j": Neo4jStore(server.uri, "neo4j", server.password or ""),
        }
        print(f"\n### {args.customers:,} customers, both stores\n")
        print("| store | ingest rows | ingest s | rows/s | reasoning s | check p50 / p99 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        borrowers: list[str] = []
        for name, store in stores.items():
            started = time.perf_counter()
            report = ingest_directory(store, bank)
            ingest_s = time.perf_counter() - started
            reason_s = timed(lambda s=store: materialise(s))
            index = build_risk_index(store, params, save=False)
            if not borrowers:
                rng = random.Random(7)
                borrowers = rng.sample(sorted(index.balance), min(args.checks, len(index.balance)))
            samples = []
            for borrower in borrowers:
                samples.append(
                    timed(lambda b=borrower, i=index: check_origination(i, params, b, 1e6, []))
                    * 1e3
                )
            p50, p99 = percentiles(samples)
            rows[name] = report.rows / ingest_s
            print(
                f"| {name} | {report.rows:,} | {ingest_s:.1f} | {report.rows / ingest_s:,.0f} | "
                f"{reason_s:.1f} | {p50:.3f} / {p99:.3f} |"
            )
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
            f"\nstraightforward Cypher group exposure on Neo4j: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
