"""The FastAPI application: one router per resource, errors as JSON."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import RiskIndexHolder
from api.errors import install_error_handlers
from api.jobs import JobRunner
from api.routers import (
    control,
    entities,
    entity_reports,
    explain,
    graph,
    groups,
    guarantees,
    jobs,
    origination,
    related,
    reports,
    rings,
)
from api.service import ServiceSettings, install_service_layer
from api.ui import mount_ui
from ingest.pipeline import BANK_COLLECTION, BANK_PARAMETERS_KEY
from kg.store import GraphStore
from risk.limits import BankParameters, load_bank_parameters


def create_app(
    store: GraphStore, params: BankParameters | None = None, *, preload_index: bool = True
) -> FastAPI:
    """Build the resource API over an open store; the caller owns the store's lifetime.

    This is the bare application (what tests and embedding code use); the served one is
    `create_secured_app`, which adds authentication, the audit trail and limits.

    Args:
        store: the graph store.
        params: bank capital and limit profile; default: the `bank.toml` ingested with the
            data, then `bank.toml` in the working directory and RISKGRAPH_* environment
            variables over it.
        preload_index: load the risk index at start-up rather than on the first request.
    """
    bank_params = (
        params
        if params is not None
        else load_bank_parameters(
            "bank.toml", stored=store.get_document(BANK_COLLECTION, BANK_PARAMETERS_KEY)
        )
    )
    holder = RiskIndexHolder(store, bank_params, on_load=groups.prerender_large_groups)
    job_runner = JobRunner(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if preload_index:
            holder.get()
            # The index is long-lived: keep the collector from re-scanning its millions of
            # objects on every full collection (pauses that would show in the p99).
            gc.collect()
            gc.freeze()
        yield
        job_runner.shutdown()

    app = FastAPI(
        title="riskgraph",
        version="0.1.0",
        description="Related-risk knowledge graph: control, groups, guarantees, fraud rings.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.params = bank_params
    app.state.risk_index = holder
    app.state.jobs = job_runner
    install_error_handlers(app)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (
        entities.router,
        control.router,
        groups.router,
        guarantees.router,
        related.router,
        reports.router,
        origination.router,
        rings.router,
        graph.router,
        entity_reports.router,
        explain.router,
        jobs.router,
    ):
        app.include_router(router)
    mount_ui(app)
    return app


def create_secured_app(
    store: GraphStore,
    params: BankParameters | None = None,
    service: ServiceSettings | None = None,
) -> FastAPI:
    """The app as it is served: `create_app` inside the service layer (API keys and roles,
    audit trail, limits, logs, metrics). `riskgraph serve` and `demo` run this one.

    Args:
        store: the graph store.
        params: bank parameters (see `create_app`).
        service: keys, audit and limits; default from RISKGRAPH_* environment variables.
    """
    app = create_app(store, params)
    install_service_layer(app, service if service is not None else ServiceSettings())
    return app
