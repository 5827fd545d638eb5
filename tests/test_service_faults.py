"""Faults: a killed ingest, a truncated file, a read-only store, a full disk.

The store must be all-or-nothing through all of them: what was there before a failed job is
exactly what is there after it, and the error says what happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from risk_banks import write_scenario_bank

from ingest.generator import generate_bank
from ingest.pipeline import IngestError, ingest_directory
from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import StoreError

RISKGRAPH = Path(sys.executable).parent / "riskgraph"


def counts(store: SQLiteStore) -> dict[str, int]:
    result = {label.value: store.count_nodes(label) for label in Label}
    result.update({t.value: store.count_edges(t) for t in RelType})
    result["transactions"] = store.count_transactions()
    return result


def data_rows(path: Path) -> int:
    """Rows of a generated CSV file (no embedded newlines), header excluded."""
    with path.open("rb") as handle:
        return sum(1 for _ in handle) - 1


@pytest.fixture()
def scenario(tmp_path: Path) -> Path:
    return write_scenario_bank(tmp_path / "bank")


# --- kill -9 during an ingest ----------------------------------------------------------------
@pytest.mark.slow
def test_an_ingest_killed_mid_job_leaves_the_store_as_it_was_and_a_rerun_completes(
    tmp_path: Path, scenario: Path
) -> None:
    big = tmp_path / "big"
    generate_bank(big, customers=50_000, seed=11, progress=False)
    db = tmp_path / "kg.db"
    store = SQLiteStore(db)
    ingest_directory(store, scenario)
    before = counts(store)
    store.close()

    job = subprocess.Popen(
        [str(RISKGRAPH), "ingest", str(big), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wal = Path(f"{db}-wal")
    deadline = time.monotonic() + 90
    time.sleep(2)
    # Kill once the job is writing: its one transaction is open and has grown the WAL.
    while (not wal.exists() or wal.stat().st_size < 1_000_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the ingest finished before it could be killed"
    wal_at_kill = wal.stat().st_size
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=10)
    assert wal_at_kill > 1_000_000

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(db)
    try:
        assert counts(store) == before
        report = ingest_directory(store, big)
        after = counts(store)
    finally:
        store.close()
    assert report.rejected == 0
    # Expected counts from the generated files and the generator's customer count.
    assert after["Person"] + after["Company"] == before["Person"] + before["Company"] + 50_000
    for label, file in (("Loan", "loans"), ("Account", "accounts")):
        assert after[label] == before[label] + data_rows(big / f"{file}.csv")
    assert after["GUARANTEES"] == before["GUARANTEES"] + data_rows(big / "guarantees.csv")
    assert after["transactions"] == before["transactions"] + data_rows(big / "transactions.csv")


# --- bad input -------------------------------------------------------------------------------
def test_a_file_truncated_mid_row_fails_the_job_and_writes_nothing(
    scenario: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    ingest_directory(store, scenario)
    before = counts(store)
    persons = scenario / "persons.csv"
    data = persons.read_bytes()
    persons.write_bytes(data.rstrip(b"\n")[:-12])  # cut inside the last row
    (scenario / "loans.csv").write_text(
        "loan_id,borrower_id,amount,balance,start_date,maturity_date,classification,branch\n"
        "L99,C1,1000,1000,2024-01-01,2025-01-01,normal,X\n",
        encoding="utf-8",
    )
    with pytest.raises(IngestError, match=r"persons\.csv"):
        ingest_directory(store, scenario)
    assert counts(store) == before
    assert store.get_node("L99") is None
    store.close()


def test_a_file_truncated_inside_a_quoted_field_fails_the_job(
    scenario: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    (scenario / "kinships.csv").write_text(
        'person_id,relative_id,relation\nP1,P2,spouse\n"P3,"P4', encoding="utf-8"
    )
    with pytest.raises(IngestError, match=r"kinships\.csv"):
        ingest_directory(store, scenario)
    assert store.count_nodes() == 0
    store.close()


# --- kill -9 during a reasoning run -----------------------------------------------------------
@pytest.mark.slow
def test_a_reasoning_run_killed_mid_job_leaves_all_or_nothing_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    bank = tmp_path / "bank"
    generate_bank(bank, customers=8_000, seed=3, progress=False)
    reference_db, db = tmp_path / "reference.db", tmp_path / "kg.db"
    for path in (reference_db, db):
        store = SQLiteStore(path)
        ingest_directory(store, bank)
        store.close()
    env = {**os.environ, "RISKGRAPH_DB": str(reference_db)}
    subprocess.run([str(RISKGRAPH), "reason"], env=env, check=True, capture_output=True)
    reference = SQLiteStore(reference_db)
    complete = reference.count_inferred()
    reference.close()
    assert complete > 0

    env["RISKGRAPH_DB"] = str(db)
    process = subprocess.Popen(
        [str(RISKGRAPH), "reason"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # Kill once the run is writing its inferred facts (it prints the stage as it goes).
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if b"writing" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    store = SQLiteStore(db)
    assert store._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert store.count_inferred() in (0, complete)
    store.close()
    subprocess.run([str(RISKGRAPH), "reason"], env=env, check=True, capture_output=True)
    store = SQLiteStore(db)
    assert store.count_inferred() == complete
    store.close()


# --- read-only store and full disk -------------------------------------------------------------
def test_a_write_to_a_read_only_store_is_a_clear_store_error(
    scenario: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    ingest_directory(store, scenario)
    store.close()
    read_only = SQLiteStore(tmp_path / "kg.db", read_only=True)
    try:
        with pytest.raises(StoreError, match=r"read-only|readonly"):
            read_only.upsert_nodes(Label.PERSON, pa.table({"id": ["P99"], "name": ["新客户"]}))
    finally:
        read_only.close()


def test_an_ingest_into_a_read_only_store_fails_and_changes_nothing(
    scenario: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    ingest_directory(store, scenario)
    before = counts(store)
    store.close()
    read_only = SQLiteStore(tmp_path / "kg.db", read_only=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            ingest_directory(read_only, scenario)
        assert counts(read_only) == before
    finally:
        read_only.close()


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 3 MB tmpfs when this process may mount one (root in a container), else None."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        yield None
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_the_ingest_clearly_and_keeps_the_store(
    small_disk: Path | None, scenario: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    generate_bank(big, customers=3_000, seed=5, progress=False)
    db = (small_disk or tmp_path) / "kg.db"
    store = SQLiteStore(db)
    ingest_directory(store, scenario)
    before = counts(store)
    if small_disk is None:
        # No tmpfs: cap the file instead (SQLite reports the same "disk is full").
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 50}")
    with pytest.raises((StoreError, IngestError), match="database or disk is full"):
        ingest_directory(store, big)
    assert counts(store) == before
    store.close()
    reopened = SQLiteStore(db, read_only=True)
    assert counts(reopened) == before
    reopened.close()
