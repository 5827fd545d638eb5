"""Connected-client groups: members with the reason each is in, exposure and limits."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import AsOfDep, ParamsDep, RiskIndexDep, StoreDep, canonical_id
from api.schemas import (
    GroupExposurePublic,
    GroupMemberPublic,
    LimitUsePublic,
    MemberReasonPublic,
)
from kg.store import GraphStore
from risk.dated import ownership_view
from risk.groups import client_exposure, connected_group, describe_link, group_limit_uses
from risk.index import RiskIndex
from risk.limits import BankParameters, LimitScope, LimitUse, limit_uses

router = APIRouter(prefix="/v1", tags=["groups"])


def limit_public(use: LimitUse) -> LimitUsePublic:
    return LimitUsePublic(
        name=use.name,
        description=use.description,
        limit=use.limit,
        exposure=use.exposure,
        utilisation=round(use.utilisation, 6),
        breached=use.breached,
    )


# A coroutine: the usual (current) answer is a few dict lookups and must not wait for a
# thread; the recomputation for `as_of`/`explain` runs in the thread pool.
@router.get("/entities/{entity_id}/group", response_model=GroupExposurePublic)
async def get_group(
    entity_id: str,
    store: StoreDep,
    params: ParamsDep,
    index: RiskIndexDep,
    as_of: AsOfDep,
    explain: Annotated[
        bool, Query(description="explain each control link with the votes and holdings")
    ] = False,
) -> GroupExposurePublic:
    """The entity's connected-client group: every member with the reason it is in (the
    control path or the common controller), the group's exposure (sum of loan balances),
    the guarantees its members gave, and the utilisation of every applicable limit.

    Current answers come from the precomputed risk index; `as_of` or `explain=true`
    recompute the group from the reasoned facts (slower)."""
    if as_of is None and not explain:
        # Canonical ids are answered from the index; only aliases need the store.
        known = entity_id if index.knows(entity_id) else canonical_id(store, entity_id)
        return _group_from_index(known, params, index)
    return await run_in_threadpool(_group_recomputed, entity_id, store, params, index, as_of)


def _group_recomputed(
    entity_id: str,
    store: GraphStore,
    params: BankParameters,
    index: RiskIndex,
    as_of: str | None,
) -> GroupExposurePublic:
    canonical = canonical_id(store, entity_id)
    source = ownership_view(store, as_of, [canonical]) if as_of else store
    members = None if as_of else index.group(canonical).members
    try:
        group = connected_group(
            source, canonical, exposure_store=store, as_of=as_of, members=members
        )
    finally:
        if source is not store:
            source.close()
    entity = next(m for m in group.members if m.id == canonical)
    limits = group_limit_uses(group, params) if len(group.members) > 1 else []
    limits += limit_uses(
        params,
        LimitScope.CLIENT,
        entity.label == "Company" and entity.is_financial,
        client_exposure(store, canonical, as_of).loans,
    )
    return GroupExposurePublic(
        entity_id=canonical,
        group_id=group.group_id,
        as_of=as_of,
        members=[
            GroupMemberPublic(
                id=m.id,
                name=m.name,
                label=m.label,
                aliases=m.aliases,
                exposure=m.exposure.loans,
                guarantees_given=m.exposure.guarantees_given,
                reasons=[
                    MemberReasonPublic(kind=r.kind, other_id=r.other, text=r.text, rule=r.rule)
                    for r in m.reasons
                ],
            )
            for m in group.members
        ],
        exposure=group.exposure,
        guarantees_given=group.guarantees_given,
        interbank=group.interbank,
        large_exposure=group.exposure >= params.large_exposure_threshold,
        limits=[limit_public(u) for u in limits],
    )


def _group_from_index(
    canonical: str, params: BankParameters, index: RiskIndex
) -> GroupExposurePublic:
    entry = index.group(canonical)
    if len(entry.members) > 1:
        members = _indexed_members(index, entry.group_id)
    else:
        members = _members_of(index, entry.members)
        members[0].reasons = [MemberReasonPublic(kind="self", text="the client asked about")]
    limits = (
        limit_uses(params, LimitScope.GROUP, entry.interbank, entry.exposure)
        if len(entry.members) > 1
        else []
    )
    limits += limit_uses(
        params,
        LimitScope.CLIENT,
        index.client_interbank(canonical),
        index.balance.get(canonical, 0.0),
    )
    return GroupExposurePublic(
        entity_id=canonical,
        group_id=entry.group_id,
        members=members,
        exposure=entry.exposure,
        guarantees_given=entry.guarantees_given,
        interbank=entry.interbank,
        large_exposure=entry.exposure >= params.large_exposure_threshold,
        limits=[limit_public(u) for u in limits],
    )


# Rendered members of recently asked groups, per index build: a group of hundreds of members
# costs milliseconds to render and is the same for every member asked about.
_MEMBER_CACHE: OrderedDict[tuple[str, str], list[GroupMemberPublic]] = OrderedDict()
_MEMBER_CACHE_SIZE = 1024


# Groups this large are rendered when the index is loaded rather than on the first request
# for them: at 1M customers the largest group (1,608 members) takes ~30 ms to render, which
# alone would break the lookup's p99.
PRERENDER_MIN_MEMBERS = 100
_PRERENDERED: dict[tuple[str, str], list[GroupMemberPublic]] = {}


def prerender_large_groups(index: RiskIndex, min_members: int = PRERENDER_MIN_MEMBERS) -> int:
    """Render the members of every group of at least `min_members` of a freshly loaded index
    (those of earlier indexes are dropped); returns how many groups were rendered."""
    rendered = {
        (index.built_at, group_id): _members_of(index, group.members)
        for group_id, group in index.groups.items()
        if len(group.members) >= min_members
    }
    _PRERENDERED.clear()
    _PRERENDERED.update(rendered)
    return len(rendered)


def _indexed_members(index: RiskIndex, group_id: str) -> list[GroupMemberPublic]:
    key = (index.built_at, group_id)
    cached = _PRERENDERED.get(key) or _MEMBER_CACHE.get(key)
    if cached is None:
        cached = _members_of(index, index.groups[group_id].members)
        _MEMBER_CACHE[key] = cached
        while len(_MEMBER_CACHE) > _MEMBER_CACHE_SIZE:
            _MEMBER_CACHE.popitem(last=False)
    return cached


def _members_of(index: RiskIndex, ids: list[str]) -> list[GroupMemberPublic]:
    entry = index.group(ids[0])
    return [
        GroupMemberPublic(
            id=member,
            name=index.names.get(member),
            label=index.labels.get(member, ""),
            aliases=index.aliases.get(member, []),
            exposure=index.balance.get(member, 0.0),
            guarantees_given=index.guarantees_given.get(member, 0.0),
            reasons=[
                MemberReasonPublic(
                    kind=kind,
                    other_id=other,
                    text=describe_link(kind, other, rule, index.names),
                    rule=rule,
                )
                for kind, other, rule in entry.reasons.get(member, [])
            ],
        )
        for member in ids
    ]
