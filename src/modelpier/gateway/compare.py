"""Shadow comparison: do the primary's and the shadow's answers to the same request agree? Pure.

Outputs are read from the three JSON protocols the replicas speak: V2 (``outputs[].data`` with a
datatype), KServe V1 (``predictions``) and Seldon (``data.ndarray`` / ``data.tensor.values`` /
``jsonData``), and from V2 gRPC (``ModelInferResponse``, decoded to the V2 JSON shape by
``grpc_json``). Class-like outputs (integers, booleans, strings: labels) are compared for equality:
the pair agrees when every such value is equal. When there are none, float outputs are compared by
their mean absolute difference. Anything else (an error body, binary tensors, different shapes of
floats) is not comparable and returns None, so it never counts as agreement or disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelpier.gateway.grpc_json import infer_response_json

_CLASS_TYPES = frozenset({"BOOL", "BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


@dataclass(frozen=True, slots=True)
class Comparison:
    kind: str  # "class" or "numeric"
    agreed: bool = False  # class: every label equal
    abs_error: float = 0.0  # numeric: mean absolute difference


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(_flatten(item))
        return out
    return [value]


def _is_class(values: list[Any]) -> bool:
    return all(isinstance(v, (bool, int, str)) and not isinstance(v, float) for v in values)


def _outputs(doc: Any) -> dict[str, tuple[bool, list[Any]]] | None:
    """name → (class-like, flat values); None when the body is no prediction we know."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("outputs"), list):  # Open Inference Protocol V2
        found: dict[str, tuple[bool, list[Any]]] = {}
        for out in doc["outputs"]:
            if isinstance(out, dict) and "data" in out:
                values = _flatten(out["data"])
                found[str(out.get("name"))] = (str(out.get("datatype", "")).upper() in _CLASS_TYPES, values)
        return found or None
    if "predictions" in doc:  # KServe V1
        values = _flatten(doc["predictions"])
        return {"predictions": (_is_class(values), values)}
    data = doc.get("data")
    if isinstance(data, dict):  # Seldon v1
        tensor = data.get("tensor")
        raw = data.get("ndarray", tensor.get("values") if isinstance(tensor, dict) else None)
        if raw is not None:
            values = _flatten(raw)
            return {"data": (_is_class(values), values)}
    if "jsonData" in doc:
        values = _flatten(doc["jsonData"])
        return {"jsonData": (_is_class(values), values)}
    return None


def compare_answers(primary: bytes, shadow: bytes, *, protocol: str = "http") -> Comparison | None:
    """Compare two answer bodies: JSON for ``http``, ``ModelInferResponse`` messages for ``grpc``."""
    if protocol == "grpc":
        a, b = _outputs(infer_response_json(primary)), _outputs(infer_response_json(shadow))
    else:
        try:
            a, b = _outputs(orjson.loads(primary)), _outputs(orjson.loads(shadow))
        except orjson.JSONDecodeError:
            return None
    if a is None or b is None:
        return None
    shared = [name for name in a if name in b]
    classes = [n for n in shared if a[n][0] and b[n][0]]
    if classes:
        return Comparison("class", agreed=all(a[n][1] == b[n][1] for n in classes))
    return _numeric(a, b, shared)


def _numeric(a: dict[str, tuple[bool, list[Any]]], b: dict[str, tuple[bool, list[Any]]],
             shared: list[str]) -> Comparison | None:
    diffs: list[float] = []
    for name in shared:
        left, right = a[name][1], b[name][1]
        if len(left) != len(right):
            return None
        try:
            diffs.extend(abs(float(x) - float(y)) for x, y in zip(left, right, strict=True))
        except (TypeError, ValueError):
            return None
    if not diffs:
        return None
    return Comparison("numeric", abs_error=sum(diffs) / len(diffs))
