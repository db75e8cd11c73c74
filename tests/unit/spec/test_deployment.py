"""The ModelDeployment schema: defaults, wire names, and a matrix of invalid documents whose errors
name the field that is wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import ModelDeployment, ModelDeploymentSpec, parse_deployment, parse_deployment_spec


def doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"predictors": [{"name": "main", "model": "iris:production"}]}
    base.update(spec)
    return {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
            "spec": base}


def two_predictors(**extra: Any) -> dict[str, Any]:
    return doc(predictors=[{"name": "main", "model": "iris:1", "weight": 90},
                           {"name": "canary", "model": "iris:2", "weight": 10}], **extra)


def test_minimal_document_gets_defaults() -> None:
    d = parse_deployment(doc())
    p = d.spec.predictors[0]
    assert (d.metadata.name, d.metadata.project) == ("iris", None)
    assert (p.replicas, p.weight, p.resources.cpu, p.resources.memory, p.follow_alias) == (1, 100, "1", "1Gi", False)
    assert (d.spec.rollout.max_surge, d.spec.rollout.max_unavailable, d.spec.auth.mode) == (1, 0, "public")
    assert (p.batching.enabled, p.batching.max_batch_size, p.batching.max_latency_ms) == (True, 64, 5.0)


def test_the_architecture_example_validates_and_round_trips_by_wire_names() -> None:
    data = doc(predictors=[
        {"name": "main", "model": "iris:production", "replicas": 2, "resources": {"cpu": "500m", "memory": "1Gi"},
         "batching": {"maxBatchSize": 32, "maxLatencyMs": 5},
         "autoscaling": {"minReplicas": 1, "maxReplicas": 6, "targetInFlight": 8}, "weight": 90},
        {"name": "canary", "model": "iris:7", "weight": 10}],
        routes=[{"match": {"headers": {"x-segment": "beta"}}, "predictor": "canary"}],
        shadow={"predictor": "canary", "percent": 100}, cache={"ttlSeconds": 60, "maxEntries": 10000},
        timeouts={"requestSeconds": 30}, auth={"mode": "token"})
    data["spec"]["predictors"][1]["weight"] = 100  # canary is the shadow: main alone must carry 100
    data["spec"]["predictors"][0]["weight"] = 100
    d = parse_deployment(data)
    wire = d.model_dump(mode="json", by_alias=True)
    assert wire["spec"]["predictors"][0]["batching"]["maxBatchSize"] == 32
    assert ModelDeployment.model_validate(wire) == d


def test_a_single_predictor_document_without_metadata_project_is_valid() -> None:
    assert ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris"}]}).predictors[0].name == "main"


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    keys = path.split(".")
    target: Any = out
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return out


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("weights not 100", _set(two_predictors(), "spec.predictors.1.weight", 20), "spec", "must add up to 100"),
    ("single weight not 100", _set(doc(), "spec.predictors.0.weight", 50), "spec", "main=50"),
    ("weight above 100", _set(doc(), "spec.predictors.0.weight", 150), "spec.predictors.0.weight", "100"),
    ("unknown route predictor", two_predictors(routes=[{"match": {"headers": {"a": "b"}}, "predictor": "nope"}]),
     "spec", "routes[0].predictor 'nope'"),
    ("unknown shadow predictor", two_predictors(shadow={"predictor": "ghost"}), "spec", "shadow.predictor 'ghost'"),
    ("only the shadow serves", doc(shadow={"predictor": "main"}), "spec", "at least one must serve"),
    ("followAlias without alias", _set(doc(), "spec.predictors.0", {"model": "iris:3", "followAlias": True}),
     "spec.predictors.0", "followAlias needs a model reference with an alias"),
    ("followAlias on latest", _set(doc(), "spec.predictors.0", {"model": "iris", "followAlias": True}),
     "spec.predictors.0", "followAlias"),
    ("bad cpu", _set(doc(), "spec.predictors.0.resources", {"cpu": "lots"}), "spec.predictors.0.resources.cpu",
     "not a quantity"),
    ("bad memory", _set(doc(), "spec.predictors.0.resources", {"memory": "1GB"}),
     "spec.predictors.0.resources.memory", "not a quantity"),
    ("negative gpu", _set(doc(), "spec.predictors.0.resources", {"gpu": -1}), "spec.predictors.0.resources.gpu",
     "greater than or equal"),
    ("duplicate predictor names", doc(predictors=[{"name": "a", "model": "iris:1", "weight": 50},
                                                  {"name": "a", "model": "iris:2", "weight": 50}]),
     "spec", "must be unique, repeated: ['a']"),
    ("min above max replicas", _set(doc(), "spec.predictors.0.autoscaling", {"minReplicas": 5, "maxReplicas": 2}),
     "spec.predictors.0.autoscaling", "minReplicas (5) is above maxReplicas (2)"),
    ("rollout cannot progress", doc(rollout={"maxSurge": 0, "maxUnavailable": 0}), "spec.rollout",
     "cannot both be 0"),
    ("model and bundle", _set(doc(), "spec.predictors.0.bundle", "svc:1"), "spec.predictors.0",
     "exactly one of model or bundle"),
    ("neither model nor bundle", _set(doc(), "spec.predictors.0", {"name": "main"}), "spec.predictors.0",
     "exactly one of model or bundle"),
    ("bad model reference", _set(doc(), "spec.predictors.0.model", "Iris:1"), "spec.predictors.0.model",
     "DNS-1123"),
    ("bad predictor name", _set(doc(), "spec.predictors.0.name", "Main_1"), "spec.predictors.0.name", "DNS-1123"),
    ("no predictors", doc(predictors=[]), "spec.predictors", "at least 1"),
    ("unknown field", _set(doc(), "spec.predictors.0.replica", 2), "spec.predictors.0.replica", "not permitted"),
    ("bad deployment name", _set(doc(), "metadata.name", "Iris"), "metadata.name", "deployment name"),
    ("bad project", _set(doc(), "metadata.project", "a b"), "metadata.project", "project name"),
    ("wrong kind", _set(doc(), "kind", "Deployment"), "kind", "ModelDeployment"),
    ("bad timeout", doc(timeouts={"requestSeconds": 0}), "spec.timeouts.requestSeconds", "greater than 0"),
    ("bad auth", doc(auth={"mode": "oauth"}), "spec.auth.mode", "public"),
    ("empty outputs", _set(doc(), "spec.predictors.0.outputs", []), "spec.predictors.0.outputs", "at least 1"),
    ("bad output name", _set(doc(), "spec.predictors.0.outputs", ["pre dict"]), "spec.predictors.0.outputs",
     "not a tensor name"),
    ("output twice", _set(doc(), "spec.predictors.0.outputs", ["predict", "predict"]), "spec.predictors.0.outputs",
     "name an output twice"),
]


@pytest.mark.parametrize(("data", "field", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_documents_name_the_field(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_deployment(data)
    fields = [e["field"] for e in info.value.details["errors"]]
    assert field in fields, info.value.message
    assert fragment in info.value.message
    assert f"{field}: " in info.value.message
    assert "Value error" not in info.value.message


def test_a_document_must_be_a_mapping() -> None:
    with pytest.raises(InvalidSpec, match="must be a mapping, not list"):
        parse_deployment([1, 2])


def test_a_bare_spec_is_validated_with_the_same_messages() -> None:
    with pytest.raises(InvalidSpec, match=r"predictors\.0\.weight"):
        parse_deployment_spec({"predictors": [{"model": "iris", "weight": 101}]})


def test_default_outputs_are_optional_and_kept_in_order() -> None:
    assert parse_deployment(doc()).spec.predictors[0].outputs is None
    spec = parse_deployment(_set(doc(), "spec.predictors.0.outputs", ["predict_proba", "predict"])).spec
    assert spec.predictors[0].outputs == ("predict_proba", "predict")


@pytest.mark.parametrize(("resources", "workers", "count"), [
    ({}, None, 1),
    ({"cpu": "4"}, None, 4),
    ({"cpu": "2.5"}, None, 2),
    ({"cpu": "500m"}, None, 1),
    ({"cpu": "3000m"}, None, 3),
    ({"cpu": "4"}, 1, 1),  # an explicit count wins
])
def test_worker_processes_follow_the_whole_cores_of_a_replica(resources: dict[str, str], workers: int | None,
                                                             count: int) -> None:
    predictor: dict[str, Any] = {"name": "main", "model": "iris:1", "resources": resources}
    if workers is not None:
        predictor["workers"] = workers
    assert parse_deployment(doc(predictors=[predictor])).spec.predictors[0].worker_count == count


@pytest.mark.parametrize("metadata", [{"name": "iris", "namespace": "team"}, {"name": "iris", "project": "team"},
                                      {"name": "iris", "namespace": "team", "project": "team"}])
def test_namespace_and_project_are_one_thing(metadata: dict[str, str]) -> None:
    """The same file serves `kubectl apply` (metadata.namespace) and `pier deploy` (either)."""
    parsed = parse_deployment({"metadata": metadata, "spec": {"predictors": [{"model": "iris"}]}})
    assert (parsed.metadata.project, parsed.metadata.namespace) == ("team", None)


def test_namespace_and_project_that_differ_are_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"metadata\.namespace 'a' and metadata\.project 'b' differ"):
        parse_deployment({"metadata": {"name": "iris", "namespace": "a", "project": "b"},
                          "spec": {"predictors": [{"model": "iris"}]}})
