"""``plan_sync``: what the CR synchroniser does about one deployment (a matrix over both records)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelpier.backends.kubernetes.crplan import (
    ApplyToControl,
    ControlView,
    CustomResource,
    DeleteDeployment,
    DeleteResource,
    MirrorToResource,
    RefreshStatus,
    plan_sync,
    resource_body,
    resource_status,
    spec_manager,
    without_legacy_marks,
)
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus, parse_deployment_spec

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
SPEC = parse_deployment_spec({"predictors": [{"model": "iris:1"}]})
OTHER = parse_deployment_spec({"predictors": [{"model": "iris:2"}]})


def resource(generation: int = 2, observed: int | None = 2, reason: str | None = None) -> CustomResource:
    status: dict[str, Any] = {} if observed is None else {"observedGeneration": observed}
    if reason:
        status["conditions"] = [{"type": "Degraded", "status": "True", "reason": reason, "message": "bad"}]
    return CustomResource("team", "iris", "uid-1", generation, "10", {"predictors": []}, status, "kubectl")


def view(spec: ModelDeploymentSpec = SPEC, *, deleting: bool = False, bound: bool = True) -> ControlView:
    return ControlView("team", "iris", spec, 1, ModelDeploymentStatus(), deleting, bound)


@pytest.mark.parametrize(("res", "cp", "parsed", "expected"), [
    (None, None, None, type(None)),
    (None, view(deleting=True), None, type(None)),             # being deleted: nothing left to do
    (None, view(bound=False), None, MirrorToResource),          # pier deploy, no CR yet: create it
    (None, view(bound=True), None, DeleteDeployment),           # its CR was deleted (maybe while we were down)
    (resource(observed=None), None, SPEC, ApplyToControl),      # a new CR
    (resource(observed=1), view(), SPEC, ApplyToControl),       # edited with kubectl: the CR wrote last
    (resource(observed=1), view(deleting=True), SPEC, ApplyToControl),  # re-created while deleting: retried
    (resource(), view(), SPEC, RefreshStatus),                  # in step
    (resource(), view(OTHER), SPEC, MirrorToResource),          # pier deploy wrote last
    (resource(), view(deleting=True), SPEC, DeleteResource),    # pier delete
    (resource(), None, SPEC, ApplyToControl),                   # gone from the control plane: re-created
    (resource(reason="InvalidSpec"), None, None, RefreshStatus),        # nothing to apply until fixed
    (resource(reason="InvalidSpec"), view(OTHER), None, RefreshStatus),  # an invalid edit is not overwritten
    (resource(reason="ApplyFailed"), view(OTHER), SPEC, ApplyToControl),  # retried (the model may exist now)
    (resource(reason="ApplyFailed"), None, SPEC, ApplyToControl),
])
def test_plan(res: CustomResource | None, cp: ControlView | None, parsed: ModelDeploymentSpec | None,
              expected: type) -> None:
    assert type(plan_sync(res, cp, parsed)) is expected


def test_a_failure_of_an_older_generation_does_not_count() -> None:
    assert resource(generation=3, observed=2, reason="InvalidSpec").failure is None


def test_status_of_an_invalid_spec_keeps_what_serves() -> None:
    serving = ModelDeploymentStatus.model_validate({"readyReplicas": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "ReplicasReady", "lastTransitionTime": NOW.isoformat()},
        {"type": "Degraded", "status": "False", "reason": "AsExpected", "lastTransitionTime": NOW.isoformat()}]})
    cp = ControlView("team", "iris", SPEC, 1, serving, False, True)
    status = resource_status(cp, generation=4, failure=("InvalidSpec", "spec.predictors: bad"), previous={}, now=NOW)
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert conditions == {"Ready": ("True", "ReplicasReady", ""),
                          "Degraded": ("True", "InvalidSpec", "spec.predictors: bad")}
    assert (status["observedGeneration"], status["readyReplicas"]) == (4, 2)


def test_status_of_a_cr_never_applied() -> None:
    status = resource_status(None, generation=1, failure=("ApplyFailed", "no model"), previous={}, now=NOW)
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Ready": "ApplyFailed", "Progressing": "ApplyFailed", "Degraded": "ApplyFailed"}


def test_transition_time_is_kept_while_the_condition_holds() -> None:
    first = resource_status(None, generation=1, failure=("InvalidSpec", "x"), previous={}, now=NOW)
    later = resource_status(None, generation=1, failure=("InvalidSpec", "x"), previous=first,
                            now=NOW.replace(hour=9))
    assert later == first


def test_mirror_body_replaces_by_version() -> None:
    body = resource_body(view(OTHER), resource())
    assert body["metadata"] == {"name": "iris", "namespace": "team", "resourceVersion": "10"}
    assert body["spec"]["predictors"][0]["model"] == "iris:2"
    assert "shadow" not in body["spec"]  # None fields left out: the schema has no nulls to write


def test_spec_manager_is_the_last_writer_of_the_spec() -> None:
    meta = {"managedFields": [
        {"manager": "kubectl-client-side-apply", "time": "2026-12-06T08:00:00Z", "fieldsV1": {"f:spec": {}}},
        {"manager": "modelpier-control", "time": "2026-12-06T08:05:00Z", "subresource": "status",
         "fieldsV1": {"f:status": {}}},
        {"manager": "argocd-controller", "time": "2026-12-06T08:01:00Z", "fieldsV1": {"f:spec": {}}}]}
    assert spec_manager(meta) == "argocd-controller"
    assert spec_manager({}) == "unknown"


def test_the_old_operators_finalizer_and_annotations_are_removed() -> None:
    obj = {"metadata": {"name": "iris", "finalizers": ["modelpier.io/finalizer", "example.com/keep"],
                        "annotations": {"modelpier.io/last-handled-configuration": "{}", "team": "a"}}, "spec": {}}
    cleaned = without_legacy_marks(obj)
    assert cleaned is not None
    assert cleaned["metadata"]["finalizers"] == ["example.com/keep"]
    assert cleaned["metadata"]["annotations"] == {"team": "a"}
    assert without_legacy_marks(cleaned) is None
    assert without_legacy_marks({"metadata": {"name": "iris"}}) is None
