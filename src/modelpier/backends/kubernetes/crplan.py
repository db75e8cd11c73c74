"""What the CR synchroniser does about one ModelDeployment: pure decisions, no cluster, no clock.

Two records of one deployment exist on a Kubernetes-backed control plane: the custom resource
(what ``kubectl``/Argo CD wrote) and the control plane's deployment (what ``pier deploy``, rollbacks
and canaries wrote). ``plan_sync`` keeps them one: **both go through the same apply, and the last
writer wins.** A CR whose ``metadata.generation`` is newer than its ``status.observedGeneration``
was edited since it was last synchronised: its spec is applied to the control plane (the same
validation and revision history as ``pier deploy``). Otherwise the control plane holds the newer
write and its spec is mirrored into the CR, so ``kubectl get md -o yaml`` shows what runs.

Deletion follows the same rule: deleting the CR deletes the deployment; ``pier delete`` deletes the
CR. A deployment without a CR is mirrored into a new one unless it was *bound* to a CR before (the
control plane records the binding): then its CR was deleted, perhaps while the control plane was
down, and the deployment goes too. ``ControlPlane`` is the typed callback interface the control
plane offers the synchroniser (``control/deployments/custom_resources.py`` implements it over
``DeploymentService``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from modelpier.backends.kubernetes.crd import KubernetesStatus
from modelpier.backends.kubernetes.names import API_VERSION, KIND
from modelpier.spec.deployment import Condition, ConditionType, ModelDeploymentSpec, ModelDeploymentStatus

Manifest = dict[str, Any]
FIELD_MANAGER: Final = "modelpier-control"  # who the synchroniser writes CRs and their status as
# What the removed kopf operator left on every CR: a finalizer nobody else removes (so `kubectl
# delete md` would hang forever) and its bookkeeping annotations.
LEGACY_FINALIZER: Final = "modelpier.io/finalizer"
LEGACY_ANNOTATIONS: Final = ("modelpier.io/last-handled-configuration",  # its diff base
                              "modelpier.io/changed", "modelpier.io/periodic")  # its handlers' progress
FailureReason = Literal["InvalidSpec", "ApplyFailed"]
FAILURE_REASONS: Final[tuple[FailureReason, ...]] = ("InvalidSpec", "ApplyFailed")


# -- the control plane's side ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ControlView:
    """One deployment as the control plane has it."""

    project: str
    name: str
    spec: ModelDeploymentSpec  # of the latest revision
    revision: int
    status: ModelDeploymentStatus
    deleting: bool
    bound: bool  # a CR was bound to it once: without a CR now, it was deleted


@dataclass(frozen=True, slots=True)
class Applied:
    revision: int
    created: bool  # False: the same spec and versions as the latest revision, nothing new


class ControlPlane(Protocol):
    """What the synchroniser asks of the control plane (synchronous: it is called on a worker thread).

    Errors are the one error tree: ``InvalidSpec``/``InvalidInput`` for a spec the control plane
    refuses (HTTP 422), other ``PierError`` for a valid spec it cannot apply (an unknown model)."""

    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, user: str) -> Applied:
        """Apply as ``pier deploy`` does (the project is created when missing: it is the namespace)."""

    def delete(self, project: str, name: str) -> None:
        """Request deletion; absent already is fine."""

    def status(self, project: str, name: str) -> ControlView | None:
        """The deployment, or ``None`` when the control plane has none."""

    def list(self) -> list[ControlView]:
        """Every deployment, of every project."""

    def bind(self, project: str, name: str, resource: str) -> None:
        """Record that the CR ``resource`` (namespace/name, uid) stands for this deployment."""


# -- the custom resource's side -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CustomResource:
    """A ModelDeployment CR as the synchroniser reads it."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    spec: Any  # as stored; validated only when applied
    status: Manifest
    manager: str  # the field manager that last wrote the spec, e.g. kubectl-client-side-apply

    @property
    def observed_generation(self) -> int | None:
        value = self.status.get("observedGeneration")
        return value if isinstance(value, int) else None

    @property
    def failure(self) -> FailureReason | None:
        """The reason this generation could not be applied, as the status records it."""
        if self.observed_generation != self.generation:
            return None
        for condition in self.status.get("conditions") or []:
            reason = condition.get("reason")
            if condition.get("type") == "Degraded" and reason in FAILURE_REASONS:
                return "InvalidSpec" if reason == "InvalidSpec" else "ApplyFailed"
        return None

    @classmethod
    def of(cls, obj: Manifest) -> CustomResource:
        meta = obj.get("metadata") or {}
        return cls(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
                   generation=int(meta.get("generation") or 0), resource_version=str(meta.get("resourceVersion", "")),
                   spec=obj.get("spec"), status=dict(obj.get("status") or {}), manager=spec_manager(meta))


def spec_manager(meta: Manifest) -> str:
    """The manager that last wrote the CR's spec (from ``managedFields``), ``unknown`` when none says."""
    writers = [m for m in meta.get("managedFields") or []
               if m.get("subresource") in (None, "") and "f:spec" in (m.get("fieldsV1") or {})]
    writers.sort(key=lambda m: str(m.get("time") or ""))
    return str(writers[-1].get("manager") or "unknown") if writers else "unknown"


