"""Status of a ModelDeployment from its observed Deployments: pure functions, clock injected.

``observe_workload`` reads one apps/v1 Deployment as the API server returns it; ``decide_status``
turns the observations into ``KubernetesStatus`` (conditions ``Ready``, ``Progressing``,
``Degraded``, ready/desired replicas per predictor, ``observedGeneration``, URL). A condition
keeps its ``lastTransitionTime`` while its status does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelpier.backends.kubernetes.crd import KubernetesStatus
from modelpier.spec.deployment import Condition, ConditionType, ModelDeployment, PredictorStatus

Manifest = dict[str, Any]
Truth = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class WorkloadObservation:
    """One predictor's Deployment as last seen; ``None`` fields mean "not reported yet"."""

    predictor: str
    desired: int
    ready: int
    updated: int
    current: bool  # the Deployment controller has seen the newest template (observedGeneration)
    failure: str | None = None  # why the rollout stalled (ProgressDeadlineExceeded), if it did


def observe_workload(predictor: str, deployment: Manifest | None) -> WorkloadObservation:
    """An observation of ``deployment`` (``None``: not created yet)."""
    if deployment is None:
        return WorkloadObservation(predictor, desired=0, ready=0, updated=0, current=False)
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    failure = None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            failure = condition.get("message") or "the rollout did not finish before its deadline"
    return WorkloadObservation(
        predictor, desired=int(spec.get("replicas", 1)), ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        current=int(status.get("observedGeneration") or 0) >= int(generation), failure=failure)


def _condition(kind: ConditionType, status: Truth, reason: str, message: str, *, now: datetime,
               previous: list[Condition]) -> Condition:
    old = next((c for c in previous if c.type == kind), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=since)


def _not_ready(observations: list[WorkloadObservation]) -> list[str]:
    return [f"{o.predictor}: {o.ready}/{o.desired} ready" for o in observations
            if not o.current or o.ready < o.desired or o.updated < o.desired]


def decide_status(document: ModelDeployment, observations: list[WorkloadObservation], *, generation: int | None,
                  url: str | None, now: datetime, previous: list[Condition]) -> KubernetesStatus:
    waiting = _not_ready(observations)
    failures = [f"{o.predictor}: {o.failure}" for o in observations if o.failure]
    ready = not waiting
    conditions = [
        _condition("Ready", "True" if ready else "False", "ReplicasReady" if ready else "ReplicasNotReady",
                   "every predictor has its replicas ready" if ready else "; ".join(waiting),
                   now=now, previous=previous),
        _condition("Progressing", "False" if ready else "True", "RolloutComplete" if ready else "RollingOut",
                   "" if ready else "waiting for " + "; ".join(waiting), now=now, previous=previous),
        _condition("Degraded", "True" if failures else "False", "RolloutFailed" if failures else "AsExpected",
                   "; ".join(failures), now=now, previous=previous),
    ]
    by_name = {o.predictor: o for o in observations}
    predictors = [PredictorStatus(name=p.name, model_version=p.model or p.bundle,
                                  ready_replicas=by_name[p.name].ready if p.name in by_name else 0,
                                  desired_replicas=by_name[p.name].desired if p.name in by_name else 0,
                                  weight=p.weight) for p in document.spec.predictors]
    return KubernetesStatus(
        conditions=conditions, ready_replicas=sum(p.ready_replicas for p in predictors),
        desired_replicas=sum(p.desired_replicas for p in predictors), url=url, predictors=predictors,
        observed_generation=generation)


def invalid_status(message: str, *, generation: int | None, now: datetime, previous: list[Condition]
                   ) -> KubernetesStatus:
    """The status of a CR whose spec does not validate: nothing is applied until it is fixed."""
    return KubernetesStatus(conditions=[
        _condition("Ready", "False", "InvalidSpec", message, now=now, previous=previous),
        _condition("Progressing", "False", "InvalidSpec", "", now=now, previous=previous),
        _condition("Degraded", "True", "InvalidSpec", message, now=now, previous=previous),
    ], observed_generation=generation)


def previous_conditions(body: Manifest) -> list[Condition]:
    """The conditions already on a CR (unreadable ones are dropped: they are rewritten anyway)."""
    out = []
    for raw in (body.get("status") or {}).get("conditions") or []:
        try:
            out.append(Condition.model_validate(raw))
        except ValueError:
            continue
    return out


def status_document(status: KubernetesStatus) -> Manifest:
    """The JSON the operator patches into ``.status`` (camelCase, every field present)."""
    return status.model_dump(mode="json", by_alias=True)
