"""The offline validator accepts the pods the backend makes and rejects what an API server would: it is
only worth trusting if it fails."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from kubernetes_validate.utils import ValidationError as KubeValidationError

from tests.unit.backends.kubernetes.specs import FEATURES, replica_pods
from tests.unit.backends.kubernetes.validation import VERSIONS, openapi_to_json_schema, validate

Mutation = Callable[[dict[str, Any]], None]

# "long-names": a replica id (the predictor's name plus 9 characters) longer than a label value's 63
# characters: the label is shortened with a hash, the full id is an annotation.
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_the_backends_pods_validate(feature: str) -> None:
    for pod in replica_pods(FEATURES[feature]):
        for version in VERSIONS:
            validate(pod, version)


def _container_typo(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["readinesProbe"] = pod["spec"]["containers"][0].pop("readinessProbe")


def _bad_label(pod: dict[str, Any]) -> None:
    pod["metadata"]["labels"]["modelpier.io/model"] = "iris:3"


def _port_name(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"


def _long_name(pod: dict[str, Any]) -> None:
    pod["metadata"]["name"] = "x" * 254


@pytest.mark.parametrize("mutate", [_container_typo, _bad_label, _port_name, _long_name])
def test_a_broken_pod_fails_validation(mutate: Mutation) -> None:
    (pod,) = copy.deepcopy(replica_pods(FEATURES["batching"]))
    validate(pod)
    mutate(pod)
    with pytest.raises((jsonschema.ValidationError, KubeValidationError, AssertionError)):
        validate(pod)


def test_nullable_becomes_a_json_schema_null() -> None:
    converted = openapi_to_json_schema({"type": "string", "nullable": True, "enum": ["a"],
                                        "x-kubernetes-preserve-unknown-fields": True})
    assert converted == {"type": ["string", "null"], "enum": ["a", None]}
