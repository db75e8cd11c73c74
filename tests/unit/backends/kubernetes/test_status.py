"""Status from observed Deployments: conditions, replica counts, transition times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelpier.backends.kubernetes.status import (
    WorkloadObservation,
    decide_status,
    invalid_status,
    observe_workload,
    previous_conditions,
    status_document,
)
from tests.unit.backends.kubernetes.specs import FEATURES

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def obs(name: str, desired: int, ready: int, *, updated: int | None = None, current: bool = True,
        failure: str | None = None) -> WorkloadObservation:
    return WorkloadObservation(name, desired, ready, ready if updated is None else updated, current, failure)


@pytest.mark.parametrize(("observations", "ready", "progressing", "degraded"), [
    ([obs("main", 3, 3), obs("canary", 1, 1)], "True", "False", "False"),
    ([obs("main", 3, 2), obs("canary", 1, 1)], "False", "True", "False"),
    ([obs("main", 3, 3, updated=2), obs("canary", 1, 1)], "False", "True", "False"),
    ([obs("main", 3, 3, current=False), obs("canary", 1, 1)], "False", "True", "False"),
    ([obs("main", 3, 1, failure="timed out"), obs("canary", 1, 1)], "False", "True", "True"),
    ([obs("main", 0, 0), obs("canary", 0, 0)], "True", "False", "False"),
])
def test_conditions(observations: list[WorkloadObservation], ready: str, progressing: str, degraded: str) -> None:
    status = decide_status(FEATURES["canary"], observations, generation=4, url=None, now=NOW, previous=[])
    assert [(c.type, c.status) for c in status.conditions] == [
        ("Ready", ready), ("Progressing", progressing), ("Degraded", degraded)]
    assert status.observed_generation == 4
    assert status.ready_replicas == sum(o.ready for o in observations)
    assert status.desired_replicas == sum(o.desired for o in observations)


def test_per_predictor_status_and_messages() -> None:
    status = decide_status(FEATURES["canary"], [obs("main", 2, 1)], generation=1, url="http://gw/acme/iris/",
                           now=NOW, previous=[])
    assert [(p.name, p.model_version, p.ready_replicas, p.desired_replicas, p.weight) for p in status.predictors] == [
        ("main", "iris:3", 1, 2, 90), ("canary", "iris:4", 0, 0, 10)]
    ready = status.condition("Ready")
    assert ready is not None
    assert ready.message == "main: 1/2 ready"
    assert status.url == "http://gw/acme/iris/"


def test_transition_times_move_only_when_a_condition_flips() -> None:
    first = decide_status(FEATURES["single"], [obs("main", 1, 0)], generation=1, url=None, now=NOW, previous=[])
    later = NOW + timedelta(minutes=5)
    same = decide_status(FEATURES["single"], [obs("main", 1, 0)], generation=1, url=None, now=later,
                         previous=first.conditions)
    assert [c.last_transition_time for c in same.conditions] == [NOW] * 3
    flipped = decide_status(FEATURES["single"], [obs("main", 1, 1)], generation=1, url=None, now=later,
                            previous=same.conditions)
    times = {c.type: c.last_transition_time for c in flipped.conditions}
    assert times == {"Ready": later, "Progressing": later, "Degraded": NOW}


def test_observe_a_deployment_as_the_api_server_returns_it() -> None:
    deployment = {"metadata": {"generation": 3}, "spec": {"replicas": 4},
                  "status": {"observedGeneration": 3, "readyReplicas": 2, "updatedReplicas": 4, "conditions": [
                      {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}}
    assert observe_workload("main", deployment) == WorkloadObservation("main", 4, 2, 4, True, "too slow")
    assert observe_workload("main", {"metadata": {"generation": 2}, "spec": {}, "status": {}}) == \
        WorkloadObservation("main", 1, 0, 0, False)
    assert observe_workload("main", None) == WorkloadObservation("main", 0, 0, 0, False)


def test_an_invalid_spec_reports_why() -> None:
    status = invalid_status("spec.predictors: bad", generation=2, now=NOW, previous=[])
    doc = status_document(status)
    assert doc["observedGeneration"] == 2
    assert [(c["type"], c["status"], c["reason"]) for c in doc["conditions"]] == [
        ("Ready", "False", "InvalidSpec"), ("Progressing", "False", "InvalidSpec"), ("Degraded", "True", "InvalidSpec")]


def test_previous_conditions_skip_what_cannot_be_read() -> None:
    body = {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "ReplicasReady", "lastTransitionTime": "2025-01-01T00:00:00Z"},
        {"type": "Ready", "status": "Maybe"}]}}
    (condition,) = previous_conditions(body)
    assert condition.status == "True"
    assert previous_conditions({}) == []
