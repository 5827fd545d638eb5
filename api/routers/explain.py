"""Explanations: the derivation tree of an inferred link, down to the source rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import StoreDep
from api.errors import ApiError, NotFound
from reasoning.provenance import explain as explain_fact

router = APIRouter(prefix="/v1", tags=["explain"])

IdQuery = Annotated[str, Query(min_length=1, max_length=200)]


class DerivationPublic(BaseModel):
    """A fact, the rule or axiom that produced it, its premises, and for a source fact the
    file and line it was read from."""

    fact: dict[str, Any]
    rule: str
    source: dict[str, Any] | None = None
    premises: list[DerivationPublic] = []


@router.get("/explain", response_model=DerivationPublic)
def explain(
    subject: IdQuery, predicate: IdQuery, object: IdQuery, store: StoreDep
) -> DerivationPublic:
    """Why `predicate(subject, object)` holds: the derivation tree of the inferred link."""
    for entity in (subject, object):
        if store.resolve(entity) is None:
            raise NotFound("entity", entity)
    tree = explain_fact(store, subject, predicate, object)
    if tree is None:
        raise ApiError(
            404,
            "inferred_fact_not_found",
            f"no inferred fact {predicate}({subject}, {object}); run reasoning first "
            "or check the predicate",
        )
    return DerivationPublic.model_validate(tree.to_dict())
