"""What a deployment's status looks like at a glance: one state word, its tone, and why. Pure.

The state is the most urgent true condition: a deletion in progress, then ``Degraded`` (a replica
crash-loops, a rollout failed), then ``Progressing`` (a rollout is under way), then ``Ready``;
``Pending`` when the reconciler has not reported yet. The word is always shown as text, the tone
only adds colour, so the state never depends on colour alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelpier.control.api.wire import DeploymentBody
from modelpier.spec.deployment import ModelDeploymentStatus

State = Literal["Ready", "Progressing", "Degraded", "Pending", "Deleting"]
Tone = Literal["ok", "busy", "bad", "idle"]
_TONES: dict[State, Tone] = {"Ready": "ok", "Progressing": "busy", "Degraded": "bad", "Pending": "idle",
                             "Deleting": "idle"}


@dataclass(frozen=True, slots=True)
class StatusSummary:
    state: State
    reason: str
    message: str

    @property
    def tone(self) -> Tone:
        return _TONES[self.state]


def summarize_status(status: ModelDeploymentStatus, *, deleting: bool = False) -> StatusSummary:
    if deleting:
        return StatusSummary("Deleting", "DeletionRequested", "the replicas are being stopped")
    for kind in ("Degraded", "Progressing", "Ready"):
        condition = status.condition(kind)
        if condition is not None and condition.status == "True":
            return StatusSummary(kind, condition.reason, condition.message)
    ready = status.condition("Ready")
    if ready is not None:
        return StatusSummary("Pending", ready.reason, ready.message)
    return StatusSummary("Pending", "NotObserved", "the reconciler has not reported on this deployment yet")


@dataclass(frozen=True, slots=True)
class PredictorLine:
    """One predictor as the lists show it: ``main 90% iris:3``, with replicas ready/desired."""

    name: str
    weight: int
    version: str
    ready: int
    desired: int
    shadow: bool


def predictor_lines(deployment: DeploymentBody) -> list[PredictorLine]:
    """The spec's predictors with what the status says of each (spec order; the shadow flagged)."""
    observed = {p.name: p for p in deployment.status.predictors}
    shadow = deployment.spec.shadow.predictor if deployment.spec.shadow is not None else None
    lines = []
    for p in deployment.spec.predictors:
        seen = observed.get(p.name)
        version = (seen.model_version if seen is not None and seen.model_version else None) \
            or deployment.resolved.get(p.name) or p.model or p.bundle or "?"
        lines.append(PredictorLine(
            name=p.name, weight=0 if p.name == shadow else p.weight, version=version,
            ready=seen.ready_replicas if seen is not None else 0,
            desired=seen.desired_replicas if seen is not None else p.replicas, shadow=p.name == shadow))
    return lines


def model_name_of(reference: str) -> str:
    """``iris`` of ``iris:3`` / ``iris:production``: the name a replica serves the model under."""
    return reference.partition(":")[0]
