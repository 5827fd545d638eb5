"""Service-layer overhead: the API with authentication, roles, rate limit, audit trail, logs and
metrics on, against the bare API, on the same synthetic bank.

The API runs in a separate process (uvicorn, one worker, the store read-only); this process
drives it on localhost with a bounded number of threads for a bounded time per endpoint
(closed loop: each thread sends its next request when the last one is answered). Rounds
alternate bare / layered so drifting machine load hits both alike; the table shows each
configuration's best round (the least disturbed by other work on the machine).

    .venv/bin/python bench/bench_service.py [--customers 20000] [--seconds 5] [--threads 4]
        [--rounds 2] [--workdir /tmp/riskgraph-bench-service]

Target: the layer adds at most 10% to the p99 of each endpoint.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_origination import prepare  # noqa: E402

KEYS = {"origination": "origination-" + "c" * 40, "analyst": "analyst-" + "b" * 40}
ENDPOINTS = ("origination check", "entity lookup", "group")


def app_from_env() -> Any:
    """The API over RISKGRAPH_BENCH_DB, with the service layer when RISKGRAPH_BENCH_LAYER=on."""
    from api.app import create_app
    from api.service import ServiceSettings, install_service_layer
    from kg.sqlite_store import SQLiteStore
    from risk.limits import load_bank_parameters

    store = SQLiteStore(os.environ["RISKGRAPH_BENCH_DB"], read_only=True)
    app = create_app(store, load_bank_parameters(os.environ["RISKGRAPH_BENCH_TOML"], env={}))
    if os.environ["RISKGRAPH_BENCH_LAYER"] == "on":
        install_service_layer(
            app,
            ServiceSettings(
                api_keys=",".join(f"{k}={role}" for role, k in KEYS.items()),
                rate_limit_per_second=1e6,
                rate_limit_burst=1_000_000,
            ),
        )
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, toml: Path, layer: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "RISKGRAPH_BENCH_DB": str(db),
        "RISKGRAPH_BENCH_TOML": str(toml),
        "RISKGRAPH_BENCH_LAYER": layer,
    }
    server = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "bench_service:app_from_env", "--factory",
            "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # the layer's JSON access log: written, not kept
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the API did not start")


def requests_for(db: Path, count: int, seed: int) -> dict[str, list[tuple[str, str, Any, str]]]:
    """Random borrowers (and guarantors) from the bank, as (method, path, body, role)."""
    from kg.model import Label
    from kg.sqlite_store import SQLiteStore

    store = SQLiteStore(db, read_only=True)
    ids = [
        str(i)
        for label in (Label.PERSON, Label.COMPANY)
        for batch in store.node_batches(label)
        for i in batch.column("id").to_pylist()
    ]
    store.close()
    rng = random.Random(seed)
    picks = [rng.choice(ids) for _ in range(count)]
    return {
        "origination check": [
            ("POST", "/v1/origination/check",
             {"borrower_id": p, "amount": 500_000, "guarantor_ids": [rng.choice(ids)]},
             "origination")
            for p in picks
        ],
        "entity lookup": [("GET", f"/v1/entities/{p}", None, "origination") for p in picks],
        "group": [("GET", f"/v1/entities/{p}/group", None, "analyst") for p in picks],
    }  # fmt: skip


def drive(
    base: str, requests: list[tuple[str, str, Any, str]], threads: int, seconds: float
) -> dict[str, float]:
    """Closed-loop load for `seconds`: throughput, p50 and p99 latency (ms), errors."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    stop = [0.0]
    # The clock starts once every client is connected (creating one costs milliseconds).
    start_gate = threading.Barrier(
        threads + 1, action=lambda: stop.__setitem__(0, time.perf_counter() + seconds)
    )

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            client.get("/health")
            start_gate.wait()
            i = k
            while time.perf_counter() < stop[0]:
                method, path, body, role = requests[i % len(requests)]
                sent = time.perf_counter()
                response = client.request(
                    method, path, json=body, headers={"X-API-Key": KEYS[role]}
                )
                latencies[k].append(time.perf_counter() - sent)
                if response.status_code != 200:
                    errors[k] += 1
                i += threads

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    for t in pool:
        t.join()
    ms = np.array([x for per in latencies for x in per] or [np.nan]) * 1000.0
    return {
        "rps": len(ms) / seconds,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": float(sum(errors)),
        "n": float(len(ms)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/riskgraph-bench-service"))
    args = parser.parse_args()

    workdir = args.workdir / f"n{args.customers}"
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, args.customers, args.seed)
    db, toml = workdir / "kg.db", workdir / "bank" / "bank.toml"
    requests = requests_for(db, 5_000, args.seed)

    best: dict[tuple[str, str], dict[str, float]] = {}
    for round_no in range(args.rounds):
        for layer in ("off", "on"):
            server, base = start_server(db, toml, layer)
            try:
                for endpoint in ENDPOINTS:
                    drive(base, requests[endpoint], args.threads, 1.0)  # warm-up
                    result = drive(base, requests[endpoint], args.threads, args.seconds)
                    print(
                        f"round {round_no + 1} layer {layer:3} {endpoint:18} "
                        f"{result['rps']:8.0f} req/s  p50 {result['p50']:6.2f} ms  "
                        f"p99 {result['p99']:6.2f} ms  errors {result['errors']:.0f}",
                        file=sys.stderr,
                    )
                    key = (endpoint, layer)
                    if key not in best or result["p99"] < best[key]["p99"]:
                        best[key] = result
            finally:
                server.terminate()
                server.wait(timeout=30)

    print(
        f"\n{args.customers:,} customers, {args.threads} client threads, {args.seconds:g} s per "
        f"endpoint, best of {args.rounds} rounds\n"
    )
    print("| endpoint | layer | req/s | p50 ms | p99 ms | errors | p99 overhead |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for endpoint in ENDPOINTS:
        off, on = best[(endpoint, "off")], best[(endpoint, "on")]
        for layer, r in (("off", off), ("on", on)):
            overhead = f"{100 * (on['p99'] / off['p99'] - 1):+.1f}%" if layer == "on" else ""
            print(
                f"| {endpoint} | {layer} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                f"| {r['errors']:.0f} | {overhead} |"
            )


if __name__ == "__main__":
    main()
