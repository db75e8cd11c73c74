"""Composition root of the control plane (``pier server``): builds the FastAPI app.

Everything the routes need is constructed here from ``Settings`` and handed to them through
``app.state``-free closures (see ``routes/``); nothing is read from the environment elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import modelpier
from modelpier.control.alias_poller import run_alias_poller
from modelpier.control.deployments import DeploymentService
from modelpier.control.errors import install_error_handlers
from modelpier.control.logs import LogSource
from modelpier.control.routes.blobs import blob_router
from modelpier.control.routes.deployments import deployment_router
from modelpier.control.routes.models import model_router
from modelpier.control.routes.projects import project_router
from modelpier.control.state import DeploymentStore
from modelpier.control.store import SqlDeploymentStore
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeployment

log = logging.getLogger("modelpier.control")

# Abandoned uploads are purged after a day: long enough to resume a push across a night.
_UPLOAD_MAX_AGE_S = 24 * 3600


def build_control_plane(settings: Settings, *, registry: Registry | None = None,
                        store: DeploymentStore | None = None, log_source: LogSource | None = None) -> FastAPI:
    """The API app. ``store`` defaults to the SQL store in the registry's database; ``log_source``
    is the backend's reader of replica logs (without one, the logs route answers 404)."""
    registry = registry or build_registry(settings)
    store = store or SqlDeploymentStore.open(settings.resolved_database_url)
    deployments = DeploymentService(store, registry, log_source=log_source)
    stager = UploadStager(settings.home / "uploads")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stager.purge_older_than(_UPLOAD_MAX_AGE_S)
        interval = settings.control.alias_poll_seconds
        poller = asyncio.create_task(run_alias_poller(deployments, interval)) if interval > 0 else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            store.close()
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
    app.include_router(project_router(deployments), prefix="/api/v1")
    app.include_router(deployment_router(deployments), prefix="/api/v1")
    _document_schema_in_openapi(app)
    return app


def _document_schema_in_openapi(app: FastAPI) -> None:
    """Publish the ModelDeployment document schema under components, where the PUT body refers to it.

    The PUT route reads its body raw (JSON or YAML), so FastAPI cannot infer the schema itself.
    """
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            document = ModelDeployment.model_json_schema(by_alias=True, mode="validation",
                                                         ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(document.pop("$defs", {}))
            components["ModelDeployment"] = document
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise
