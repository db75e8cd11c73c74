"""``pier operator``: kopf handlers for ``modeldeployments.modelpier.io``, and nothing else.

Each handler hands the CR to ``reconcile`` (pure decisions over a ``ClusterApi``) and writes the
returned status. Create, update and resume reconcile at once; a timer reconciles every
``status_interval_s`` to refresh ready replicas and repair drift. Deleting the CR needs no
handler (and so no finalizer): owner references make Kubernetes' garbage collector delete every
object. kopf keeps its bookkeeping in ``modelpier.io/*`` annotations, because the CRD's status
schema is structural and would prune kopf's usual ``status.kopf``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from modelpier.backends.kubernetes.cluster import KubernetesCluster, api_client
from modelpier.backends.kubernetes.names import GROUP, PLURAL, VERSION
from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.reconcile import ClusterApi, reconcile
from modelpier.errors import ServiceUnavailable

log = logging.getLogger("modelpier.operator")
_RETRY_DELAY_S = 10.0
_MISSING_API_DELAY_S = 60.0


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    render: RenderOptions
    namespaces: tuple[str, ...] = ()  # () watches every namespace
    status_interval_s: float = 15.0
    kubeconfig: str | None = None
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"


def status_changed(body: Mapping[str, Any], status: dict[str, Any]) -> bool:
    """Whether ``status`` differs from what the CR shows (unchanged statuses are not re-patched)."""
    current = dict(body.get("status") or {})
    return any(current.get(k) != v for k, v in status.items())


def handle(body: Mapping[str, Any], patch: kopf.Patch, api: ClusterApi, options: RenderOptions, *,
           now: datetime) -> None:
    """What every handler does: reconcile, then put the status into kopf's ``patch``.

    API errors become kopf's retry types: a 4xx other than 404/409/429 means an object we rendered
    is wrong, and retrying the same object would fail the same way (``PermanentError``).
    """
    try:
        outcome = reconcile(dict(body), api, options, now=now)
    except ApiException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 409, 429):
            raise kopf.PermanentError(f"the API server rejected an object: {exc.reason}: {exc.body}") from exc
        raise kopf.TemporaryError(f"Kubernetes API error {exc.status}: {exc.reason}", delay=_RETRY_DELAY_S) from exc
    except ServiceUnavailable as exc:  # a kind the cluster does not serve: retried slowly until installed
        raise kopf.TemporaryError(exc.message, delay=_MISSING_API_DELAY_S) from exc
    if status_changed(body, outcome.status):
        patch.status.update(outcome.status)


def build_registry(config: OperatorConfig, api: ClusterApi) -> kopf.OperatorRegistry:
    """The handlers, on a registry of their own (no global state; tests can build several)."""
    registry = kopf.OperatorRegistry()
    options = config.render

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration")
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.posting.level = logging.WARNING  # Kubernetes events for problems only

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        handle(body, patch, api, options, now=datetime.now(UTC))

    @kopf.timer(GROUP, VERSION, PLURAL, interval=config.status_interval_s, registry=registry)
    def periodic(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        handle(body, patch, api, options, now=datetime.now(UTC))

    return registry


def run_operator(config: OperatorConfig) -> None:
    """Run until SIGINT/SIGTERM: watch ModelDeployments in ``config.namespaces`` (all when empty)."""
    cluster = KubernetesCluster(api_client(config.kubeconfig), managed_by=config.render.managed_by)
    registry = build_registry(config, cluster)
    kopf.run(registry=registry, standalone=True, clusterwide=not config.namespaces,
             namespaces=config.namespaces, liveness_endpoint=config.liveness_endpoint)
