"""Control and beneficial ownership: who controls an entity, what it controls, its UBOs."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from api.deps import AsOfDep, StoreDep, canonical_id
from api.schemas import (
    BeneficialOwnerPublic,
    BeneficialOwnersPublic,
    ControlListPublic,
    ControlRelationPublic,
    HoldingStepPublic,
    VoteContributionPublic,
)
from kg.store import GraphStore
from risk.control import (
    ControlRelation,
    beneficial_owners,
    controlled_companies,
    controllers,
)
from risk.dated import ownership_view

router = APIRouter(prefix="/v1", tags=["control"])


def control_public(
    relation: ControlRelation, names: dict[str, str | None]
) -> ControlRelationPublic:
    return ControlRelationPublic(
        controller=relation.controller,
        company=relation.company,
        basis=relation.basis,
        direct=relation.direct,
        rule=relation.rule,
        total_voting_pct=relation.total_voting_pct,
        votes=[
            VoteContributionPublic(
                holder=v.holder,
                voting_pct=v.voting_pct,
                chain=[
                    HoldingStepPublic(holder=s.holder, company=s.company, voting_pct=s.voting_pct)
                    for s in v.chain
                ],
            )
            for v in relation.votes
        ],
        family=relation.family,
        explanation=relation.describe(names),
    )


def _names(store: GraphStore, relations: list[ControlRelation]) -> dict[str, str | None]:
    ids: set[str] = set()
    for r in relations:
        ids |= {r.controller, r.company, *r.family, *(v.holder for v in r.votes)}
        ids |= {s.holder for v in r.votes for s in v.chain}
    nodes = {i: store.get_node(i) for i in ids}
    return {i: (n.name if n else None) for i, n in nodes.items()}


def _relations(
    store: GraphStore,
    entity_id: str,
    as_of: str | None,
    query: Callable[[GraphStore, str], list[ControlRelation]],
) -> ControlListPublic:
    canonical = canonical_id(store, entity_id)
    source = ownership_view(store, as_of, [canonical]) if as_of else store
    try:
        relations = query(source, canonical)
        names = _names(source, relations)
    finally:
        if source is not store:
            source.close()
    return ControlListPublic(
        entity_id=canonical,
        as_of=as_of,
        relations=[control_public(r, names) for r in relations],
    )


@router.get("/entities/{entity_id}/controllers", response_model=ControlListPublic)
def get_controllers(entity_id: str, store: StoreDep, as_of: AsOfDep) -> ControlListPublic:
    """Everyone who controls the entity (directly, through controlled companies, or with
    their family party), with the holdings and the aggregated votes that decided it."""
    return _relations(store, entity_id, as_of, controllers)


@router.get("/entities/{entity_id}/controlled", response_model=ControlListPublic)
def get_controlled(entity_id: str, store: StoreDep, as_of: AsOfDep) -> ControlListPublic:
    """Every company the entity controls, with the evidence."""
    return _relations(store, entity_id, as_of, controlled_companies)


@router.get("/entities/{entity_id}/ubo", response_model=BeneficialOwnersPublic)
def get_beneficial_owners(
    entity_id: str, store: StoreDep, as_of: AsOfDep
) -> BeneficialOwnersPublic:
    """Ultimate beneficial owners: natural persons with an effective share ≥ 25% (summed
    over all ownership paths) or who control the entity."""
    canonical = canonical_id(store, entity_id)
    source = ownership_view(store, as_of, [canonical]) if as_of else store
    try:
        owners = beneficial_owners(source, canonical)
        names = {o.person: (n.name if (n := source.get_node(o.person)) else None) for o in owners}
    finally:
        if source is not store:
            source.close()
    return BeneficialOwnersPublic(
        entity_id=canonical,
        as_of=as_of,
        owners=[
            BeneficialOwnerPublic(
                person=o.person,
                name=names[o.person],
                effective_share_pct=round(o.effective_share_pct, 6),
                controls=o.controls,
                reasons=list(o.reasons),
            )
            for o in owners
        ],
    )
