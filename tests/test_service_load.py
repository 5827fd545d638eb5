"""A real uvicorn server, with authentication and the audit trail on, under bounded
concurrent load (loopback, a few threads, a bounded time) while another process ingests,
reasons, rebuilds the risk index and detects rings on the same store: no request fails, and
the audit trail has one unbroken record per request."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.audit import verify_audit
from api.security import Role
from api.service import ServiceSettings, install_service_layer
from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg.model import Label
from kg.sqlite_store import SQLiteStore
from reasoning.materialise import materialise
from risk.index import build_risk_index
from risk.limits import load_bank_parameters

KEYS = {Role.ANALYST: "analyst-" + "b" * 40, Role.ORIGINATION: "origination-" + "c" * 40}
THREADS = 4
MAX_SECONDS = 90.0

JOBS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ingest.pipeline import ingest_directory
    from kg.sqlite_store import SQLiteStore
    from reasoning.materialise import materialise
    from risk.index import build_risk_index
    from risk.limits import load_bank_parameters
    from risk.rings.nightly import run_ring_detection

    db, bank = sys.argv[1], Path(sys.argv[2])
    store = SQLiteStore(db)
    ingest_directory(store, bank)
    materialise(store)
    build_risk_index(store, load_bank_parameters(bank / "bank.toml", env={}))
    run_ring_detection(store)
    store.close()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_no_request_fails_while_jobs_write_the_store(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    generate_bank(bank, customers=3_000, seed=3, progress=False)
    db = tmp_path / "kg.db"
    store = SQLiteStore(db)
    ingest_directory(store, bank)
    materialise(store)
    params = load_bank_parameters(bank / "bank.toml", env={})
    build_risk_index(store, params)
    people = [
        str(i)
        for batch in store.node_batches(Label.PERSON, batch_size=200)
        for i in batch.column("id").to_pylist()
    ][:200]

    app = create_app(store, params)
    install_service_layer(
        app,
        ServiceSettings(
            api_keys=",".join(f"{k}={r.value}" for r, k in KEYS.items()),
            rate_limit_per_second=100_000,
            rate_limit_burst=100_000,
            json_logs=False,
        ),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)

    jobs = subprocess.Popen(
        [sys.executable, "-c", JOBS, str(db), str(bank)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + MAX_SECONDS

    def load(k: int) -> None:
        analyst = {"X-API-Key": KEYS[Role.ANALYST]}
        officer = {"X-API-Key": KEYS[Role.ORIGINATION]}
        seen: Counter[str] = Counter()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            i = k
            while jobs.poll() is None and time.monotonic() < stop_at:
                person = people[i % len(people)]
                guarantor = people[(i * 7 + 1) % len(people)]
                for name, response in (
                    (
                        "check",
                        client.post(
                            "/v1/origination/check",
                            json={
                                "borrower_id": person,
                                "amount": 100_000,
                                "guarantor_ids": [guarantor],
                            },
                            headers=officer,
                        ),
                    ),
                    ("entity", client.get(f"/v1/entities/{person}", headers=officer)),
                    ("group", client.get(f"/v1/entities/{person}/group", headers=analyst)),
                ):
                    seen[f"{name} {response.status_code}"] += 1
                i += THREADS
        with lock:
            statuses.update(seen)

    workers = [threading.Thread(target=load, args=(k,)) for k in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    finished = jobs.wait(timeout=max(1.0, stop_at - time.monotonic() + 60))
    server.should_exit = True
    serving.join(timeout=30)
    store.close()

    assert finished == 0, jobs.stderr.read().decode() if jobs.stderr else ""
    failed = {k: v for k, v in statuses.items() if not k.endswith(" 200")}
    assert failed == {}
    total = sum(statuses.values())
    assert total >= 100
    result = verify_audit(Path(f"{db}.audit.sqlite"))
    assert result.ok and result.records == total
