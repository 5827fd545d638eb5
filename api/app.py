"""The FastAPI application: one router per resource, errors as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routers import entities
from kg.store import GraphStore


def create_app(store: GraphStore) -> FastAPI:
    """Build the API over an open store; the caller owns the store's lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="riskgraph",
        version="0.1.0",
        description="Related-risk knowledge graph: control, groups, guarantees, fraud rings.",
        lifespan=lifespan,
    )
    app.state.store = store
    install_error_handlers(app)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(entities.router)
    return app
