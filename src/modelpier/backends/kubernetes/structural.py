"""Convert a pydantic JSON schema (draft 2020-12) into a Kubernetes structural OpenAPI v3 schema.

Kubernetes accepts only "structural" schemas for CRDs: every node says its ``type``, no ``$ref``,
no ``const``, ``anyOf``/``oneOf`` only as extra validation over a typed node, ``properties`` and
``additionalProperties`` never together, and ``exclusiveMinimum`` as a boolean (OpenAPI 3.0). The
conversion:

- ``$ref`` → the ``$defs`` entry, inlined (a recursive model is an error: CRDs cannot express it);
- ``anyOf: [X, {type: null}]`` (an ``X | None`` field) → X with ``nullable: true``;
- ``const`` → a one-value ``enum``; numeric ``exclusiveMinimum: n`` → ``minimum: n`` + ``true``;
- ``additionalProperties: false`` → dropped (the API server prunes unknown fields instead);
  ``additionalProperties: {schema}`` (a ``dict[str, X]``) → kept, converted;
- ``default: null`` and ``title`` → dropped; other defaults kept, so the API server fills them in;
- ``dict[str, Any]``/``Any`` (no type) → ``x-kubernetes-preserve-unknown-fields: true``, the only
  place it is used (the spec has none today).
"""

from __future__ import annotations

from typing import Any

from modelpier.errors import InvalidSpec

Schema = dict[str, Any]
_COPIED = ("description", "enum", "format", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems",
           "maxItems", "required", "minProperties", "maxProperties", "multipleOf", "uniqueItems")


class _Converter:
    def __init__(self, defs: dict[str, Schema]) -> None:
        self.defs = defs
        self.stack: list[str] = []

    def convert(self, node: Schema) -> Schema:
        if "$ref" in node:
            return self._inline(node)
        if "anyOf" in node:
            return self._any_of(node)
        out: Schema = {k: node[k] for k in _COPIED if k in node}
        if "const" in node:
            out["enum"] = [node["const"]]
        if "default" in node and node["default"] is not None:
            out["default"] = node["default"]
        if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(node["exclusiveMinimum"], bool):
            out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
        if isinstance(node.get("exclusiveMaximum"), int | float) and not isinstance(node["exclusiveMaximum"], bool):
            out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
        kind = node.get("type")
        if kind is None:
            return {**out, "x-kubernetes-preserve-unknown-fields": True}
        if not isinstance(kind, str):
            raise InvalidSpec(f"schema type {kind!r} is not structural: one type per node")
        out["type"] = kind
        if kind == "object":
            self._object(node, out)
        elif kind == "array":
            out["items"] = self.convert(node.get("items", {}))
        return out

    def _object(self, node: Schema, out: Schema) -> None:
        if "properties" in node:
            out["properties"] = {name: self.convert(prop) for name, prop in node["properties"].items()}
            return
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.convert(extra)
        elif extra is not False:
            out["x-kubernetes-preserve-unknown-fields"] = True

    def _inline(self, node: Schema) -> Schema:
        name = node["$ref"].removeprefix("#/$defs/")
        if name in self.stack:
            raise InvalidSpec(f"schema {name!r} is recursive; a CRD schema cannot express recursion")
        self.stack.append(name)
        try:
            out = self.convert(self.defs[name])
        finally:
            self.stack.pop()
        for key in ("description", "default"):  # the field's own words win over the model's
            if node.get(key) is not None:
                out[key] = node[key]
        return out

    def _any_of(self, node: Schema) -> Schema:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise InvalidSpec(f"anyOf of {len(options)} non-null schemas is not structural: {node['anyOf']}")
        out = self.convert(options[0])
        out["nullable"] = True
        out.pop("default", None)
        if node.get("description") is not None:
            out["description"] = node["description"]
        if node.get("default") is not None:
            out["default"] = node["default"]
        return out


def to_structural(schema: Schema, defs: dict[str, Schema] | None = None) -> Schema:
    """The structural form of ``schema``; ``defs`` defaults to the schema's own ``$defs``."""
    return _Converter(defs if defs is not None else schema.get("$defs", {})).convert(
        {k: v for k, v in schema.items() if k != "$defs"})