def without_legacy_marks(obj: Manifest) -> Manifest | None:
    """``obj`` without the old operator's finalizer and annotations, or ``None`` when it has none of them
    (an upgrade from the kopf operator: its finalizer would block every delete)."""
    meta = obj.get("metadata") or {}
    finalizers = list(meta.get("finalizers") or [])
    annotations = dict(meta.get("annotations") or {})
    stale = [k for k in annotations if k in LEGACY_ANNOTATIONS]
    if LEGACY_FINALIZER not in finalizers and not stale:
        return None
    cleaned = {**meta, "finalizers": [f for f in finalizers if f != LEGACY_FINALIZER],
               "annotations": {k: v for k, v in annotations.items() if k not in stale}}
    return {**obj, "metadata": cleaned}


def same_spec(a: ModelDeploymentSpec, b: ModelDeploymentSpec) -> bool:
    """Equal as values, defaults included (a CR may spell out a default the control plane left implicit)."""
    return a.model_dump(mode="json") == b.model_dump(mode="json")


# -- the decision --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ApplyToControl:
    """Hand the CR's spec to the control plane (the CR was written last)."""

    resource: CustomResource


@dataclass(frozen=True, slots=True)
class MirrorToResource:
    """Write the control plane's spec into the CR (create it when ``resource`` is None)."""

    view: ControlView
    resource: CustomResource | None


@dataclass(frozen=True, slots=True)
class DeleteDeployment:
    project: str
    name: str


@dataclass(frozen=True, slots=True)
class DeleteResource:
    resource: CustomResource


@dataclass(frozen=True, slots=True)
class RefreshStatus:
    """Nothing to apply: bring the CR's status up to date (written only when it changed)."""

    resource: CustomResource
    view: ControlView | None


SyncAction = ApplyToControl | MirrorToResource | DeleteDeployment | DeleteResource | RefreshStatus | None


def plan_sync(resource: CustomResource | None, view: ControlView | None,
              parsed: ModelDeploymentSpec | None) -> SyncAction:
    """The one thing to do about a deployment; ``parsed`` is the CR's spec when it validates."""
    if resource is None:
        if view is None or view.deleting:
            return None
        return DeleteDeployment(view.project, view.name) if view.bound else MirrorToResource(view, None)
    if resource.observed_generation != resource.generation:
        return ApplyToControl(resource)  # edited since last synchronised: the CR is the last writer
    if view is None:
        # Never applied (a failed apply is retried: the model may exist now), or gone from the control
        # plane without passing through deletion (a lost database): the CR re-creates it.
        return RefreshStatus(resource, None) if resource.failure == "InvalidSpec" else ApplyToControl(resource)
    return _plan_both(resource, view, parsed)


def _plan_both(resource: CustomResource, view: ControlView, parsed: ModelDeploymentSpec | None) -> SyncAction:
    """Both exist and the CR's generation was synchronised already."""
    if view.deleting:
        return DeleteResource(resource)  # `pier delete`: the last writer deleted it
    failure = resource.failure
    if failure == "ApplyFailed":
        return ApplyToControl(resource)
    if failure is None and (parsed is None or not same_spec(parsed, view.spec)):
        return MirrorToResource(view, resource)  # pier deploy, rollback or canary wrote last
    return RefreshStatus(resource, view)


# -- what is written to the CR ---------------------------------------------------------------------

def resource_body(view: ControlView, resource: CustomResource | None) -> Manifest:
    """The CR carrying the control plane's spec: new, or ``resource`` replaced (checked by its version)."""
    metadata: Manifest = {"name": view.name, "namespace": view.project}
    if resource is not None:
        metadata["resourceVersion"] = resource.resource_version
    spec = view.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _condition(kind: ConditionType, status: Literal["True", "False", "Unknown"], reason: str, message: str, *,
               now: datetime, previous: list[Condition]) -> Condition:
    old = next((c for c in previous if c.type == kind), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=since)


def previous_conditions(status: Manifest) -> list[Condition]:
    out = []
    for raw in status.get("conditions") or []:
        try:
            out.append(Condition.model_validate(raw))
        except ValueError:
            continue  # unreadable: rewritten anyway
    return out


def resource_status(view: ControlView | None, *, generation: int, failure: tuple[FailureReason, str] | None,
                    previous: Manifest, now: datetime) -> Manifest:
    """The CR's ``.status``: the control plane's status of the deployment, ``observedGeneration``, and
    when this generation could not be applied a ``Degraded`` condition whose reason says why
    (``InvalidSpec``, ``ApplyFailed``) with the control plane's message. The revision that served
    before keeps serving, so ``Ready`` stays what the control plane says."""
    conditions = previous_conditions(previous)
    base = view.status if view is not None else ModelDeploymentStatus()
    fields = base.model_dump()
    kept = [c for c in base.conditions if failure is None or c.type != "Degraded"]
    if failure is not None:
        reason, message = failure
        if view is None:
            kept = [_condition("Ready", "False", reason, message, now=now, previous=conditions),
                    _condition("Progressing", "False", reason, "", now=now, previous=conditions)]
        kept.append(_condition("Degraded", "True", reason, message, now=now, previous=conditions))
    fields["conditions"] = kept
    status = KubernetesStatus.model_validate({**fields, "observed_generation": generation})
    return status.model_dump(mode="json", by_alias=True)


def status_changed(current: Manifest, new: Manifest) -> bool:
    return any(current.get(k) != v for k, v in new.items())
