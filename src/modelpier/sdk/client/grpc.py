"""The client's V2 gRPC transport (``inference.GRPCInferenceService/ModelInfer``), sync and asyncio.

The only SDK module that imports grpcio (the import-linter contract lists it). Tensors go as
``raw_input_contents`` (what tritonclient sends: one buffer per input, no per-element protobuf
work); answers are read from ``raw_output_contents`` or typed contents, whichever the server used.
Through a gateway the deployment is named in the metadata ``x-pier-deployment: PROJECT/NAME``
(docs/gateway-grpc.md); the caller's deadline is the gRPC deadline, which the server honours.
Failures become modelpier errors through ``failures.grpc_error``; ``failure_kind`` tells the retry
policy whether the call certainly never reached the server.
"""

from __future__ import annotations

import math
from typing import Any

import grpc
import numpy as np

from modelpier.sdk.client import wire
from modelpier.sdk.client.retry import Failure
from modelpier.sdk.client.tensors import Array, Tensor
from modelpier.sdk.client.wire import RAW_DTYPES as _RAW
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb
from modelpier.spec.signature import numpy_dtype

METHOD = "/inference.GRPCInferenceService/ModelInfer"
_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (strings, bytes, messages, packed numbers)."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def infer_request(model: str, version: str | None, tensors: list[Tensor], *, outputs: list[str] | None,
                  request_id: str, parameters: dict[str, Any] | None = None, timeout_us: int | None = None) -> bytes:
    """The serialized ``ModelInferRequest``; ``timeout_us`` goes as V2's ``timeout`` parameter.

    Written by hand (the wire format of the few fields used: a fifth of the cost of building the
    message through protobuf, on every call); with other request parameters, through protobuf. The
    deadline travels in the message rather than as metadata: every metadata entry costs the
    channel more CPU than the whole message.
    """
    if parameters:
        merged = {**parameters, "timeout": timeout_us} if timeout_us is not None else parameters
        return _infer_request_message(model, version, tensors, outputs=outputs, request_id=request_id,
                                      parameters=merged)
    parts = [_field(1, model.encode())]
    if version:
        parts.append(_field(2, version.encode()))
    parts.append(_field(3, request_id.encode()))
    if timeout_us is not None:  # parameters["timeout"] = InferParameter(int64_param=timeout_us)
        parts.append(_field(4, _field(1, b"timeout") + _field(2, b"\x10" + _varint(timeout_us))))
    for t in tensors:
        shape = b"".join(_varint(int(d)) for d in t.array.shape)
        parts.append(_field(5, _field(1, t.name.encode()) + _field(2, t.datatype.encode()) + _field(3, shape)))
    for name in outputs or ():
        parts.append(_field(6, _field(1, name.encode())))
    for t in tensors:
        parts.append(_field(7, wire.raw_bytes(t.array)))
    return b"".join(parts)


def _infer_request_message(model: str, version: str | None, tensors: list[Tensor], *, outputs: list[str] | None,
                           request_id: str, parameters: dict[str, Any]) -> bytes:
    message = pb.ModelInferRequest(model_name=model, model_version=version or "", id=request_id)
    for t in tensors:
        entry = message.inputs.add()
        entry.name, entry.datatype = t.name, t.datatype
        entry.shape.extend(t.array.shape)
        message.raw_input_contents.append(wire.raw_bytes(t.array))
    for name in outputs or ():
        message.outputs.add().name = name
    for key, value in parameters.items():
        if isinstance(value, bool):
            message.parameters[key].bool_param = value
        elif isinstance(value, int):
            message.parameters[key].int64_param = value
        else:
            message.parameters[key].string_param = str(value)
    return bytes(message.SerializeToString())


def infer_response(data: bytes) -> tuple[dict[str, Array], str, str]:
    """Outputs by name, the model's name and version."""
    message = pb.ModelInferResponse.FromString(data)
    outputs: dict[str, Array] = {}
    raw = message.raw_output_contents
    count = len(raw)
    for i, out in enumerate(message.outputs):
        shape = list(out.shape)
        if i < count:
            datatype = out.datatype
            dtype = _RAW.get(datatype)
            data = raw[i]
            if dtype is not None and len(data) == dtype.itemsize * math.prod(shape):
                outputs[out.name] = np.frombuffer(data, dtype=dtype).reshape(shape)  # the usual case, short
            else:
                outputs[out.name] = wire.raw_array(data, datatype, shape, out.name)
        else:
            values = getattr(out.contents, _CONTENTS.get(out.datatype, "bytes_contents"))
            typed = np.dtype(object) if out.datatype == "BYTES" else numpy_dtype(out.datatype)
            outputs[out.name] = np.asarray(list(values), dtype=typed).reshape(shape)
    return outputs, message.model_name, message.model_version


def failure_kind(error: grpc.RpcError) -> tuple[Failure, str | None]:
    """How the retry policy sees a failed call, and the server's Retry-After hint if it sent one."""
    code = error.code() if hasattr(error, "code") else None
    trailing = dict(error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else {}
    retry_after = trailing.get("retry-after")
    debug = getattr(error, "debug_error_string", lambda: "")()
    text = f"{error.details() if hasattr(error, 'details') else ''} {debug}"
    if code is grpc.StatusCode.UNAVAILABLE and ("failed to connect" in text.lower()
                                               or "connection refused" in text.lower()):
        return Failure.NOT_CONNECTED, retry_after
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) and retry_after is not None:
        return Failure.REFUSED, str(retry_after)
    return Failure.OTHER, str(retry_after) if retry_after is not None else None


def describe(error: grpc.RpcError) -> tuple[str, str]:
    code = error.code() if hasattr(error, "code") else None
    return (code.name if code is not None else "UNKNOWN"), (error.details() if hasattr(error, "details") else "") or ""


def _identity(data: bytes) -> bytes:
    return data


class GrpcTransport:
    """One channel (HTTP/2, multiplexed: thread-safe) to ``target``."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target, options=_OPTIONS)
        self._infer = self._channel.unary_unary(METHOD, request_serializer=_identity,
                                                response_deserializer=_identity)

    def infer(self, request: bytes, metadata: list[tuple[str, str]], timeout_s: float, *,
              trailing: bool) -> tuple[bytes, dict[str, str]]:
        """The answer, and its trailing metadata when asked (a gateway's; a server sends none)."""
        if not trailing:
            return self._infer(request, metadata=metadata, timeout=timeout_s), {}
        response, call = self._infer.with_call(request, metadata=metadata, timeout=timeout_s)
        return response, {k: str(v) for k, v in call.trailing_metadata() or ()}

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    """The asyncio twin; made inside the running loop (grpc.aio channels belong to one loop)."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
        self._infer = self._channel.unary_unary(METHOD, request_serializer=_identity,
                                                response_deserializer=_identity)

    async def infer(self, request: bytes, metadata: list[tuple[str, str]], timeout_s: float, *,
                    trailing: bool) -> tuple[bytes, dict[str, str]]:
        call = self._infer(request, metadata=metadata, timeout=timeout_s)
        response = await call
        if not trailing:
            return response, {}
        metadata_after = await call.trailing_metadata()
        return response, {k: str(v) for k, v in metadata_after or ()}

    async def close(self) -> None:
        await self._channel.close()


RpcError = grpc.RpcError
