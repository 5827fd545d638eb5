"""Background jobs behind `POST /v1/jobs/{kind}`: ingest, reason, rings.

Jobs run one at a time on a single worker thread (the store has one writer); their records
live in the store's "jobs" collection so every API process and the CLI see the same state.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from kg.store import GraphStore

JOBS_COLLECTION = "jobs"


class JobKind(StrEnum):
    INGEST = "ingest"
    REASON = "reason"
    RINGS = "rings"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobRunner:
    """Queues jobs on one worker thread and records their progress in the store."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskgraph-job")

    def submit(
        self, kind: JobKind, work: Callable[[], dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        job_id = (
            f"{kind.value}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        )
        record: dict[str, Any] = {
            "job_id": job_id,
            "kind": kind.value,
            "status": JobStatus.QUEUED.value,
            "params": params,
            "submitted_at": _now(),
        }
        self._store.put_document(JOBS_COLLECTION, job_id, record)
        self._executor.submit(self._run, record, work)
        return record

    def _run(self, record: dict[str, Any], work: Callable[[], dict[str, Any]]) -> None:
        record = {**record, "status": JobStatus.RUNNING.value, "started_at": _now()}
        self._store.put_document(JOBS_COLLECTION, record["job_id"], record)
        try:
            result = work()
        except Exception as exc:  # a failed job is reported in its record, never lost
            record.update(
                status=JobStatus.FAILED.value,
                finished_at=_now(),
                error={"type": type(exc).__name__, "message": str(exc)},
            )
            record["error"]["where"] = traceback.format_exception_only(exc)[-1].strip()
        else:
            record.update(status=JobStatus.SUCCEEDED.value, finished_at=_now(), result=result)
        self._store.put_document(JOBS_COLLECTION, record["job_id"], record)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self._store.get_document(JOBS_COLLECTION, job_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


def resolve_inside(root: Path, requested: str) -> Path | None:
    """`requested` as a directory inside `root`, or None when it would escape it."""
    base = root.resolve()
    candidate = (base / requested).resolve()
    if candidate != base and base not in candidate.parents:
        return None
    return candidate
