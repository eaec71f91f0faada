"""HTTP adapter: wire schemas, body decoding, and the routes, one module per concern."""

from __future__ import annotations

from fastapi import APIRouter

from exporter.api import (
    comparisons,
    docs,
    history,
    ingest,
    lifecycle,
    references,
    service,
    status,
    ui,
)
from exporter.api.context import Context


def build_router(ctx: Context) -> APIRouter:
    """Every route of the exporter."""
    router = APIRouter()
    for module in (ingest, references, comparisons, status, history, lifecycle, service, ui, docs):
        router.include_router(module.router(ctx))
    return router
