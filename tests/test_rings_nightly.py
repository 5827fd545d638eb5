"""The nightly job: stable ring ids, the diff and its alerts, atomic restartable writes."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.generator import generate_bank
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from risk.rings.nightly import (
    ALERTS_COLLECTION,
    RINGS_COLLECTION,
    RUNS_COLLECTION,
    STAGES,
    latest_run,
    match_rings,
    run_ring_detection,
)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bank")
    generate_bank(directory, customers=6000, seed=3, progress=False)
    store = SQLiteStore(directory / "kg.db")
    ingest_directory(store, directory)
    store.close()
    return directory


@pytest.fixture()
def store(bank: Path, tmp_path: Path) -> Iterator[SQLiteStore]:
    shutil.copy(bank / "kg.db", tmp_path / "kg.db")
    opened = SQLiteStore(tmp_path / "kg.db")
    yield opened
    opened.close()


def _ring_ids(store: SQLiteStore) -> list[str]:
    run = latest_run(store)
    assert run is not None
    return sorted(r["ring_id"] for r in run["rings"])


def test_running_twice_on_the_same_data_keeps_every_ring_id(
    store: SQLiteStore, tmp_path: Path
) -> None:
    first = run_ring_detection(store, artefact_dir=tmp_path)
    second = run_ring_detection(store, artefact_dir=tmp_path)
    assert first.rings, "the bank plants two rings"
    assert sorted(r["ring_id"] for r in second.rings) == sorted(r["ring_id"] for r in first.rings)
    assert second.diff == {"new": [], "grown": [], "shrunk": [], "dissolved": []}
    assert second.alerts == []
    assert len(first.alerts) == len(first.rings)
    assert {a["kind"] for a in first.alerts} == {"ring_new"}


def test_new_members_make_the_ring_grow_and_raise_an_alert(
    store: SQLiteStore, bank: Path, tmp_path: Path
) -> None:
    first = run_ring_detection(store)
    planted = json.loads((bank / "truth" / "rings.json").read_text(encoding="utf-8"))[0]
    extra = tmp_path / "extra"
    extra.mkdir()
    newcomers = ["P90000001", "P90000002"]
    with (extra / "persons.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "name", "phone", "address", "region_code"])
        for pid in newcomers:
            writer.writerow(
                [pid, "新成员", planted["shared_phones"][0], planted["shared_addresses"][0],
                 planted["region_code"]]
            )  # fmt: skip
    with (extra / "devices.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["owner_id", "device_id", "first_seen"])
        for pid in newcomers:
            writer.writerow([pid, planted["shared_devices"][0], "2024-06-01"])
    ingest_directory(store, extra)

    second = run_ring_detection(store)
    grown = [c for c in second.changes if c.change == "grown"]
    assert len(grown) == 1
    assert set(newcomers) <= set(grown[0].added)
    assert grown[0].ring_id in {r["ring_id"] for r in first.rings}
    alert = next(a for a in second.alerts if a["ring_id"] == grown[0].ring_id)
    assert alert["kind"] == "ring_grown"
    assert set(newcomers) <= set(alert["added_members"])
    history = store.get_document(RINGS_COLLECTION, grown[0].ring_id)
    assert history is not None
    assert [h["change"] for h in history["history"]] == ["new", "grown"]


def test_a_crash_while_writing_leaves_nothing_and_a_rerun_computes_again(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_ring_detection(store)
    before = {
        c: store.list_documents(c) for c in (RUNS_COLLECTION, RINGS_COLLECTION, ALERTS_COLLECTION)
    }
    real = store.put_document
    calls = {"n": 0}

    def failing(collection: str, key: str, body: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real(collection, key, body)

    monkeypatch.setattr(store, "put_document", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        run_ring_detection(store)
    monkeypatch.undo()
    after = {c: store.list_documents(c) for c in before}
    assert after == before
    again = run_ring_detection(store)
    assert again.previous_run_id == first.run_id


def test_the_run_document_records_stage_timings_and_peak_memory(store: SQLiteStore) -> None:
    seen: list[str] = []
    run_ring_detection(store, progress=lambda stage, done, total: seen.append(stage))
    doc = latest_run(store)
    assert doc is not None
    assert set(doc["stage_seconds"]) == set(STAGES)
    assert set(doc["peak_rss_mib"]) == set(STAGES)
    assert all(v > 0 for v in doc["peak_rss_mib"].values())
    assert list(dict.fromkeys(seen)) == list(STAGES)


def test_rings_are_matched_greedily_by_best_overlap() -> None:
    previous = {"R1": {"a", "b", "c", "d"}, "R2": {"e", "f", "g"}}
    current = [{"a", "b", "c"}, {"a", "b", "c", "d", "x"}, {"e", "f", "g", "h", "i", "j", "k"}]
    # R1 overlaps both first rings (0.75 and 0.8): the better one keeps the id, the other is
    # new; R2 against the third is 3/7 < 0.5, so it is new as well.
    assert match_rings(previous, current) == {1: "R1"}
