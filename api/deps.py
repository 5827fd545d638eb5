"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import Depends, Query, Request

from api.errors import NotFound
from kg.store import GraphStore
from risk.index import (
    INDEX_COLLECTION,
    INDEX_META_KEY,
    RiskIndex,
    build_risk_index,
    load_risk_index,
)
from risk.limits import BankParameters

# Dependencies are coroutines: they only read app state, and a sync dependency would cost a
# thread-pool hop per request on the hot path.

# How often an API process looks for a newer risk index written by the nightly job.
INDEX_RECHECK_SECONDS = 5.0


async def get_store(request: Request) -> GraphStore:
    store: GraphStore = request.app.state.store
    return store


async def get_params(request: Request) -> BankParameters:
    params: BankParameters = request.app.state.params
    return params


StoreDep = Annotated[GraphStore, Depends(get_store)]
ParamsDep = Annotated[BankParameters, Depends(get_params)]


class RiskIndexHolder:
    """The API process's copy of the risk index, reloaded when a newer one is stored.

    When the store has none yet (reasoning ran without `build_risk_index`), it is built
    once in memory.
    """

    def __init__(
        self,
        store: GraphStore,
        params: BankParameters,
        on_load: Callable[[RiskIndex], object] | None = None,
    ) -> None:
        """`on_load` runs on every index this holder loads or builds, before it serves it
        (the API pre-renders large groups there)."""
        self._store = store
        self._params = params
        self._on_load = on_load
        self._lock = threading.Lock()
        self._index: RiskIndex | None = None
        self._checked = 0.0
        self._stamp: str | None = None

    def get(self) -> RiskIndex:
        now = time.monotonic()
        index = self._index
        if index is not None and now - self._checked < INDEX_RECHECK_SECONDS:
            return index
        with self._lock:
            if self._index is not None and now - self._checked < INDEX_RECHECK_SECONDS:
                return self._index
            self._checked = now
            meta = self._store.get_document(INDEX_COLLECTION, INDEX_META_KEY)
            stamp = meta.get("built_at") if meta else None
            if self._index is not None and (stamp is None or stamp == self._stamp):
                return self._index
            fresh = load_risk_index(self._store) if stamp is not None else None
            if fresh is None or fresh.related_to != self._params.bank_entity_id:
                fresh = build_risk_index(self._store, self._params, save=False)
            if self._on_load is not None:
                self._on_load(fresh)
            self._index, self._stamp = fresh, stamp
            return fresh


async def get_risk_index(request: Request) -> RiskIndex:
    holder: RiskIndexHolder = request.app.state.risk_index
    return holder.get()


RiskIndexDep = Annotated[RiskIndex, Depends(get_risk_index)]


async def as_of_param(
    as_of: Annotated[
        date | None,
        Query(
            description="answer as of this date (YYYY-MM-DD): holdings recorded by then, "
            "guarantees in force that day"
        ),
    ] = None,
) -> str | None:
    return as_of.isoformat() if as_of is not None else None


AsOfDep = Annotated[str | None, Depends(as_of_param)]


def canonical_id(store: GraphStore, entity_id: str) -> str:
    """The canonical id of an entity id or alias; 404 when unknown."""
    canonical = store.resolve(entity_id)
    if canonical is None:
        raise NotFound("entity", entity_id)
    return canonical
