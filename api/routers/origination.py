"""The loan-origination check: the hot path, answered from the precomputed risk index."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.errors import NotFound
from api.schemas import (
    CircleSummaryPublic,
    DecisionFlagPublic,
    LimitCheckPublic,
    OriginationCheckPublic,
    OriginationCheckRequest,
    RelatedPartyFlagPublic,
    RingSummaryPublic,
)
from kg.store import GraphStore
from risk.index import RiskIndex
from risk.limits import BankParameters
from risk.origination import check_origination

router = APIRouter(prefix="/v1", tags=["origination"])


def _canonical(store: GraphStore, index: RiskIndex, entity_id: str, role: str) -> str:
    # Canonical ids are answered from the index; only aliases need the store.
    if index.knows(entity_id):
        return entity_id
    canonical = store.resolve(entity_id)
    if canonical is None:
        raise NotFound(role, entity_id)
    return canonical


# The hot path. A coroutine, because the check is a few dict lookups (and an indexed SQLite
# read for an alias), cheaper than the thread-pool hop of a sync endpoint; it reads the app
# state directly because resolving three dependencies costs more than the check itself.
@router.post("/origination/check", response_model=OriginationCheckPublic)
async def post_origination_check(
    body: OriginationCheckRequest, request: Request
) -> OriginationCheckPublic:
    """Group exposure before and after the new loan against every applicable limit, the
    guarantee circles and fraud rings involved, related parties, and flags that name every
    limit the loan would breach, every guarantor in a circle with the borrower and every
    guarantor in the borrower's connected-client group."""
    store: GraphStore = request.app.state.store
    params: BankParameters = request.app.state.params
    index: RiskIndex = request.app.state.risk_index.get()
    return run_origination_check(body, store, params, index)


def run_origination_check(
    body: OriginationCheckRequest, store: GraphStore, params: BankParameters, index: RiskIndex
) -> OriginationCheckPublic:
    """The check of one request against the given store, parameters and index."""
    borrower = _canonical(store, index, body.borrower_id, "borrower")
    guarantors = list(
        dict.fromkeys(_canonical(store, index, g, "guarantor") for g in body.guarantor_ids)
    )
    related_of_borrower = None
    if params.bank_entity_id is None and guarantors:
        # Without the bank's own entity, the check asks whether a guarantor is an insider of
        # the borrower (or a relative of one): a guarantee from inside is no mitigation.
        borrower_insiders = index.insiders.get(borrower, {})
        related_of_borrower = {
            g: [f"{borrower_insiders[g]} of {borrower}"]
            for g in guarantors
            if g in borrower_insiders
        }
    result = check_origination(
        index, params, borrower, body.amount, guarantors, related_of_borrower
    )
    return OriginationCheckPublic(
        borrower_id=result.borrower_id,
        amount=result.amount,
        group_id=result.group_id,
        group_members=result.group_members,
        decision_flags=[
            DecisionFlagPublic(
                code=f.code, severity=f.severity, message=f.message, entities=list(f.entities)
            )
            for f in result.flags
        ],
        client_exposure_before=result.client_exposure_before,
        client_exposure_after=result.client_exposure_after,
        group_exposure_before=result.group_exposure_before,
        group_exposure_after=result.group_exposure_after,
        large_exposure_threshold=result.large_exposure_threshold,
        limits=[
            LimitCheckPublic(
                name=c.name,
                scope=c.scope,
                description=c.description,
                limit=c.limit,
                exposure_before=c.exposure_before,
                exposure_after=c.exposure_after,
                utilisation_after=round(c.utilisation_after, 6),
                breached=c.breached,
            )
            for c in result.limits
        ],
        circles=[
            CircleSummaryPublic(
                circle_id=c.circle_id,
                members=c.members,
                total_amount=c.total_amount,
                mutual_pairs=c.mutual_pairs,
            )
            for c in result.circles
        ],
        rings=[
            RingSummaryPublic(ring_id=r.ring_id, members=r.members, score=r.score, region=r.region)
            for r in result.rings
        ],
        related_parties=[
            RelatedPartyFlagPublic(id=k, reasons=v) for k, v in result.related_parties.items()
        ],
    )
