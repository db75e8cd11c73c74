"""The operator's logic, behind a small ``ClusterApi`` seam: CR → spec → render → apply → status.

``reconcile`` is what the create/update/resume handlers and the periodic timer run: it is
level-triggered and idempotent (server-side apply of the same objects is a no-op), so the timer
also repairs drift (a deleted Service comes back) and refreshes the status. Objects of the
deployment that are no longer rendered (a removed predictor, a disabled autoscaler, a switched
routing kind) are deleted: ``plan_prune`` decides which, purely. The
kopf wiring lives in ``operator.py``, the real API client in ``cluster.py``; tests drive this
module with an in-memory fake of ``ClusterApi``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from modelpier.backends.kubernetes.crd import from_custom_resource
from modelpier.backends.kubernetes.names import object_name
from modelpier.backends.kubernetes.options import OwnerRef, RenderOptions
from modelpier.backends.kubernetes.render import render
from modelpier.backends.kubernetes.routing import public_path
from modelpier.backends.kubernetes.status import (
    decide_status,
    invalid_status,
    observe_workload,
    previous_conditions,
    status_document,
)
from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import ModelDeployment

log = logging.getLogger("modelpier.operator")
Manifest = dict[str, Any]

# Every kind the operator may create; pruning looks at these, and RBAC grants exactly these.
MANAGED_KINDS: Final = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
)


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Manifest) -> ObjectKey:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


class ClusterApi(Protocol):
    def apply(self, obj: Manifest) -> None:
        """Create or update ``obj`` with server-side apply (this operator's field manager)."""

    def get(self, key: ObjectKey) -> Manifest | None:
        """The object as stored, or ``None`` when it does not exist."""

    def list_owned(self, namespace: str, deployment: str) -> list[ObjectKey]:
        """Every object of ``MANAGED_KINDS`` labelled as this operator's for ``deployment``; a kind
        whose API the cluster does not serve (no Istio, no Gateway API) contributes nothing."""

    def delete(self, key: ObjectKey) -> None:
        """Delete the object; absent already is fine."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Manifest  # the JSON for .status
    applied: tuple[ObjectKey, ...] = ()
    deleted: tuple[ObjectKey, ...] = ()


def plan_prune(existing: Iterable[ObjectKey], desired: Iterable[ObjectKey]) -> list[ObjectKey]:
    """Objects that exist, are ours, and are no longer rendered: sorted, so deletion order is stable."""
    return sorted(set(existing) - set(desired))


def status_url(document: ModelDeployment, namespace: str, options: RenderOptions) -> str | None:
    if options.public_url is None:
        return None
    return options.public_url.rstrip("/") + public_path(document.metadata.project or namespace,
                                                        document.metadata.name) + "/"


def _context(body: Manifest) -> tuple[str, str, int | None]:
    meta = body.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name", ""), meta.get("generation")


def _observe(document: ModelDeployment, namespace: str, api: ClusterApi, options: RenderOptions, *,
             body: Manifest, now: datetime) -> Manifest:
    name = document.metadata.name
    observations = [observe_workload(p.name, api.get(ObjectKey("apps/v1", "Deployment", namespace,
                                                               object_name(name, p.name))))
                    for p in document.spec.predictors]
    status = decide_status(document, observations, generation=_context(body)[2],
                           url=status_url(document, namespace, options), now=now,
                           previous=previous_conditions(body))
    return status_document(status)


def reconcile(body: Manifest, api: ClusterApi, options: RenderOptions, *, now: datetime) -> Outcome:
    """Make the cluster match the CR ``body``; the status to write. An invalid spec changes nothing."""
    namespace, name, generation = _context(body)
    try:
        document = from_custom_resource(body)
    except InvalidSpec as exc:
        log.warning("ModelDeployment %s/%s is invalid: %s", namespace, name, exc.message)
        return Outcome(status_document(invalid_status(exc.message, generation=generation, now=now,
                                                      previous=previous_conditions(body))))
    uid = (body.get("metadata") or {}).get("uid", "")
    owned = dataclasses.replace(options, namespace=namespace, owner=OwnerRef(name=name, uid=uid))
    try:
        objects = render(document, owned)
    except InvalidSpec as exc:  # valid as a spec, but not runnable on Kubernetes (a bundle without image)
        return Outcome(status_document(invalid_status(exc.message, generation=generation, now=now,
                                                      previous=previous_conditions(body))))
    for obj in objects:
        api.apply(obj)
    desired = [ObjectKey.of(o) for o in objects]
    stale = plan_prune(api.list_owned(namespace, name), desired)
    for key in stale:
        log.info("deleting %s %s/%s: no longer part of %s", key.kind, key.namespace, key.name, name)
        api.delete(key)
    status = _observe(document, namespace, api, options, body=body, now=now)
    return Outcome(status, applied=tuple(desired), deleted=tuple(stale))

