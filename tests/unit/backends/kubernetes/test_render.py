"""``render``: every spec feature, both routing kinds, several Kubernetes versions, schema-valid."""

from __future__ import annotations

import pytest

from modelpier.backends.kubernetes.options import OwnerRef, RenderOptions, RoutingKind
from modelpier.backends.kubernetes.render import namespace_of, render, to_yaml
from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import ModelDeployment
from tests.unit.backends.kubernetes.specs import FEATURES, document
from tests.unit.backends.kubernetes.validation import VERSIONS, validate

ROUTINGS: tuple[RoutingKind, ...] = ("gateway-api", "istio")
OWNER = OwnerRef(name="iris", uid="0b5e7c1e-4d3c-4a55-9e4f-1d2b3c4d5e6f")


def kinds(objects: list[dict[str, object]]) -> list[str]:
    return [str(o["kind"]) for o in objects]


@pytest.mark.parametrize("routing", ROUTINGS)
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_every_object_validates_against_the_schemas(feature: str, routing: RoutingKind) -> None:
    for version in VERSIONS:
        options = RenderOptions(routing=routing, kubernetes_version=version, owner=OWNER,
                                hostnames=("models.example.com",))
        for obj in render(FEATURES[feature], options):
            validate(obj, version)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_rendering_is_deterministic_and_byte_identical(feature: str) -> None:
    options = RenderOptions(owner=OWNER)
    first = to_yaml(render(FEATURES[feature], options))
    reparsed = ModelDeployment.model_validate(FEATURES[feature].model_dump(by_alias=True))
    assert to_yaml(render(reparsed, options)) == first
    assert to_yaml(render(FEATURES[feature], options)) == first
    assert "&id" not in first, "no YAML anchors: people read these manifests"


@pytest.mark.parametrize(("feature", "expected"), [
    ("single", ["Deployment", "Service", "HTTPRoute"]),
    ("replicas", ["Deployment", "Service", "PodDisruptionBudget", "HTTPRoute"]),
    ("zero-replicas", ["Deployment", "Service", "HTTPRoute"]),
    ("autoscaling", ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "HTTPRoute"]),
    ("scale-to-zero", ["Deployment", "Service", "HorizontalPodAutoscaler", "HTTPRoute"]),
    ("canary", ["Deployment", "Service", "Deployment", "Service", "HTTPRoute"]),
    ("shadow-partial", ["Deployment", "Service"] * 3 + ["HTTPRoute"]),
])
def test_objects_per_feature_in_a_stable_order(feature: str, expected: list[str]) -> None:
    assert kinds(render(FEATURES[feature], RenderOptions())) == expected


def test_istio_replaces_the_http_route() -> None:
    assert kinds(render(FEATURES["canary"], RenderOptions(routing="istio")))[-1] == "VirtualService"


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_every_object_is_labelled_namespaced_and_owned(feature: str) -> None:
    doc = FEATURES[feature]
    for obj in render(doc, RenderOptions(owner=OWNER)):
        meta = obj["metadata"]
        assert meta["namespace"] == (doc.metadata.project or "default")
        assert meta["labels"]["app.kubernetes.io/instance"] == doc.metadata.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelpier-operator"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "modelpier"
        assert meta["ownerReferences"] == [{
            "apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "name": "iris", "uid": OWNER.uid,
            "controller": True, "blockOwnerDeletion": True}]


def test_without_an_owner_there_are_no_owner_references() -> None:
    assert all("ownerReferences" not in o["metadata"] for o in render(FEATURES["canary"], RenderOptions()))


@pytest.mark.parametrize(("option", "project", "expected"), [
    (None, "acme", "acme"), (None, None, "default"), ("team-a", "acme", "team-a")])
def test_the_namespace_is_the_project(option: str | None, project: str | None, expected: str) -> None:
    doc = document([{"model": "iris:1"}], project=project)
    assert namespace_of(doc, RenderOptions(namespace=option)) == expected


def test_the_public_path_keeps_the_project_when_the_namespace_differs() -> None:
    route = render(FEATURES["single"], RenderOptions(namespace="team-a"))[-1]
    assert route["metadata"]["namespace"] == "team-a"
    assert route["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/acme/iris"


def test_a_bundle_needs_an_image_on_kubernetes() -> None:
    doc = document([{"name": "svc", "bundle": "fraud:3"}])
    with pytest.raises(InvalidSpec, match=r"bundle .* image"):
        render(doc, RenderOptions())


@pytest.mark.parametrize("version", ["1.22", "v1.10.3", "latest", "1"])
def test_too_old_or_unreadable_kubernetes_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidSpec, match="Kubernetes"):
        render(FEATURES["single"], RenderOptions(kubernetes_version=version))


def test_rendering_does_not_share_mutable_objects_between_rules() -> None:
    objects = render(FEATURES["header-route"], RenderOptions())
    rules = objects[-1]["spec"]["rules"]
    rules[0]["matches"][0]["path"]["value"] = "/changed"
    assert rules[1]["matches"][0]["path"]["value"] == "/acme/iris"
