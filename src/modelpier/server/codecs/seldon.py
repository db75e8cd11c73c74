"""Seldon Core v1 prediction messages (``/api/v1.0/predictions``).

In: ``{"data": {"ndarray": [...]}}``, ``{"data": {"tensor": {"shape": [...], "values": [...]}}}``
(``data.names`` are column names, accepted and ignored) or ``{"jsonData": {input: value, ...}}``.
Out: the same representation, carrying the model's first output, with ``names`` for its columns and
``meta.requestPath`` naming the model. Errors use Seldon's ``status`` object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpier.errors import InvalidInput, PierError, seldon_error
from modelpier.server.codecs.limits import (
    DEFAULT_MAX_ELEMENTS,
    ElementBudget,
    check_decoded,
    check_shape,
    check_value_count,
)
from modelpier.server.codecs.tensors import to_list_data
from modelpier.server.codecs.v2_json import dumps, loads
from modelpier.server.types import Array, InferenceRequest, InferenceResponse

KINDS = ("ndarray", "tensor", "jsonData")


def _array(value: Any, what: str, budget: ElementBudget) -> Array:
    # Sized by the values sent (the body limit bounds them); the request's element budget still holds.
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"{what} is ragged or of mixed types; every row needs the same shape") from None
    check_decoded(what, array.shape, budget)
    return array.astype(object) if array.dtype.kind == "U" else array


def decode_request(body: bytes, input_names: list[str], max_elements: int = DEFAULT_MAX_ELEMENTS
                   ) -> tuple[InferenceRequest, str, dict[str, Any]]:
    """The request, the representation used (to answer in kind), and the request's ``meta``; its
    tensors together hold at most ``max_elements`` elements."""
    doc = loads(body)
    budget = ElementBudget(max_elements)
    if type(doc) is not dict:
        raise InvalidInput("the request body must be a JSON object with 'data' or 'jsonData'")
    meta: dict[str, Any] = doc["meta"] if type(doc.get("meta")) is dict else {}
    first = input_names[0] if input_names else "input-0"
    if "jsonData" in doc:
        payload = doc["jsonData"]
        if type(payload) is dict and payload and all(k in input_names for k in payload):
            inputs = {k: _array(v, f"jsonData.{k}", budget) for k, v in payload.items()}
        elif len(input_names) <= 1:
            inputs = {first: _array(payload, "jsonData", budget)}
        else:
            raise InvalidInput(f"jsonData must be an object with the model's inputs {input_names}")
        return InferenceRequest(inputs=inputs), "jsonData", meta
    data = doc.get("data")
    if type(data) is not dict:
        raise InvalidInput("the request needs 'data' with 'ndarray' or 'tensor', or 'jsonData' "
                           "(strData and binData are not supported)")
    if "ndarray" in data:
        return InferenceRequest(inputs={first: _array(data["ndarray"], "data.ndarray", budget)}), "ndarray", meta
    tensor = data.get("tensor")
    if type(tensor) is dict:
        shape, values = tensor.get("shape"), tensor.get("values")
        if type(shape) is not list or type(values) is not list:
            raise InvalidInput("data.tensor needs 'shape' (list of ints) and 'values' (flat list)")
        dims, count = check_shape(shape, "data.tensor", budget)  # before the values become an array
        check_value_count("data.tensor", dims, count, len(values), "'values'")
        array = _array(values, "data.tensor.values", ElementBudget(budget.limit))
        if array.size != count:  # nested values: flat is what the format says
            raise InvalidInput(f"data.tensor: 'values' must be a flat list of {count} numbers")
        array = array.reshape(dims)
        return InferenceRequest(inputs={first: array}), "tensor", meta
    raise InvalidInput("data needs 'ndarray' or 'tensor' (strData and binData are not supported)")


def _names(name: str, data: Array) -> list[str]:
    if data.ndim == 2 and data.shape[1] > 1:
        return [f"{name}:{i}" for i in range(data.shape[1])]
    return [name]


def encode_response(response: InferenceResponse, kind: str, meta: dict[str, Any]) -> bytes:
    out_meta: dict[str, Any] = {"requestPath": {response.model_name: response.model_version or ""}}
    if "puid" in meta:
        out_meta["puid"] = meta["puid"]
    if kind == "jsonData":
        payload = {o.name: o.data.tolist() for o in response.outputs}
        return dumps({"jsonData": payload, "meta": out_meta})
    first = response.outputs[0]
    data = first.data
    if kind == "tensor":
        body: dict[str, Any] = {"shape": list(data.shape), "values": to_list_data(data)}
        return dumps({"data": {"names": _names(first.name, data), "tensor": body}, "meta": out_meta})
    ndarray = to_list_data(data).reshape(data.shape) if data.dtype.kind in "biuf" else data.tolist()
    return dumps({"data": {"names": _names(first.name, data), "ndarray": ndarray}, "meta": out_meta})


def encode_error(error: PierError) -> bytes:
    """Seldon's ``status`` object, as the error tree maps ``error`` (``errors.seldon_error``)."""
    return dumps(seldon_error(error))
