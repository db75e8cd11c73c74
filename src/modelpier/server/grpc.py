"""The gRPC transport: ``inference.GRPCInferenceService`` of the V2 spec, on its own port.

Methods are registered by hand with an identity deserializer, so a malformed protobuf reaches our
code and becomes INVALID_ARGUMENT with a message (gRPC's own deserialization failure would be an
opaque INTERNAL). Errors map to status codes by the error tree's one map (``errors.py``): invalid
input → INVALID_ARGUMENT, unknown model → NOT_FOUND, full queue or over max_request_elements →
RESOURCE_EXHAUSTED, timeout → DEADLINE_EXCEEDED, loading → UNAVAILABLE, a model being loaded already
→ ABORTED, anything outside the tree → INTERNAL with an error id. Runs on the same event loop as the
HTTP server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from modelpier.errors import InvalidInput, grpc_code
from modelpier.server.codecs import v2_grpc
from modelpier.server.dataplane import DataPlane
from modelpier.server.deadlines import header_timeout_s
from modelpier.server.failures import as_pier_error
from modelpier.server.metrics import ServerMetrics
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

log = logging.getLogger(__name__)

UNKNOWN_MODEL = "_unknown"
SERVICE = "inference.GRPCInferenceService"


def abort_status(exc: Exception) -> tuple[grpc.StatusCode, str, str]:
    """Status code (the error tree's, ``errors.grpc_code``), metrics status and message for an error."""
    error = as_pier_error(exc)  # logs unexpected errors with their id
    return grpc.StatusCode[grpc_code(error)], error.code, error.message


def _parse(message_type: Any, data: bytes) -> Any:
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise InvalidInput(f"malformed {message_type.DESCRIPTOR.name} protobuf: {exc}") from None


def _caller_timeout_s(context: Any) -> float | None:
    asked: float | None = context.time_remaining()
    for key, value in context.invocation_metadata() or ():
        if key == "x-pier-timeout-ms":
            header = header_timeout_s(value.encode("latin-1") if isinstance(value, str) else value)
            asked = header if asked is None else min(asked, header or asked)
    return asked


class InferenceServicer:
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, max_request_elements: int) -> None:
        self._dp = dataplane
        self._metrics = metrics
        self._max_elements = max_request_elements

    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, Callable[[bytes, Any], Awaitable[Any]]] = {
            "ServerLive": self.server_live, "ServerReady": self.server_ready, "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata, "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(fn, response_serializer=lambda m: m.SerializeToString())
            for name, fn in methods.items()
        })

    async def _unary(self, context: Any, message_type: Any, data: bytes, answer: Callable[[Any], Any]) -> Any:
        try:
            return answer(_parse(message_type, data))
        except Exception as exc:
            code, _, message = abort_status(exc)
        await context.abort(code, message)  # raises: the RPC ends here
        return None

    async def server_live(self, data: bytes, context: Any) -> Any:
        return await self._unary(context, pb.ServerLiveRequest, data,
                                 lambda _: pb.ServerLiveResponse(live=self._dp.live()))

    async def server_ready(self, data: bytes, context: Any) -> Any:
        return await self._unary(context, pb.ServerReadyRequest, data,
                                 lambda _: pb.ServerReadyResponse(ready=self._dp.ready()))

    async def server_metadata(self, data: bytes, context: Any) -> Any:
        return await self._unary(context, pb.ServerMetadataRequest, data,
                                 lambda _: v2_grpc.encode_server_metadata(self._dp.server_metadata()))

    async def model_ready(self, data: bytes, context: Any) -> Any:
        return await self._unary(context, pb.ModelReadyRequest, data, lambda r: pb.ModelReadyResponse(
            ready=self._dp.model_ready(r.name, r.version or None)))

    async def model_metadata(self, data: bytes, context: Any) -> Any:
        return await self._unary(context, pb.ModelMetadataRequest, data, lambda r: v2_grpc.encode_model_metadata(
            self._dp.model_metadata(r.name, r.version or None)))

    async def model_infer(self, data: bytes, context: Any) -> Any:
        started = time.perf_counter()
        name = UNKNOWN_MODEL
        status = "ok"
        try:
            message = _parse(pb.ModelInferRequest, data)
            if message.model_name in self._dp.repository.names:
                name = message.model_name
            request, raw = v2_grpc.decode_request(message, self._max_elements)
            # The caller's gRPC deadline (or x-pier-timeout-ms metadata, or V2's timeout parameter) bounds
            # the prediction, so the model's answer is not computed for nobody.
            response = await self._dp.infer(message.model_name, message.model_version or None, request,
                                            _caller_timeout_s(context))
            return v2_grpc.encode_response(response, raw)
        except Exception as exc:
            code, status, text = abort_status(exc)
        finally:
            self._metrics.request(name, "v2-grpc", status, time.perf_counter() - started)
        await context.abort(code, text)
        return None


class GrpcServer:
    """A ``grpc.aio`` server hosting the inference service on ``host:port``."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, host: str, port: int, *,
                 max_message_bytes: int, max_request_elements: int) -> None:
        self._servicer = InferenceServicer(dataplane, metrics, max_request_elements)
        self._address = f"{host}:{port}"
        self._max_message_bytes = max_message_bytes
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> int:
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", self._max_message_bytes),
            ("grpc.max_send_message_length", -1),
            # Several worker processes share the port (the kernel spreads connections).
            ("grpc.so_reuseport", 1),
        ])
        server.add_generic_rpc_handlers((self._servicer.handler(),))
        port = int(server.add_insecure_port(self._address))
        await server.start()
        self._server = server
        self.port = port
        return port

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
