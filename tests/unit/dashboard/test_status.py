"""A deployment's state at a glance, and its predictors as the lists show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelpier.control.api.wire import DeploymentBody
from modelpier.dashboard.status import model_name_of, predictor_lines, summarize_status
from modelpier.spec.deployment import ModelDeploymentStatus

T = datetime(2026, 1, 1, tzinfo=UTC)


def status(**conditions: str) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate({"conditions": [
        {"type": kind, "status": value, "reason": f"{kind}Reason", "message": f"{kind} message",
         "lastTransitionTime": T.isoformat()} for kind, value in conditions.items()]})


@pytest.mark.parametrize(("conditions", "state", "tone"), [
    ({"Ready": "True", "Progressing": "False", "Degraded": "False"}, "Ready", "ok"),
    ({"Ready": "True", "Progressing": "True", "Degraded": "False"}, "Progressing", "busy"),
    ({"Ready": "True", "Progressing": "True", "Degraded": "True"}, "Degraded", "bad"),
    ({"Ready": "False", "Progressing": "False", "Degraded": "False"}, "Pending", "idle"),
    ({}, "Pending", "idle"),
])
def test_the_most_urgent_true_condition_wins(conditions: dict[str, str], state: str, tone: str) -> None:
    summary = summarize_status(status(**conditions))
    assert (summary.state, summary.tone) == (state, tone)
    if conditions.get(state) == "True":
        assert summary.reason == f"{state}Reason"


def test_deleting_overrides_every_condition() -> None:
    assert summarize_status(status(Degraded="True"), deleting=True).state == "Deleting"


def deployment(spec: dict[str, Any], observed: list[dict[str, Any]], resolved: dict[str, str]) -> DeploymentBody:
    return DeploymentBody.model_validate({
        "metadata": {"name": "iris", "project": "default", "revision": 2, "servingRevision": 1, "deleting": False,
                     "createdAt": T.isoformat(), "updatedAt": T.isoformat()},
        "spec": spec, "resolved": resolved, "status": {"predictors": observed}})


def test_predictor_lines_join_spec_status_and_resolved_versions() -> None:
    d = deployment({"predictors": [{"name": "main", "model": "iris:production", "weight": 90, "replicas": 2},
                                   {"name": "canary", "model": "iris:3", "weight": 10},
                                   {"name": "shadow", "model": "iris:4", "weight": 0}],
                    "shadow": {"predictor": "shadow"}},
                   [{"name": "main", "modelVersion": "iris:2", "readyReplicas": 1, "desiredReplicas": 2}],
                   {"main": "iris:2", "canary": "iris:3", "shadow": "iris:4"})
    lines = predictor_lines(d)
    assert [(p.name, p.weight, p.version, p.ready, p.desired, p.shadow) for p in lines] == [
        ("main", 90, "iris:2", 1, 2, False), ("canary", 10, "iris:3", 0, 1, False),
        ("shadow", 0, "iris:4", 0, 1, True)]


@pytest.mark.parametrize(("ref", "name"), [("iris:3", "iris"), ("iris:production", "iris"), ("iris", "iris")])
def test_model_name_of_a_reference(ref: str, name: str) -> None:
    assert model_name_of(ref) == name
