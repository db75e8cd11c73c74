"""The control plane's API app: routes, security, error envelope, OpenAPI document, housekeeping loops.

``build_platform`` (``control/platform.py``, the composition root) constructs everything the routes
need from ``Settings`` and hands it over as ``ControlParts``; the routes get it through
``app.state``-free closures (see ``routes/``); nothing is read from the environment here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Path, Response
from fastapi.openapi.utils import get_openapi

import modelpier
from modelpier.auth.quota import Limits
from modelpier.auth.service import AuthService
from modelpier.control.api.docs_page import install_docs
from modelpier.control.api.errors import install_error_handlers
from modelpier.control.api.metrics import CONTENT_TYPE, ControlMetrics
from modelpier.control.api.openapi_errors import document_errors
from modelpier.control.api.policy import unprotected_routes
from modelpier.control.api.routes.access import access_router
from modelpier.control.api.routes.blobs import blob_router
from modelpier.control.api.routes.canary import canary_router
from modelpier.control.api.routes.deployments import deployment_router
from modelpier.control.api.routes.members import member_router
from modelpier.control.api.routes.models import model_router
from modelpier.control.api.routes.projects import project_router
from modelpier.control.api.routes.routing import RoutingFeed, routing_router
from modelpier.control.api.routes.tokenreview import tokenreview_router
from modelpier.control.api.routes.traffic import traffic_router
from modelpier.control.api.security import install_security, openapi_routes
from modelpier.control.canary.driver import CanaryDriver
from modelpier.control.deployments.alias_poller import run_alias_poller
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.deployments.state import DeploymentStore
from modelpier.control.housekeeping.blob_gc import run_blob_collector
from modelpier.control.housekeeping.upload_sweeper import run_upload_sweeper
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import TrafficStore
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeployment

log = logging.getLogger("modelpier.control")


@dataclass(frozen=True, slots=True)
class ControlParts:
    """What the API serves, wired by ``build_platform`` (``control/platform.py``), the one composition root.

    ``store`` is the API's deployment store (under a reconciler, writes through it wake the reconciler);
    ``deployments`` the use cases over it; ``traffic`` the gateways' reports (shared with the reconciler's
    ``autoscaler``); ``on_traffic_waiting`` is called when a report says requests wait for a cold start
    (the reconciler's trigger); ``feed`` the routing table the reconciler publishes, served to gateways;
    ``replica_history`` the reconciler's record of ready/desired replicas, for the traffic charts.
    """

    registry: Registry
    store: DeploymentStore
    auth: AuthService
    deployments: DeploymentService
    stager: UploadStager
    traffic: TrafficStore
    canaries: CanaryDriver
    feed: RoutingFeed
    replica_history: ReplicaHistory
    autoscaler: Autoscaler | None = None
    on_traffic_waiting: Callable[[], None] | None = None
    # Runs work during each term of leadership (cancelled when the term ends), when several control
    # planes share one backend; None: this one always leads.
    while_leading: Callable[[Callable[[], Coroutine[Any, Any, None]]], Coroutine[Any, Any, None]] | None = None


def build_control_plane(settings: Settings, parts: ControlParts) -> FastAPI:
    """The API app over ``parts``. Its lifespan resumes the canaries a previous control plane left running,
    runs the housekeeping loops, and closes the stores, registry and auth store on shutdown."""
    registry, store, auth, deployments = parts.registry, parts.store, parts.auth, parts.deployments
    canaries, traffic, stager = parts.canaries, parts.traffic, parts.stager
    quotas = auth.store

    def project_limits(project: str) -> Limits:
        return Limits(**quotas.limits(project))

    metrics = ControlMetrics(traffic, canaries, parts.autoscaler, parts.replica_history,
                             reconcile_interval_s=settings.platform.reconcile_interval_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(loop) for loop in await _background(settings, parts)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await canaries.close()  # closes canary_store too
            store.close()
            registry.close()
            auth.store.close()

    app = FastAPI(
        title="modelpier control plane",
        version=modelpier.__version__,
        description="Registry, deployments and projects of a modelpier platform. "
                    "Errors use one envelope: `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; install_docs serves the vendored copy
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app)
    install_security(app, auth)  # before any route: the app-wide dependency is copied into each

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(model_router(registry, project_limits), prefix="/api/v1")  # the default project's
    app.include_router(model_router(registry, project_limits, require_project=deployments.get_project),
                       prefix="/api/v1/projects/{project}", dependencies=[Depends(_project_parameter)])
    app.include_router(
        blob_router(registry, stager, max_request_bytes=settings.control.max_upload_request_bytes,
                    limits=project_limits, gc_grace_s=settings.control.blob_gc_grace_s),
        prefix="/api/v1")
    app.include_router(project_router(deployments, auth), prefix="/api/v1")
    app.include_router(member_router(auth, deployments), prefix="/api/v1")
    app.include_router(deployment_router(deployments), prefix="/api/v1")
    app.include_router(access_router(auth, deployments), prefix="/api/v1")
    app.include_router(tokenreview_router(auth))
    app.include_router(traffic_router(deployments, traffic, parts.on_traffic_waiting, parts.replica_history),
                       prefix="/api/v1")
    app.include_router(canary_router(canaries), prefix="/api/v1")
    app.include_router(routing_router(parts.feed), prefix="/api/v1")

    @app.get("/api/v1/metrics", tags=["metrics"], response_class=Response,
             summary="Prometheus metrics of the control plane (platform admin: scrape with its token)")
    def control_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    check_protected(app)
    _document_schema_in_openapi(app)
    return app


def _project_parameter(project: str = Path(description="The project (a DNS-1123 label).")) -> None:
    """Declares the prefix's ``{project}`` so the OpenAPI document has it; the routes read it themselves."""


def check_protected(app: FastAPI) -> None:
    """Refuse to build an app with a route that no access rule covers (fail closed, at start-up)."""
    missing = unprotected_routes(openapi_routes(app))
    if missing:
        raise RuntimeError(f"routes without an access rule in control/api/policy.py: {', '.join(missing)}")


def _document_schema_in_openapi(app: FastAPI) -> None:
    """Publish the ModelDeployment document schema under components, where the PUT body refers to it,
    and every operation's error answers (``openapi_errors``).

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
            app.openapi_schema = document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise


async def _background(settings: Settings, parts: ControlParts) -> list[Coroutine[Any, Any, None]]:
    """The loops beside the API: every replica expires its own uploads; what acts on deployments and blobs
    runs on the leader alone (``parts.while_leading``): the canaries a previous leader left running (resumed
    before any alias pass), the blob collector and the alias follower."""
    canaries = parts.canaries
    sweeper = run_upload_sweeper(parts.stager, settings.control.upload_ttl_s)
    if parts.while_leading is None:  # always leads: resumed before the app serves, as ever
        await canaries.resume()
        return [sweeper, *_leader_loops(settings, parts.registry, parts.deployments, canaries.running)]

    async def leading() -> None:
        await canaries.resume()
        try:
            await asyncio.gather(*_leader_loops(settings, parts.registry, parts.deployments, canaries.running))
        finally:
            await canaries.suspend()  # the next leader resumes them

    return [sweeper, parts.while_leading(leading)]


def _leader_loops(settings: Settings, registry: Registry, deployments: DeploymentService,
                  canary_running: Callable[[str, str], bool]) -> list[Coroutine[Any, Any, None]]:
    """The loops the leading control plane runs beside its API (every replica expires its own uploads):
    collecting blobs, following aliases (while a canary runs, a followed alias that moves waits for it to
    end: docs/canary.md)."""
    control = settings.control
    loops: list[Coroutine[Any, Any, None]] = []
    if control.blob_gc_interval_s > 0:
        loops.append(run_blob_collector(registry, grace_s=control.blob_gc_grace_s,
                                        interval_s=control.blob_gc_interval_s))
    if control.alias_poll_seconds > 0:
        loops.append(run_alias_poller(deployments, control.alias_poll_seconds, canary_running))
    return loops
