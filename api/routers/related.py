"""Related parties (关联方) and the related-party credit limits."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ParamsDep, RiskIndexDep, StoreDep, canonical_id
from api.routers.groups import limit_public
from api.schemas import RelatedPartiesPublic, RelatedPartyPublic
from risk.groups import client_exposure, connected_group
from risk.limits import LimitScope, limit_uses
from risk.related import related_parties

router = APIRouter(prefix="/v1", tags=["related parties"])


@router.get("/entities/{entity_id}/related-parties", response_model=RelatedPartiesPublic)
def get_related_parties(
    entity_id: str, store: StoreDep, params: ParamsDep, index: RiskIndexDep
) -> RelatedPartiesPublic:
    """Related parties relative to the bank when its own entity id is configured
    (`bank_entity_id`): for the bank itself the full list; for any other entity whether it
    is one, which members of its connected group are, and the related-party limits. Without
    a configured bank: the entity's own related parties (≥ 5% holders, directors,
    supervisors, executives, controllers, their close relatives and what they control)."""
    canonical = canonical_id(store, entity_id)
    bank = store.resolve(params.bank_entity_id) if params.bank_entity_id else None
    if bank is None or canonical == bank:
        parties = related_parties(store, canonical)
        return RelatedPartiesPublic(
            entity_id=canonical,
            relative_to=canonical,
            related_parties=[
                RelatedPartyPublic(id=p.id, name=p.name, label=p.label, reasons=p.reasons)
                for p in parties
            ],
        )
    group = connected_group(store, canonical)
    members = {m.id: m for m in group.members}
    related = [
        RelatedPartyPublic(
            id=m, name=members[m].name, label=members[m].label, reasons=index.related[m]
        )
        for m in sorted(members)
        if m in index.related
    ]
    limits = []
    if canonical in index.related:
        exposure = client_exposure(store, canonical).loans
        limits += limit_uses(params, LimitScope.RELATED_PARTY, False, exposure)
        limits += limit_uses(params, LimitScope.RELATED_TOTAL, False, index.related_total)
    if any(members[r.id].label == "Company" for r in related):
        limits += limit_uses(params, LimitScope.RELATED_GROUP, False, group.exposure)
    return RelatedPartiesPublic(
        entity_id=canonical,
        relative_to=bank,
        entity_is_related=canonical in index.related,
        reasons=index.related.get(canonical, []),
        related_parties=related,
        limits=[limit_public(u) for u in limits],
    )
