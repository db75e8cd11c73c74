"""Try-it: a V2 inference request pre-filled from a model version's input example. Pure.

The registry stores an input example as JSON lists (a lone tensor) or a mapping of input name to
lists (``sdk.signature_inference.stored_example``); the signature names the inputs and their V2
datatypes. ``example_request`` turns both into an Open Inference Protocol body a user can edit
and send; ``parse_request`` checks an edited body before it goes to the gateway, so a typo is a
400 that names the problem rather than a request the replica refuses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelpier.errors import InvalidInput
from modelpier.spec.signature import Signature, TensorSpec

DEFAULT_INPUT = "input-0"
MAX_REQUEST_BYTES = 1024 * 1024  # a hand-edited request; bigger payloads belong in a script
# Digits a float keeps in the pre-filled body: an FP32 example stored as 5.099999904632568 reads 5.1.
_DIGITS = {"FP16": 4, "FP32": 7}


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    return [leaf for item in value for leaf in _flatten(item)]


def _guess_datatype(data: list[Any]) -> str:
    if data and all(isinstance(v, bool) for v in data):
        return "BOOL"
    if data and all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        return "INT64"
    if any(isinstance(v, str) for v in data):
        return "BYTES"
    return "FP32"


def _tensor(name: str, value: Any, spec: TensorSpec | None) -> dict[str, Any]:
    shape = _shape(value) or [1]
    data = _flatten(value)
    datatype = spec.datatype if spec is not None else _guess_datatype(data)
    digits = _DIGITS.get(datatype)
    if digits is not None:
        data = [float(f"{v:.{digits}g}") if isinstance(v, float) else v for v in data]
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _zeros(spec: TensorSpec) -> dict[str, Any]:
    shape = [1 if d == -1 else d for d in spec.shape] or [1]
    count = 1
    for d in shape:
        count *= d
    zero: Any = "" if spec.datatype == "BYTES" else False if spec.datatype == "BOOL" else 0
    return {"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": [zero] * count}


def example_request(signature: Signature | None, example: Any) -> dict[str, Any]:
    """The V2 body for ``example`` (else zeros shaped by the signature, else one placeholder input)."""
    specs = {s.name: s for s in signature.inputs} if signature is not None else {}
    if isinstance(example, Mapping) and example:
        return {"inputs": [_tensor(str(k), v, specs.get(str(k))) for k, v in example.items()]}
    if example is not None:
        first = signature.inputs[0] if signature is not None and signature.inputs else None
        return {"inputs": [_tensor(first.name if first else DEFAULT_INPUT, example, first)]}
    if specs:
        return {"inputs": [_zeros(s) for s in specs.values()]}
    return {"inputs": [{"name": DEFAULT_INPUT, "shape": [1], "datatype": "FP32", "data": [0.0]}]}


def format_request(body: Mapping[str, Any]) -> str:
    """Readable JSON with one line per tensor (``indent=2`` would put each number on its own line)."""
    parts = []
    for key, value in body.items():
        if key == "inputs" and isinstance(value, list):
            tensors = ",\n    ".join(json.dumps(t) for t in value)
            parts.append(f'  "inputs": [\n    {tensors}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}"


def parse_request(text: str) -> dict[str, Any]:
    """The edited body as JSON; ``InvalidInput`` naming what is wrong with it."""
    if len(text.encode()) > MAX_REQUEST_BYTES:
        raise InvalidInput(f"the request is over {MAX_REQUEST_BYTES} bytes; send large payloads with a script")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"the request is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidInput('the request must be a JSON object with a non-empty "inputs" list (Open Inference '
                           'Protocol V2)')
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise InvalidInput(f"inputs[{i}] must be an object with name, shape, datatype and data")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
        if missing:
            raise InvalidInput(f"inputs[{i}] is missing {', '.join(missing)}")
    return body


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def _pretty(value: Any, depth: int) -> str:
    """Indented JSON whose lists of plain values (tensor data, shapes) stay on one line."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_pretty(v, depth + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def pretty_response(content: bytes) -> str:
    """A response body for display: readable JSON when it is JSON, else the text as it came."""
    try:
        return _pretty(json.loads(content), 0)
    except ValueError:
        return content.decode("utf-8", "replace")
