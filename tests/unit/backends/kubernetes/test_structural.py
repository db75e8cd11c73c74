"""Pydantic JSON schema → Kubernetes structural schema, rule by rule, and on the real spec."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from modelpier.backends.kubernetes.crd import open_api_schema
from modelpier.backends.kubernetes.structural import to_structural
from modelpier.errors import InvalidSpec

_FORBIDDEN = {"$ref", "$defs", "const", "title", "allOf", "oneOf", "not"}


def structural_violations(node: Any, path: str = "") -> list[str]:
    """The rules of https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/ "structural schema"."""
    if not isinstance(node, dict):
        return []
    problems = [f"{path}: {key}" for key in _FORBIDDEN & node.keys()]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields") \
            and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties with additionalProperties")
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        problems.append(f"{path}: numeric exclusiveMinimum")
    if "anyOf" in node:
        problems.append(f"{path}: anyOf")
    if node.get("default") is None and "default" in node:
        problems.append(f"{path}: null default")
    for name, child in node.get("properties", {}).items():
        problems += structural_violations(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        problems += structural_violations(node.get(key), f"{path}[{key}]")
    return problems


def _every_node(node: Any) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    found = [node]
    for child in [*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")]:
        found += _every_node(child)
    return found


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(3, ge=1, description="how big")


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner | None = None
    mandatory: Inner
    labels: dict[str, str] = Field(default_factory=dict)
    anything: dict[str, Any] = Field(default_factory=dict)
    mode: str = Field("a", pattern="^[ab]$")
    ratio: float = Field(1.0, gt=0, lt=2)


def test_the_generated_crd_schema_is_structural() -> None:
    assert structural_violations(open_api_schema()) == []


def test_a_small_model_converts_rule_by_rule() -> None:
    schema = to_structural(Outer.model_json_schema())
    assert structural_violations(schema) == []
    props = schema["properties"]
    assert props["inner"] == {"type": "object", "nullable": True, "properties": {
        "size": {"type": "integer", "minimum": 1, "default": 3, "description": "how big"}}}
    assert props["mandatory"]["properties"]["size"]["default"] == 3
    assert "nullable" not in props["mandatory"]
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["anything"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["ratio"] == {"type": "number", "default": 1.0, "minimum": 0, "exclusiveMinimum": True,
                              "maximum": 2, "exclusiveMaximum": True}
    assert props["mode"]["pattern"] == "^[ab]$"
    assert set(schema["required"]) == {"name", "mandatory"}


def test_preserve_unknown_fields_appears_only_where_the_spec_has_free_form_data() -> None:
    flagged = [n for n in _every_node(open_api_schema()) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert flagged == [], "the spec has no dict[str, Any]; nothing should bypass pruning"


def test_const_becomes_an_enum() -> None:
    assert to_structural({"type": "string", "const": "x"}) == {"type": "string", "enum": ["x"]}


@pytest.mark.parametrize("schema", [
    {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    {"type": ["string", "integer"]},
    {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
     "$ref": "#/$defs/Node"},
])
def test_what_a_crd_cannot_express_is_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec):
        to_structural(schema)
