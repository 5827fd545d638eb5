"""Origination-check benchmark: `POST /v1/origination/check` under load on a synthetic bank.

Prepares a bank once per size (generate → ingest → materialise → build_risk_index, cached
in the work directory), starts the API in a separate process (uvicorn, one worker), then
drives it from this process on localhost:

1. paced load: a fixed request rate (default 200/s) for a bounded time from a thread pool;
   latency is measured from each request's scheduled send time, so queueing counts;
2. throughput: `wrk` (Debian package) with a bounded number of connections and a bounded
   duration, random borrowers and guarantors per request (skipped when wrk is missing);
3. group lookups: `GET /v1/entities/{id}/group` for random group members, paced.

    .venv/bin/python bench/bench_origination.py [--customers 100000] [--rate 200]
        [--seconds 15] [--workdir /tmp/riskgraph-bench]

Targets: check p99 ≤ 50 ms at 200 req/s, ≥ 1000 checks/s, group lookup p99 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def prepare(workdir: Path, customers: int, seed: int) -> dict[str, float]:
    """Generate, ingest, reason and index a bank once; timings of each stage (0 if cached)."""
    from ingest.generator import generate_bank
    from ingest.pipeline import ingest_directory
    from kg.sqlite_store import SQLiteStore
    from reasoning.materialise import materialise
    from risk.index import build_risk_index, load_risk_index
    from risk.limits import load_bank_parameters

    bank_dir = workdir / "bank"
    db = workdir / "kg.db"
    done = workdir / "prepared.json"
    if done.exists():
        timings: dict[str, float] = json.loads(done.read_text())
        store = SQLiteStore(db)
        if load_risk_index(store) is None:  # written by an older index version
            started = time.perf_counter()
            build_risk_index(store, load_bank_parameters(bank_dir / "bank.toml", env={}))
            timings["index_s"] = time.perf_counter() - started
        store.close()
        return timings
    timings = {}
    started = time.perf_counter()
    generate_bank(bank_dir, customers, seed, progress=False)
    timings["generate_s"] = time.perf_counter() - started
    store = SQLiteStore(db)
    started = time.perf_counter()
    ingest_directory(store, bank_dir)
    timings["ingest_s"] = time.perf_counter() - started
    started = time.perf_counter()
    materialise(store)
    timings["reason_s"] = time.perf_counter() - started
    started = time.perf_counter()
    build_risk_index(store, load_bank_parameters(bank_dir / "bank.toml", env={}))
    timings["index_s"] = time.perf_counter() - started
    store.close()
    done.write_text(json.dumps(timings))
    return timings


def app_from_env() -> Any:
    """The API over the store named by RISKGRAPH_BENCH_DB (uvicorn factory, one per worker)."""
    from api.app import create_app
    from kg.sqlite_store import SQLiteStore
    from risk.limits import load_bank_parameters

    store = SQLiteStore(os.environ["RISKGRAPH_BENCH_DB"], read_only=True)
    return create_app(store, load_bank_parameters(os.environ["RISKGRAPH_BENCH_TOML"], env={}))


def serve(db: str, bank_toml: str, port: int, workers: int) -> None:
    """The API process(es): the store read-only, uvicorn with `workers` processes."""
    import uvicorn

    os.environ["RISKGRAPH_BENCH_DB"] = db
    os.environ["RISKGRAPH_BENCH_TOML"] = bank_toml
    uvicorn.run(
        "bench_origination:app_from_env",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        workers=workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _paced(
    base: str,
    make_request: list[tuple[str, str, dict[str, object] | None]],
    rate: float,
    seconds: float,
    threads: int = 16,
) -> tuple[np.ndarray, int, float]:
    """Send requests at `rate`/s for `seconds`; latency from the scheduled send time."""
    total = int(rate * seconds)
    latencies = np.full(total, np.nan)
    errors = [0]
    clock = {"start": 0.0}
    ready = threading.Barrier(
        threads + 1, action=lambda: clock.update(start=time.perf_counter() + 0.05)
    )

    def worker(k: int) -> None:
        # Clients are built and connected before the clock starts: creating an httpx client
        # costs milliseconds, which would otherwise show up as server latency.
        with httpx.Client(base_url=base, timeout=10) as client:
            client.get("/health")
            ready.wait()
            start = clock["start"]
            for i in range(k, total, threads):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                method, url, body = make_request[i % len(make_request)]
                response = client.request(method, url, json=body)
                latencies[i] = time.perf_counter() - due
                if response.status_code != 200:
                    errors[0] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    ready.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - clock["start"]
    return latencies * 1000.0, errors[0], total / elapsed


def _wrk(
    base: str,
    requests: list[tuple[str, str, dict[str, object] | None]],
    seconds: int,
    connections: int,
    rate: float | None = None,
) -> dict[str, float]:
    """Run wrk over random picks of `requests`; with `rate`, each connection waits
    connections/rate between its requests (wrk's `delay`), so the load is about `rate`/s."""

    def lua_entry(method: str, path: str, body: dict[str, object] | None) -> str:
        lua_body = json.dumps(json.dumps(body)) if body is not None else "nil"
        return f"{{{json.dumps(method)},{json.dumps(path)},{lua_body}}}"

    entries = ",".join(lua_entry(*r) for r in requests)
    lua = f"reqs = {{{entries}}}\n"
    lua += 'headers = {["Content-Type"] = "application/json"}\n'
    lua += (
        "request = function()\n  local r = reqs[math.random(#reqs)]\n"
        "  return wrk.format(r[1], r[2], headers, r[3])\nend\n"
    )
    if rate is not None:
        # 10% less than the cycle time: the response time itself adds to each cycle
        lua += f"delay = function()\n  return {900.0 * connections / rate:.3f}\nend\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua)
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            handle.name,
            base,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    Path(handle.name).unlink()

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        result[f"p{pct}"] = ms(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


def _python_paced(
    base: str,
    requests: list[tuple[str, str, dict[str, object] | None]],
    rate: float,
    seconds: float,
) -> dict[str, float]:
    latencies, errors, achieved = _paced(base, requests, rate, seconds)
    return {
        "rps": achieved,
        "p50": float(np.nanpercentile(latencies, 50)),
        "p99": float(np.nanpercentile(latencies, 99)),
        "errors": float(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--serve", nargs=3, metavar=("DB", "BANK_TOML", "PORT"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]), args.workers)
        return

    workdir = args.workdir or Path(tempfile.gettempdir()) / f"riskgraph-bench-{args.customers}"
    workdir.mkdir(parents=True, exist_ok=True)
    timings = prepare(workdir, args.customers, args.seed)

    from kg.sqlite_store import SQLiteStore
    from risk.index import load_risk_index

    store = SQLiteStore(workdir / "kg.db", read_only=True)
    index = load_risk_index(store)
    store.close()
    assert index is not None
    rng = random.Random(args.seed)
    borrowers = sorted(index.balance) or sorted(index.labels)
    parties = sorted(index.labels)
    in_groups = sorted(index.group_of)
    bodies: list[dict[str, object]] = [
        {
            "borrower_id": rng.choice(borrowers),
            "amount": float(rng.randrange(100_000, 50_000_000, 100_000)),
            "guarantor_ids": rng.sample(parties, rng.randint(0, 2)),
        }
        for _ in range(2000)
    ]

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(workdir / "kg.db"),
            str(workdir / "bank" / "bank.toml"),
            str(port),
            "--workers",
            str(args.workers),
        ],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        checks = [("POST", "/v1/origination/check", b) for b in bodies]
        lookups = [
            ("GET", f"/v1/entities/{rng.choice(in_groups)}/group", None) for _ in range(1000)
        ] or [("GET", "/health", None)]
        seconds = int(args.seconds)
        _python_paced(base, checks[:200], 100.0, 2.0)  # warm-up
        if shutil.which("wrk"):
            # wrk (C) drives the load: a Python client on the same two cores would measure
            # its own scheduling as much as the server.
            paced = _wrk(base, checks, seconds, 10, rate=args.rate)
            saturated: dict[str, float] | None = _wrk(base, checks, seconds, args.connections)
            group = _wrk(base, lookups, min(seconds, 10), 4, rate=50.0)
        else:
            paced = _python_paced(base, checks, args.rate, args.seconds)
            saturated = None
            group = _python_paced(base, lookups, 50.0, min(args.seconds, 10.0))
        load_during = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)

    print()
    print(
        f"bank: {args.customers:,} customers (seed {args.seed}); "
        f"{len(index.labels):,} parties, {len(index.groups):,} connected groups "
        f"({len(index.group_of):,} members), {len(index.circles):,} guarantee circles"
    )
    print("preparation: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    # The load generator shares the machine with the server; other work on it shows in p99.
    print(f"server: uvicorn, {args.workers} worker process(es)")
    print(f"load average during the run: {load_during[0]:.2f} (cores: {os.cpu_count()})")
    print()
    rows = [
        (f"check p50 @ {args.rate:.0f} req/s (ms)", paced["p50"], "-"),
        (f"check p99 @ {args.rate:.0f} req/s (ms)", paced["p99"], "≤ 50"),
        ("check achieved rate (req/s)", paced["rps"], f"{args.rate:.0f}"),
        ("check errors (paced)", paced["errors"], "0"),
    ]
    if saturated is not None:
        rows += [
            (f"check throughput, {args.connections} conns (req/s)", saturated["rps"], "≥ 1000"),
            ("check p50 under saturation (ms)", saturated["p50"], "-"),
            ("check p99 under saturation (ms)", saturated["p99"], "-"),
            ("check errors (saturation)", saturated["errors"], "0"),
        ]
    rows += [
        ("group lookup p50 @ 50 req/s (ms)", group["p50"], "-"),
        ("group lookup p99 @ 50 req/s (ms)", group["p99"], "≤ 20"),
        ("group lookup errors", group["errors"], "0"),
    ]
    generator = "wrk" if saturated is not None else "python threads"
    print(f"load generator: {generator}, a separate process on localhost")
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {float(value):>10.2f}  {target}")


if __name__ == "__main__":
    main()
