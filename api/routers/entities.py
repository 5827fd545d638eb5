"""Entity lookup and search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import StoreDep
from api.errors import NotFound
from api.schemas import EntityPublic, SearchResultPublic

router = APIRouter(prefix="/v1", tags=["entities"])


@router.get("/entities/{entity_id}", response_model=EntityPublic)
def get_entity(entity_id: str, store: StoreDep) -> EntityPublic:
    """An entity by its id or any of its aliases (other customer numbers)."""
    node = store.get_node(entity_id)
    if node is None:
        raise NotFound("entity", entity_id)
    return EntityPublic.from_node(node, store.aliases_of(node.id))


@router.get("/search", response_model=SearchResultPublic)
def search(
    store: StoreDep,
    q: Annotated[
        str, Query(min_length=1, max_length=200, description="name, id, alias, id number or USCC")
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResultPublic:
    """Entities by name (Chinese or latin substring), id, alias, resident id number or USCC."""
    nodes = store.search(q, limit)
    return SearchResultPublic(query=q, results=[EntityPublic.from_node(n) for n in nodes])
