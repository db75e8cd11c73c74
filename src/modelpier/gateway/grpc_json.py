"""V2 gRPC inference messages in the V2 JSON shape, for shadow comparison and the prediction log. Pure.

The gateway forwards gRPC messages as bytes it never needs to read, except where it compares or
records a prediction: there ``ModelInferResponse`` (and ``ModelInferRequest``, for the log) become
the dicts the V2 REST protocol uses (``outputs[].name/datatype/shape/data``), so ``compare.py`` and
``pier logs predictions`` treat both protocols alike. Tensor data comes from typed ``contents`` or
from ``raw_*_contents`` (little-endian, row-major; BYTES elements as a 4-byte length and the bytes),
flattened as V2 JSON allows. A message that does not parse, or raw contents whose size does not fit
their datatype, give None: the caller keeps the raw bytes instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

_CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_RAW_FORMAT = {
    "BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "UINT8": "B", "UINT16": "H",
    "UINT32": "I", "UINT64": "Q", "FP16": "e", "FP32": "f", "FP64": "d",
}
_LENGTH = struct.Struct("<I")


def raw_values(raw: bytes, datatype: str) -> list[Any]:
    """The elements of one tensor's raw bytes; ``ValueError`` when the bytes do not fit the datatype."""
    if datatype == "BYTES":
        out: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ValueError("raw BYTES data ends inside an element's length")
            (size,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise ValueError("a raw BYTES element runs past the end of the data")
            out.append(_text(raw[offset:offset + size]))
            offset += size
        return out
    code = _RAW_FORMAT.get(datatype)
    if code is None:
        raise ValueError(f"unknown datatype {datatype!r}")
    size = struct.calcsize(code)
    if len(raw) % size:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {datatype} elements")
    return list(struct.unpack(f"<{len(raw) // size}{code}", raw))


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def _tensors(tensors: Sequence[Any], raw: Sequence[bytes]) -> list[dict[str, Any]]:
    out = []
    for i, tensor in enumerate(tensors):
        doc: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if tensor.parameters:
            doc["parameters"] = _parameters(tensor.parameters)
        if i < len(raw):
            doc["data"] = raw_values(raw[i], tensor.datatype)
        else:
            field = _CONTENTS_FIELD.get(tensor.datatype)
            values = list(getattr(tensor.contents, field)) if field is not None else []
            doc["data"] = [_text(v) for v in values] if tensor.datatype == "BYTES" else values
        out.append(doc)
    return out


def _head(message: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"model_name": message.model_name}
    if message.model_version:
        doc["model_version"] = message.model_version
    if message.id:
        doc["id"] = message.id
    if message.parameters:
        doc["parameters"] = _parameters(message.parameters)
    return doc


def infer_response_json(data: bytes) -> dict[str, Any] | None:
    """A ``ModelInferResponse`` as V2 JSON; None when it does not parse."""
    try:
        message = pb.ModelInferResponse.FromString(data)
        return {**_head(message), "outputs": _tensors(message.outputs, message.raw_output_contents)}
    except (DecodeError, ValueError, struct.error):
        return None


def infer_request_json(data: bytes) -> dict[str, Any] | None:
    """A ``ModelInferRequest`` as V2 JSON (requested outputs by name); None when it does not parse."""
    try:
        message = pb.ModelInferRequest.FromString(data)
        doc = {**_head(message), "inputs": _tensors(message.inputs, message.raw_input_contents)}
    except (DecodeError, ValueError, struct.error):
        return None
    if message.outputs:
        doc["outputs"] = [{"name": o.name, **({"parameters": _parameters(o.parameters)} if o.parameters else {})}
                          for o in message.outputs]
    return doc
