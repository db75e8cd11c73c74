"""The operator's logic on real spec objects against an in-memory cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.reconcile import ObjectKey, plan_prune, reconcile
from tests.unit.backends.kubernetes.fakes import FakeCluster, custom_resource

NOW = datetime(2025, 1, 1, tzinfo=UTC)
OPTIONS = RenderOptions(public_url="https://models.example.com/")
CANARY = {"predictors": [{"name": "main", "model": "iris:3", "weight": 90, "replicas": 2},
                         {"name": "canary", "model": "iris:4", "weight": 10}]}


def keys(cluster: FakeCluster) -> set[tuple[str, str]]:
    return {(k.kind, k.name) for k in cluster.objects}


def test_create_applies_every_object_owned_by_the_resource() -> None:
    cluster = FakeCluster()
    outcome = reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    assert keys(cluster) == {("Deployment", "iris-main"), ("Service", "iris-main"),
                             ("PodDisruptionBudget", "iris-main"), ("Deployment", "iris-canary"),
                             ("Service", "iris-canary"), ("HTTPRoute", "iris")}
    for obj in cluster.objects.values():
        assert obj["metadata"]["namespace"] == "acme"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-iris"
    assert outcome.deleted == ()
    assert outcome.status["observedGeneration"] == 1
    assert outcome.status["url"] == "https://models.example.com/acme/iris/"
    ready = outcome.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "ReplicasNotReady")


def test_status_turns_ready_once_the_deployments_roll_out() -> None:
    cluster = FakeCluster()
    body = custom_resource(CANARY)
    first = reconcile(body, cluster, OPTIONS, now=NOW)
    cluster.roll_out("acme", "iris-main")
    cluster.roll_out("acme", "iris-canary")
    second = reconcile({**body, "status": first.status}, cluster, OPTIONS, now=NOW)
    assert second.status["readyReplicas"] == 3
    assert [(c["type"], c["status"]) for c in second.status["conditions"]] == [
        ("Ready", "True"), ("Progressing", "False"), ("Degraded", "False")]
    assert [p["readyReplicas"] for p in second.status["predictors"]] == [2, 1]


def test_a_stalled_rollout_is_degraded() -> None:
    cluster = FakeCluster()
    reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    cluster.roll_out("acme", "iris-main", ready=1, stalled=True)
    outcome = reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    degraded = outcome.status["conditions"][2]
    assert (degraded["status"], degraded["reason"]) == ("True", "RolloutFailed")
    assert "timed out" in degraded["message"]


def test_reconcile_is_idempotent() -> None:
    cluster = FakeCluster()
    body = custom_resource(CANARY)
    reconcile(body, cluster, OPTIONS, now=NOW)
    before = {k: dict(v) for k, v in cluster.objects.items()}
    again = reconcile(body, cluster, OPTIONS, now=NOW)
    assert cluster.objects == before  # same objects, same generations: nothing changed
    assert again.deleted == ()


def test_an_update_prunes_what_is_no_longer_rendered() -> None:
    cluster = FakeCluster()
    reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    promoted = {"predictors": [{"name": "main", "model": "iris:4", "autoscaling": {"minReplicas": 1}}]}
    outcome = reconcile(custom_resource(promoted, generation=2), cluster, OPTIONS, now=NOW)
    assert keys(cluster) == {("Deployment", "iris-main"), ("Service", "iris-main"),
                             ("HorizontalPodAutoscaler", "iris-main"), ("HTTPRoute", "iris")}
    assert {(k.kind, k.name) for k in outcome.deleted} == {
        ("Deployment", "iris-canary"), ("Service", "iris-canary"), ("PodDisruptionBudget", "iris-main")}
    main = cluster.objects[ObjectKey("apps/v1", "Deployment", "acme", "iris-main")]
    assert main["spec"]["template"]["metadata"]["annotations"]["modelpier.io/model"] == "iris:4"
    assert outcome.status["observedGeneration"] == 2


def test_switching_routing_kind_replaces_the_route() -> None:
    cluster = FakeCluster()
    reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    reconcile(custom_resource(CANARY), cluster, RenderOptions(routing="istio"), now=NOW)
    assert ("VirtualService", "iris") in keys(cluster)
    assert ("HTTPRoute", "iris") not in keys(cluster)


def test_objects_of_other_deployments_and_other_managers_are_left_alone() -> None:
    cluster = FakeCluster()
    reconcile(custom_resource(CANARY), cluster, OPTIONS, now=NOW)
    reconcile(custom_resource(CANARY, name="wine"), cluster, OPTIONS, now=NOW)
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "iris-extra", "namespace": "acme", "labels": {"modelpier.io/deployment": "iris"}}, "spec": {}}
    cluster.apply(foreign)
    reconcile(custom_resource({"predictors": [{"model": "iris:3"}]}), cluster, OPTIONS, now=NOW)
    assert ("Deployment", "wine-main") in keys(cluster)
    assert ("Service", "iris-extra") in keys(cluster)


def test_an_invalid_spec_changes_nothing_and_says_why() -> None:
    cluster = FakeCluster()
    bad = {"predictors": [{"name": "main", "model": "iris:3", "weight": 60}]}
    outcome = reconcile(custom_resource(bad, generation=5), cluster, OPTIONS, now=NOW)
    assert cluster.applies == []
    ready = outcome.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "weight must add up to 100" in ready["message"]
    assert outcome.status["observedGeneration"] == 5


def test_a_bundle_without_image_is_reported_not_applied() -> None:
    cluster = FakeCluster()
    outcome = reconcile(custom_resource({"predictors": [{"bundle": "fraud:3"}]}), cluster, OPTIONS, now=NOW)
    assert cluster.applies == []
    assert "image" in outcome.status["conditions"][0]["message"]


def test_plan_prune_is_sorted_set_difference() -> None:
    a, b, c = (ObjectKey("v1", "Service", "ns", n) for n in "abc")
    assert plan_prune([c, a, b], [b]) == [a, c]
    assert plan_prune([], [a]) == []
