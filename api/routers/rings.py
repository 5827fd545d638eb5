"""Fraud rings: the nightly job's rings and alerts, and the ring around one customer now."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.deps import StoreDep, canonical_id
from api.errors import NotFound
from kg.store import GraphStore
from risk.rings.detect import local_ring
from risk.rings.fraud_graph import FraudGraph, build_fraud_graph
from risk.rings.nightly import (
    ALERTS_COLLECTION,
    LATEST_KEY,
    RINGS_COLLECTION,
    RUNS_COLLECTION,
    latest_run,
)

router = APIRouter(prefix="/v1", tags=["rings"])

# How often an API process looks for a newer fraud graph written by the nightly job.
GRAPH_RECHECK_SECONDS = 5.0


class SharedIdentifierPublic(BaseModel):
    kind: str
    value: str
    members: int
    customers: int


class CircularFlowPublic(BaseModel):
    src: str
    dst: str
    amount: float
    count: int


class RingTiePublic(BaseModel):
    a: str
    b: str
    weight: float
    channels: list[str]


class RingEvidencePublic(BaseModel):
    shared_identifiers: list[SharedIdentifierPublic]
    guarantee_circles: list[list[str]]
    circular_flows: list[CircularFlowPublic]
    loans: int
    bad_loans: int
    bad_loan_ratio: float
    region: str | None
    region_share: float
    ties: list[RingTiePublic]
    signals: dict[str, float]


class RingSummaryPublic(BaseModel):
    ring_id: str
    rank: int
    size: int
    score: float
    region: str | None
    region_share: float
    change: str
    members: list[str]


class RingListPublic(BaseModel):
    run_id: str | None
    finished_at: str | None
    rings: list[RingSummaryPublic]


class RingHistoryEntryPublic(BaseModel):
    run_id: str
    change: str
    size: int
    score: float | None
    added: list[str]
    removed: list[str]


class RingDetailPublic(BaseModel):
    ring_id: str
    status: str
    members: list[str]
    last_members: list[str] | None = None
    size: int
    score: float
    region: str | None
    region_share: float
    evidence: RingEvidencePublic
    first_run_id: str
    last_run_id: str
    history: list[RingHistoryEntryPublic]


class LocalRingPublic(BaseModel):
    entity_id: str
    cluster: list[str]
    conductance: float | None
    ring_members: list[str]
    score: float | None
    flagged: bool
    evidence: RingEvidencePublic | None
    current_rings: list[str]
    graph_run_id: str | None


class AlertPublic(BaseModel):
    alert_id: str
    run_id: str
    ring_id: str
    kind: str
    created_at: str
    score: float
    region: str | None
    size: int
    added_members: list[str]
    message: str


@dataclass(frozen=True, slots=True)
class RingState:
    """What local ring queries read: the fraud graph and the latest run's flagged rings."""

    graph: FraudGraph
    run_id: str | None
    rings_of: dict[str, list[str]]


