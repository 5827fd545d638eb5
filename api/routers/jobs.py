"""Jobs: ingest a directory, reason, detect rings — asynchronously, with a record to poll."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import StoreDep
from api.errors import ApiError, NotFound
from api.jobs import JobKind, JobRunner, resolve_inside
from api.settings import get_settings
from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class IngestJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(description="Directory under the server's data root.", max_length=500)
    mapping: str | None = Field(default=None, description="Bundled mapping name.", max_length=100)


class JobPublic(BaseModel):
    job_id: str
    kind: str
    status: str
    params: dict[str, Any] = Field(default_factory=dict)
    submitted_at: str
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


RunnerDep = Annotated[JobRunner, Depends(get_runner)]


def _artefact_dir(store: GraphStore) -> Path | None:
    """Where the ring job saves its fraud graph: beside the SQLite file the app serves (as
    `riskgraph rings` does); other stores keep it in memory (`RingState` rebuilds it)."""
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        return Path(store.path).resolve().parent
    return None


@router.post("/ingest", response_model=JobPublic, status_code=202)
def start_ingest(body: IngestJobRequest, store: StoreDep, runner: RunnerDep) -> JobPublic:
    """Ingest a directory of contract files (all-or-nothing); poll the job for its report."""
    from ingest.pipeline import ingest_directory

    root = get_settings().data_root
    directory = resolve_inside(root, body.directory)
    if directory is None or not directory.is_dir():
        raise ApiError(
            422, "invalid_directory", f"{body.directory!r} is not a directory under the data root"
        )
    mapping = Path(body.mapping) if body.mapping else None

    def work() -> dict[str, Any]:
        return ingest_directory(store, directory, mapping=mapping).as_dict()

    return JobPublic.model_validate(runner.submit(JobKind.INGEST, work, body.model_dump()))


@router.post("/reason", response_model=JobPublic, status_code=202)
def start_reasoning(store: StoreDep, runner: RunnerDep, request: Request) -> JobPublic:
    """Recompute every inferred fact and the risk index."""
    from reasoning.materialise import materialise
    from risk.index import build_risk_index

    params = request.app.state.params

    def work() -> dict[str, Any]:
        summary = materialise(store).to_dict()
        build_risk_index(store, params)
        return summary

    return JobPublic.model_validate(runner.submit(JobKind.REASON, work, {}))


@router.post("/rings", response_model=JobPublic, status_code=202)
def start_ring_detection(store: StoreDep, runner: RunnerDep) -> JobPublic:
    """The nightly fraud-ring detection, on demand."""
    from risk.rings.nightly import run_ring_detection

    artefacts = _artefact_dir(store)

    def work() -> dict[str, Any]:
        return run_ring_detection(store, artefact_dir=artefacts).summary()

    return JobPublic.model_validate(runner.submit(JobKind.RINGS, work, {}))


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, runner: RunnerDep) -> JobPublic:
    """A job's status, and its report when it has finished."""
    record = runner.get(job_id)
    if record is None:
        raise NotFound("job", job_id)
    return JobPublic.model_validate(record)
