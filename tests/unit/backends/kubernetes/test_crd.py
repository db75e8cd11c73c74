"""The CRD: generated from the spec, committed, and faithful to it (names, printer columns, schema)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from modelpier.backends.kubernetes.crd import (
    KubernetesStatus,
    crd_yaml,
    custom_resource_definition,
    from_custom_resource,
    to_custom_resource,
)
from modelpier.errors import InvalidSpec
from tests.unit.backends.kubernetes.specs import FEATURES
from tests.unit.backends.kubernetes.validation import VERSIONS, validate

ROOT = Path(__file__).resolve().parents[4]
CRD_PATH = ROOT / "deploy" / "kubernetes" / "base" / "crd.yaml"


def _generate_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pier_generate_crd", ROOT / "scripts" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_crd_matches_the_spec() -> None:
    assert CRD_PATH.read_text() == crd_yaml(), "deploy/kubernetes/base/crd.yaml is stale: run `make generate`"
    assert _generate_script().CRD_PATH == CRD_PATH


@pytest.mark.parametrize("version", VERSIONS)
def test_the_crd_itself_validates(version: str) -> None:
    validate(yaml.safe_load(CRD_PATH.read_text()), version)


def test_names_scope_and_subresources() -> None:
    crd = custom_resource_definition()
    assert crd["metadata"]["name"] == "modeldeployments.modelpier.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("ModelDeployment", "modeldeployments", ["md"])
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Replicas", "URL", "Age"]


def test_printer_columns_point_at_status_fields_that_exist() -> None:
    (version,) = custom_resource_definition()["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"readyReplicas", "url", "conditions", "observedGeneration", "predictors"} <= status.keys()
    assert status["conditions"]["items"]["properties"]["type"]["enum"] == ["Ready", "Progressing", "Degraded"]


def test_spec_schema_follows_the_pydantic_spec() -> None:
    (version,) = custom_resource_definition()["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    predictor = spec["properties"]["predictors"]["items"]
    assert spec["required"] == ["predictors"]
    assert predictor["properties"]["weight"] == {
        "type": "integer", "minimum": 0, "maximum": 100, "default": 100, "description": "Share of traffic in percent."}
    assert predictor["properties"]["image"]["nullable"] is True
    assert "followAlias" in predictor["properties"]


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_every_example_is_a_valid_custom_resource_and_round_trips(feature: str) -> None:
    document = FEATURES[feature]
    resource = to_custom_resource(document, "acme")
    validate(resource)
    back = from_custom_resource(resource)
    assert back.spec == document.spec
    assert back.metadata.name == document.metadata.name
    assert back.metadata.project == "acme"


@pytest.mark.parametrize(("path", "value"), [
    (("predictors", 0, "weight"), 101),
    (("predictors", 0, "replicas"), -1),
    (("predictors", 0, "resources", "gpu"), 17),
    (("auth",), {"mode": "open"}),
    (("predictors",), []),
])
def test_the_api_server_rejects_what_the_spec_rejects(path: tuple[Any, ...], value: Any) -> None:
    resource = to_custom_resource(FEATURES["gpu"], "acme")
    target = resource["spec"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(resource)
    with pytest.raises(InvalidSpec):
        from_custom_resource(resource)


def test_an_invalid_resource_names_the_field() -> None:
    resource = to_custom_resource(FEATURES["canary"], "acme")
    resource["spec"]["predictors"][0]["weight"] = 50
    with pytest.raises(InvalidSpec, match="weight must add up to 100"):
        from_custom_resource(resource)


def test_a_status_validates_against_the_status_schema() -> None:
    status = KubernetesStatus(ready_replicas=2, url="http://x/acme/iris/", observed_generation=3)
    resource = {**to_custom_resource(FEATURES["single"], "acme"),
                "status": status.model_dump(mode="json", by_alias=True)}
    validate(resource)


def test_unknown_fields_are_rejected_by_the_operator() -> None:
    """The API server prunes unknown fields; pydantic (extra="forbid") reports them for a CR sent around it."""
    resource = to_custom_resource(FEATURES["single"], "acme")
    resource["spec"]["predictors"][0]["replica"] = 3
    with pytest.raises(InvalidSpec, match="replica"):
        from_custom_resource(resource)
