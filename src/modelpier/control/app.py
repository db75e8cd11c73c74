"""Composition root of the control plane (``pier server``): builds the FastAPI app.

Everything the routes need is constructed here from ``Settings`` and handed to them through
``app.state``-free closures (see ``routes/``); nothing is read from the environment elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import modelpier
from modelpier.control.errors import install_error_handlers
from modelpier.control.routes.blobs import blob_router
from modelpier.control.routes.models import model_router
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.settings import Settings

log = logging.getLogger("modelpier.control")

# Abandoned uploads are purged after a day: long enough to resume a push across a night.
_UPLOAD_MAX_AGE_S = 24 * 3600


def build_control_plane(settings: Settings, *, registry: Registry | None = None) -> FastAPI:
    registry = registry or build_registry(settings)
    stager = UploadStager(settings.home / "uploads")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stager.purge_older_than(_UPLOAD_MAX_AGE_S)
        yield
        registry.close()

    app = FastAPI(
        title="modelpier control plane",
        version=modelpier.__version__,
        description="Registry, deployments and projects of a modelpier platform. "
                    "Errors use one envelope: `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(model_router(registry), prefix="/api/v1")
    app.include_router(
        blob_router(registry, stager, max_request_bytes=settings.control.max_upload_request_bytes),
        prefix="/api/v1")
    return app
