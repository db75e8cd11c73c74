"""Open Inference Protocol V2 over JSON: request bodies to ``InferenceRequest``, responses to bytes.

Decoding validates by hand instead of through pydantic: this is the hot path, and a hand check of a
handful of keys costs a fraction of a model validation. The documented schema lives in
``server/openapi.py``. Binary tensor data (the ``binary_data_size`` extension) is delegated to
``v2_binary``.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelpier.errors import InvalidInput
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS, ElementBudget, check_shape
from modelpier.server.codecs.tensors import dtype_of, from_list, to_list_data
from modelpier.server.types import (
    Array,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Parameters,
    RequestedOutput,
    ServerMetadata,
)

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON body: {exc}") from None


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=_DUMPS_OPTIONS)


def _parameters(value: Any, where: str) -> Parameters | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise InvalidInput(f"{where}: 'parameters' must be an object")
    return value


def parse_header(doc: Any) -> tuple[list[dict[str, Any]], InferenceRequest]:
    """The input entries (still undecoded) and the request's other fields."""
    if type(doc) is not dict:
        raise InvalidInput("the request body must be a JSON object with an 'inputs' list")
    entries = doc.get("inputs")
    if type(entries) is not list or not entries:
        raise InvalidInput("the request needs a non-empty 'inputs' list of tensors")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidInput("'id' must be a string")
    outputs = None
    wanted = doc.get("outputs")
    if wanted is not None:
        if type(wanted) is not list:
            raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
        outputs = []
        for o in wanted:
            if type(o) is not dict or type(o.get("name")) is not str:
                raise InvalidInput("each of 'outputs' must be an object with a 'name'")
            outputs.append(RequestedOutput(o["name"], _parameters(o.get("parameters"), f"output {o['name']!r}")))
    for e in entries:
        if type(e) is not dict or type(e.get("name")) is not str:
            raise InvalidInput("each of 'inputs' must be an object with a 'name', 'datatype', 'shape' and 'data'")
    request = InferenceRequest(
        inputs={}, id=request_id, parameters=_parameters(doc.get("parameters"), "request"), outputs=outputs)
    return entries, request


def decode_tensor(entry: dict[str, Any], budget: ElementBudget) -> tuple[str, Array]:
    name: str = entry["name"]
    datatype = entry.get("datatype")
    dtype = dtype_of(datatype, name)
    shape, count = check_shape(entry.get("shape"), name, budget)
    if "data" not in entry:
        raise InvalidInput(f"input {name!r} has no 'data'", details={"input": name})
    return name, from_list(entry["data"], str(datatype), dtype, shape, count=count, name=name)


def decode_request(body: bytes, max_elements: int = DEFAULT_MAX_ELEMENTS) -> InferenceRequest:
    """The request; its tensors together hold at most ``max_elements`` elements (see ``limits``)."""
    entries, request = parse_header(loads(body))
    inputs = request.inputs
    budget = ElementBudget(max_elements)
    for entry in entries:
        name, array = decode_tensor(entry, budget)
        if name in inputs:
            raise InvalidInput(f"input {name!r} appears twice", details={"input": name})
        inputs[name] = array
    return request


def response_doc(response: InferenceResponse) -> dict[str, Any]:
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = [
        {"name": o.name, "datatype": o.datatype, "shape": list(o.data.shape), "data": to_list_data(o.data)}
        for o in response.outputs
    ]
    return doc


def encode_response(response: InferenceResponse) -> bytes:
    return dumps(response_doc(response))


def encode_error(message: str) -> bytes:
    return dumps({"error": message})


def encode_server_metadata(meta: ServerMetadata) -> bytes:
    return dumps({"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)})


def encode_model_metadata(meta: ModelMetadata) -> bytes:
    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

    body: dict[str, Any] = {"name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                            "inputs": tensors(meta.inputs), "outputs": tensors(meta.outputs)}
    if meta.parameters:  # environment warnings, or a failed model's state and reason
        body["parameters"] = meta.parameters
    return dumps(body)
