"""Validate installed objects and the backend's pods against schemas, the way an API server would (offline).

Built-in kinds: ``kubernetes-validate`` with the official schemas of a stated Kubernetes version,
strict (unknown fields fail). Custom kinds: our generated CRD for ModelDeployment and the vendored
subsets in ``schemas/`` for PodMonitor and ServiceMonitor (see their README). Labels and names are
checked against Kubernetes' syntax on every object (kubernetes-validate does not check them).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from modelpier.backends.kubernetes.crd import custom_resource_definition

SCHEMAS = Path(__file__).parent / "schemas"
VERSIONS = ("1.25", "1.27", "1.30", "1.33")
CUSTOM = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.yaml",
}
_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 (``nullable``, boolean ``exclusiveMinimum``) → JSON schema draft 4 for ``jsonschema``."""
    if isinstance(node, list):
        return [openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_json_schema(v) for k, v in node.items()
           if k != "nullable" and not k.startswith("x-kubernetes-")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@cache
def _custom_schema(api_version: str, kind: str) -> dict[str, Any]:
    if (api_version, kind) == ("modelpier.io/v1alpha1", "ModelDeployment"):
        raw = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    else:
        raw = yaml.safe_load((SCHEMAS / CUSTOM[(api_version, kind)]).read_text())
    schema: dict[str, Any] = openapi_to_json_schema(raw)
    return schema


def is_custom(obj: dict[str, Any]) -> bool:
    key = (obj["apiVersion"], obj["kind"])
    return key in CUSTOM or key == ("modelpier.io/v1alpha1", "ModelDeployment")


def check_metadata(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    assert _DNS_SUBDOMAIN.match(meta["name"]), meta["name"]
    assert len(meta["name"]) <= 253, meta["name"]
    if obj["kind"] == "Service":
        assert len(meta["name"]) <= 63, f"Service name {meta['name']} is longer than 63"
        assert meta["name"][0].isalpha(), f"Service name {meta['name']} does not start with a letter (DNS-1035)"
    for key, value in {**meta.get("labels", {}), **_selector_labels(obj)}.items():
        assert _LABEL_NAME.match(key), f"label name {key!r}"
        assert _LABEL_VALUE.match(value), f"label {key}={value!r}"
        assert len(value) <= 63, f"label {key}={value!r}"


def _selector_labels(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if isinstance(selector, dict):
        labels: dict[str, str] = selector.get("matchLabels", selector)
        return {k: v for k, v in labels.items() if isinstance(v, str)}
    return {}


def validate(obj: dict[str, Any], version: str = "1.30") -> None:
    """Raise (``jsonschema.ValidationError`` or ``AssertionError``) unless ``obj`` is valid."""
    check_metadata(obj)
    if is_custom(obj):
        jsonschema.Draft4Validator(_custom_schema(obj["apiVersion"], obj["kind"])).validate(obj)
        return
    kubernetes_validate.validate(obj, version, strict=True)
