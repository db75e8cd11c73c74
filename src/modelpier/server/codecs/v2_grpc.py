"""Open Inference Protocol V2 over gRPC: ``ModelInferRequest`` to ``InferenceRequest`` and back.

Tensors arrive either as ``raw_input_contents`` (what tritonclient sends: one raw buffer per input,
decoded like the binary HTTP extension) or as typed ``contents``; answers use the same form the
request used. FP16 exists only as raw bytes, the proto having no 16-bit field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS, ElementBudget, check_shape, check_value_count
from modelpier.server.codecs.tensors import dtype_of
from modelpier.server.codecs.v2_binary import array_to_raw, raw_to_array
from modelpier.server.types import (
    Array,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Parameters,
    RequestedOutput,
    ServerMetadata,
)
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _parameters(params: Any) -> Parameters | None:
    if not params:
        return None
    out: Parameters = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def _set_parameters(target: Any, params: Parameters | None) -> None:
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        else:
            target[key].string_param = str(value)


def _from_contents(tensor: Any, shape: tuple[int, ...], count: int) -> Array:
    name, datatype = tensor.name, tensor.datatype
    dtype = dtype_of(datatype, name)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(f"input {name!r}: {datatype} data must be sent in raw_input_contents",
                           details={"input": name})
    values = getattr(tensor.contents, field)
    check_value_count(name, shape, count, len(values), f"contents.{field}")
    array = np.array(values, dtype=dtype) if datatype != "BYTES" else np.array(list(values), dtype=object)
    return array.reshape(shape)


def decode_request(message: Any, max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[InferenceRequest, bool]:
    """The request and whether it used raw contents (to answer in kind); its tensors together hold at
    most ``max_elements`` elements (see ``limits``)."""
    if not message.inputs:
        raise InvalidInput("the request has no inputs")
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(message.inputs)} inputs; send one per input")
    inputs: dict[str, Array] = {}
    budget = ElementBudget(max_elements)
    for i, tensor in enumerate(message.inputs):
        name = tensor.name
        if not name:
            raise InvalidInput(f"input {i} has no name")
        shape, count = check_shape(list(tensor.shape), name, budget)
        array = raw_to_array(raw[i], tensor.datatype, shape, count, name) if raw else \
            _from_contents(tensor, shape, count)
        if name in inputs:
            raise InvalidInput(f"input {name!r} appears twice", details={"input": name})
        inputs[name] = array
    outputs = [RequestedOutput(o.name, _parameters(o.parameters)) for o in message.outputs] or None
    request = InferenceRequest(inputs=inputs, id=message.id or None,
                               parameters=_parameters(message.parameters), outputs=outputs)
    return request, bool(raw)


def encode_response(response: InferenceResponse, raw: bool) -> Any:
    message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version or "",
                                    id=response.id or "")
    _set_parameters(message.parameters, response.parameters)
    for output in response.outputs:
        tensor = message.outputs.add(name=output.name, datatype=output.datatype, shape=list(output.data.shape))
        _set_parameters(tensor.parameters, output.parameters)
        field = CONTENTS_FIELD.get(output.datatype)
        if raw or field is None:
            message.raw_output_contents.append(array_to_raw(output.data))
        elif output.datatype == "BYTES":
            getattr(tensor.contents, field).extend(
                v if isinstance(v, bytes) else str(v).encode() for v in output.data.reshape(-1))
        else:
            getattr(tensor.contents, field).extend(output.data.reshape(-1).tolist())
    if any(o.datatype not in CONTENTS_FIELD for o in response.outputs) and not raw:
        # Mixing is not allowed: once one output is raw, every output must be.
        return encode_response(response, raw=True)
    return message


def encode_server_metadata(meta: ServerMetadata) -> Any:
    return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=list(meta.extensions))


def encode_model_metadata(meta: ModelMetadata) -> Any:
    def tensors(items: Any) -> list[Any]:
        return [pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape))
                for t in items]

    return pb.ModelMetadataResponse(name=meta.name, versions=list(meta.versions), platform=meta.platform,
                                    inputs=tensors(meta.inputs), outputs=tensors(meta.outputs))
