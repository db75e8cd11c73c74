"""Reading a status: the one-word summary and rollout progress used by --wait and rollout status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelpier.control.deployments.progress import rollout_progress, summarize
from modelpier.spec.deployment import Condition, ModelDeploymentStatus

APPLIED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BEFORE, AFTER = APPLIED - timedelta(minutes=5), APPLIED + timedelta(seconds=5)


def cond(kind: str, status: str, reason: str = "R", when: datetime = AFTER, message: str = "") -> Condition:
    return Condition.model_validate({"type": kind, "status": status, "reason": reason, "message": message,
                                     "lastTransitionTime": when})


def status(*conditions: Condition, **fields: Any) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(conditions=list(conditions), **fields)


@pytest.mark.parametrize(("st", "deleting", "word"), [
    (status(), False, "Pending"),
    (status(cond("Ready", "True")), False, "Ready"),
    (status(cond("Ready", "False"), cond("Progressing", "True")), False, "Progressing"),
    (status(cond("Ready", "True"), cond("Degraded", "True")), False, "Degraded"),
    (status(cond("Ready", "True")), True, "Deleting"),
])
def test_summarize(st: ModelDeploymentStatus, deleting: bool, word: str) -> None:
    assert summarize(st, deleting=deleting) == word


@pytest.mark.parametrize(("st", "phase", "fragment"), [
    (status(), "pending", "waiting for revision 2"),
    # Ready, but for the old revision: still pending
    (status(cond("Ready", "True", when=BEFORE), observed_revision=1), "pending", "0/0"),
    (status(cond("Ready", "True"), observed_revision=2, ready_replicas=2, desired_replicas=2), "ready", "2/2"),
    (status(cond("Ready", "True"), observed_revision=3), "ready", "revision 3"),  # superseded and ready
    (status(cond("Degraded", "True", "ReplicaCrashLoop", message="exit 1")), "failed",
     "Degraded (ReplicaCrashLoop): exit 1"),
    (status(cond("Degraded", "True", "ReplicaCrashLoop", when=BEFORE)), "pending", ""),  # an older failure
    (status(cond("Progressing", "False", "RolloutFailed", message="never ready"), observed_revision=1), "failed",
     "RolloutFailed: never ready"),
    (status(cond("Progressing", "True", "NewReplicasStarting")), "pending", "NewReplicasStarting"),
    # Revision 2 failed and the reconciler rolled back as revision 3, which is ready: a failure, not "ready"
    (status(cond("Ready", "True"), cond("Progressing", "False", "RolledBack", message="rolled back: revision 2 "
                                        "never became ready"), observed_revision=3), "failed",
     "RolledBack: rolled back: revision 2 never became ready"),
    # ... even when Progressing was False before the deploy and only its reason changed (no transition)
    (status(cond("Ready", "True"), cond("Progressing", "False", "RolledBack", when=BEFORE), observed_revision=3),
     "failed", "RolledBack"),
    # An older rollback (of revision 1, as revision 2) does not fail the rollout of revision 2 itself
    (status(cond("Ready", "True"), cond("Progressing", "False", "RolledBack", when=BEFORE), observed_revision=2),
     "ready", "revision 2"),
])
def test_rollout_progress(st: ModelDeploymentStatus, phase: str, fragment: str) -> None:
    progress = rollout_progress(st, 2, APPLIED)
    assert progress.phase == phase
    assert fragment in progress.message