class RingStateHolder:
    """The API process's `RingState`: the latest run's fraud-graph artefact, reloaded when a
    newer run is stored; built from the store once when no artefact can be read."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._state: RingState | None = None
        self._checked = 0.0

    def get(self) -> RingState:
        now = time.monotonic()
        state = self._state
        if state is not None and now - self._checked < GRAPH_RECHECK_SECONDS:
            return state
        with self._lock:
            if self._state is not None and now - self._checked < GRAPH_RECHECK_SECONDS:
                return self._state
            self._checked = now
            pointer = self._store.get_document(RUNS_COLLECTION, LATEST_KEY)
            run_id = str(pointer["run_id"]) if pointer else None
            if self._state is not None and run_id == self._state.run_id:
                return self._state
            run = self._store.get_document(RUNS_COLLECTION, run_id) if run_id else None
            artefact = run.get("artefact") if run else None
            graph = (
                FraudGraph.load(Path(artefact))
                if artefact and Path(artefact).exists()
                else build_fraud_graph(self._store)
            )
            rings_of: dict[str, list[str]] = {}
            for ring in run.get("rings", []) if run else []:
                for member in ring["members"]:
                    rings_of.setdefault(member, []).append(ring["ring_id"])
            self._state = RingState(graph, run_id, rings_of)
            return self._state


def get_ring_state(request: Request, store: StoreDep) -> RingState:
    with _HOLDER_LOCK:
        holder: RingStateHolder | None = getattr(request.app.state, "ring_state", None)
        if holder is None:
            holder = RingStateHolder(store)
            request.app.state.ring_state = holder
    return holder.get()


_HOLDER_LOCK = threading.Lock()
RingStateDep = Annotated[RingState, Depends(get_ring_state)]


def _summary(ring: dict[str, Any]) -> RingSummaryPublic:
    return RingSummaryPublic(
        ring_id=ring["ring_id"],
        rank=ring["rank"],
        size=ring["size"],
        score=ring["score"],
        region=ring.get("region"),
        region_share=ring.get("region_share", 0.0),
        change=ring.get("change", ""),
        members=ring["members"],
    )


@router.get("/rings", response_model=RingListPublic)
def list_rings(
    store: StoreDep,
    region: Annotated[str | None, Query(description="county region_code, e.g. 330305")] = None,
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    run: Annotated[str | None, Query(description="run id; default the latest run")] = None,
) -> RingListPublic:
    """Flagged rings of a run (default the latest), ranked by score."""
    if run is not None:
        doc = store.get_document(RUNS_COLLECTION, run) if run != LATEST_KEY else None
        if doc is None:
            raise NotFound("ring_run", run)
    else:
        doc = latest_run(store)
    if doc is None:
        return RingListPublic(run_id=None, finished_at=None, rings=[])
    rings = [
        _summary(r)
        for r in doc.get("rings", [])
        if r["score"] >= min_score and (region is None or r.get("region") == region)
    ]
    return RingListPublic(run_id=doc["run_id"], finished_at=doc.get("finished_at"), rings=rings)


@router.get("/rings/{ring_id}", response_model=RingDetailPublic)
def get_ring(ring_id: str, store: StoreDep) -> RingDetailPublic:
    """One ring by its stable id: members, evidence and history across runs."""
    body = store.get_document(RINGS_COLLECTION, ring_id)
    if body is None:
        raise NotFound("ring", ring_id)
    return RingDetailPublic.model_validate(body)


@router.get("/entities/{entity_id}/ring", response_model=LocalRingPublic)
def get_entity_ring(entity_id: str, store: StoreDep, state: RingStateDep) -> LocalRingPublic:
    """The ring around one customer, clustered now from that seed (MAPPR on the fraud
    graph), with the flagged rings of the latest run the customer is in."""
    canonical = canonical_id(store, entity_id)
    graph, graph_run_id = state.graph, state.run_id
    current = state.rings_of.get(canonical, [])
    found = local_ring(graph, canonical)
    if found is None:
        return LocalRingPublic(
            entity_id=canonical, cluster=[], conductance=None, ring_members=[], score=None,
            flagged=False, evidence=None, current_rings=current, graph_run_id=graph_run_id,
        )  # fmt: skip
    ring = found.ring
    evidence = (
        RingEvidencePublic.model_validate(ring.evidence.to_document(graph.ids))
        if ring is not None
        else None
    )
    return LocalRingPublic(
        entity_id=canonical,
        cluster=sorted(str(graph.ids[i]) for i in found.members.tolist()),
        conductance=found.conductance,
        ring_members=sorted(str(graph.ids[i]) for i in ring.members.tolist()) if ring else [],
        score=ring.score if ring else None,
        flagged=bool(ring.flagged) if ring else False,
        evidence=evidence,
        current_rings=current,
        graph_run_id=graph_run_id,
    )


@router.get("/alerts", response_model=list[AlertPublic])
def list_alerts(
    store: StoreDep,
    run: Annotated[str | None, Query(description="only the alerts of this run")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertPublic]:
    """Alerts raised by ring runs (new and grown rings), newest first."""
    alerts = [body for _, body in store.list_documents(ALERTS_COLLECTION)]
    if run is not None:
        alerts = [a for a in alerts if a.get("run_id") == run]
    alerts.sort(key=lambda a: (a.get("created_at", ""), a.get("alert_id", "")), reverse=True)
    return [AlertPublic.model_validate(a) for a in alerts[:limit]]
