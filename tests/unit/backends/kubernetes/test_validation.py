"""The offline validator rejects what an API server would: it is only worth trusting if it fails."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from kubernetes_validate.utils import ValidationError as KubeValidationError

from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.render import render
from tests.unit.backends.kubernetes.specs import FEATURES
from tests.unit.backends.kubernetes.validation import openapi_to_json_schema, validate

Mutation = Callable[[list[dict[str, Any]]], dict[str, Any]]


def _deployment_typo(objs: list[dict[str, Any]]) -> dict[str, Any]:
    objs[0]["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    return objs[0]


def _bad_label(objs: list[dict[str, Any]]) -> dict[str, Any]:
    objs[0]["metadata"]["labels"]["modelpier.io/model"] = "iris:3"
    return objs[0]


def _route_field(objs: list[dict[str, Any]]) -> dict[str, Any]:
    objs[-1]["spec"]["rules"][0]["backendRef"] = objs[-1]["spec"]["rules"][0].pop("backendRefs")
    return objs[-1]


def _route_duration(objs: list[dict[str, Any]]) -> dict[str, Any]:
    objs[-1]["spec"]["rules"][0]["timeouts"]["request"] = "2.5s"
    return objs[-1]


def _mirror_without_field(objs: list[dict[str, Any]]) -> dict[str, Any]:
    objs[-1]["spec"]["rules"][0]["filters"][0]["type"] = "RequestMirror"
    return objs[-1]


def _hpa_quantity(objs: list[dict[str, Any]]) -> dict[str, Any]:
    hpa = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")
    hpa["spec"]["minReplicas"] = "two"
    return hpa


@pytest.mark.parametrize("mutate", [_deployment_typo, _bad_label, _route_field, _route_duration,
                                    _mirror_without_field, _hpa_quantity])
def test_a_broken_object_fails_validation(mutate: Mutation) -> None:
    objects = copy.deepcopy(render(FEATURES["autoscaling"], RenderOptions()))
    with pytest.raises((jsonschema.ValidationError, KubeValidationError, AssertionError)):
        validate(mutate(objects))


def test_istio_misspelling_fails() -> None:
    route = render(FEATURES["canary"], RenderOptions(routing="istio"))[-1]
    route["spec"]["http"][0]["mirror_percentage"] = {"value": 5}
    with pytest.raises(jsonschema.ValidationError):
        validate(route)


def test_nullable_becomes_a_json_schema_null() -> None:
    converted = openapi_to_json_schema({"type": "string", "nullable": True, "enum": ["a"],
                                        "x-kubernetes-preserve-unknown-fields": True})
    assert converted == {"type": ["string", "null"], "enum": ["a", None]}
