"""Guarantee circles and chains an entity is in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AsOfDep, StoreDep, canonical_id
from api.schemas import GuaranteeChainPublic, GuaranteeCirclePublic, GuaranteesPublic
from kg.store import GraphStore
from risk.guarantees import (
    DEFAULT_MAX_CYCLE_LENGTH,
    GuaranteeGraph,
    chain_index,
    chain_through,
    guarantee_circles,
    strong_components,
)

router = APIRouter(prefix="/v1", tags=["guarantees"])


def _ids(store: GraphStore, graph: GuaranteeGraph, positions: list[int]) -> dict[int, str]:
    nodes = store.get_nodes_by_nid([int(graph.nids[p]) for p in positions])
    by_nid = {n.nid: n.id for n in nodes}
    return {p: by_nid.get(int(graph.nids[p]), str(graph.nids[p])) for p in positions}


@router.get("/entities/{entity_id}/guarantees", response_model=GuaranteesPublic)
def get_guarantees(
    entity_id: str,
    store: StoreDep,
    as_of: AsOfDep,
    max_cycle_length: Annotated[int, Query(ge=2, le=12)] = DEFAULT_MAX_CYCLE_LENGTH,
) -> GuaranteesPublic:
    """The guarantee circle the entity is in (its strongly connected component of the
    guarantee graph, simple cycles up to `max_cycle_length` guarantees, mutual pairs, total
    amount) and the longest guarantee chain through it outside circles."""
    canonical = canonical_id(store, entity_id)
    node = store.get_node(canonical)
    graph = GuaranteeGraph.from_store(store, as_of)
    position = graph.position_of_nid(node.nid) if node is not None else None
    circles: list[GuaranteeCirclePublic] = []
    chains: list[GuaranteeChainPublic] = []
    if position is not None:
        components = strong_components(graph)
        mine = [c for c in components if position in c]
        for circle in guarantee_circles(graph, max_cycle_length, components=mine):
            ids = _ids(store, graph, circle.members)
            circles.append(
                GuaranteeCirclePublic(
                    members=sorted(ids[m] for m in circle.members),
                    cycles=[[ids[m] for m in cycle] for cycle in circle.cycles],
                    cycles_truncated=circle.cycles_truncated,
                    mutual_pairs=sorted(sorted([ids[a], ids[b]]) for a, b in circle.mutual_pairs),
                    total_amount=circle.total_amount,
                )
            )
        if not mine:
            in_circles = {m for c in components for m in c}
            chain = chain_through(chain_index(graph, in_circles), position)
            if chain is not None:
                ids = _ids(store, graph, chain.path)
                chains.append(
                    GuaranteeChainPublic(
                        path=[ids[p] for p in chain.path],
                        amounts=chain.amounts,
                        length=chain.length,
                        total_amount=chain.total_amount,
                    )
                )
    return GuaranteesPublic(entity_id=canonical, as_of=as_of, circles=circles, chains=chains)
