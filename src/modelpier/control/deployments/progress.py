"""Pure readings of a deployment's status: a one-word summary, and how a rollout is going.

Used by ``pier get``, ``pier deploy --wait`` and ``pier rollout status`` (and the dashboard later),
so every client reads the reconciler's conditions the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelpier.spec.deployment import Condition, ConditionType, ModelDeploymentStatus

# Progressing=False with one of these reasons means the rollout gave up (reconciler vocabulary).
FAILED_REASONS = frozenset({"RolloutFailed", "ProgressDeadlineExceeded", "RolledBack"})

Phase = Literal["pending", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class RolloutProgress:
    phase: Phase
    message: str


def summarize(status: ModelDeploymentStatus, *, deleting: bool = False) -> str:
    """One word for listings: Deleting, Degraded, Ready, Progressing or Pending."""
    if deleting:
        return "Deleting"
    kinds: tuple[ConditionType, ...] = ("Degraded", "Ready", "Progressing")
    for kind in kinds:
        cond = status.condition(kind)
        if cond is not None and cond.status == "True":
            return kind
    return "Pending"


def _after(cond: Condition | None, since: datetime) -> bool:
    return cond is not None and cond.last_transition_time >= since


def rollout_progress(status: ModelDeploymentStatus, revision: int, since: datetime) -> RolloutProgress:
    """Where the rollout of ``revision`` (made at ``since``) stands.

    Ready once the backend serves this revision (or a newer one) with Ready=True, unless the newer
    one is the reconciler's rollback: a rollback revision is numbered after the one that failed, so
    "serves a newer revision" alone would read a failed rollout as a success. Failed when, after
    ``since``, Degraded turned True or Progressing turned False with a failure reason; conditions
    older than the revision describe an earlier rollout and are ignored.
    """
    ready, degraded = status.condition("Ready"), status.condition("Degraded")
    progressing = status.condition("Progressing")
    served = status.observed_revision is not None and status.observed_revision >= revision
    rolled_back = (progressing is not None and progressing.status == "False" and progressing.reason == "RolledBack"
                   and status.observed_revision is not None and status.observed_revision > revision)
    if rolled_back:
        assert progressing is not None
        return RolloutProgress("failed", f"RolledBack: {progressing.message}".rstrip(": "))
    if served and ready is not None and ready.status == "True":
        return RolloutProgress("ready", f"revision {status.observed_revision} is ready: "
                                        f"{status.ready_replicas}/{status.desired_replicas} replicas")
    if degraded is not None and degraded.status == "True" and _after(degraded, since):
        return RolloutProgress("failed", f"Degraded ({degraded.reason}): {degraded.message}".rstrip(": "))
    if progressing is not None and progressing.status == "False" and progressing.reason in FAILED_REASONS \
            and _after(progressing, since):
        return RolloutProgress("failed", f"{progressing.reason}: {progressing.message}".rstrip(": "))
    detail = f" ({progressing.reason}: {progressing.message})" if progressing is not None else ""
    return RolloutProgress("pending", f"waiting for revision {revision}: {status.ready_replicas}/"
                                      f"{status.desired_replicas} replicas ready{detail}".rstrip())
