"""gRPC status codes and the gateway's HTTP statuses, both ways. Pure.

The ``Dispatcher`` speaks in ``Answer``s with HTTP statuses (its counters, cache and logs do too),
so a gRPC call crosses that language twice:

* on the way in (``grpc_upstream``): a replica's own error becomes an ``Answer`` whose status is
  the HTTP equivalent of its code (``http_status_of``: INVALID_ARGUMENT → 400, RESOURCE_EXHAUSTED →
  429, ...), carrying ``grpc-status`` and ``grpc-message`` headers so the code and message survive;
* on the way out (``grpc_proxy``): ``answer_error`` turns a non-200 ``Answer`` back into a code and
  a message: the replica's own when the headers carry them, else the gateway's own refusal (the
  platform's error envelope) mapped by its error code and status (``grpc_code_of``).

Why ``limits.maxInFlight`` (``Overloaded``, 503) is RESOURCE_EXHAUSTED and not UNAVAILABLE: it is
what a replica answers when its own queue is full, so a caller sees one code for "too much load,
retry shortly" wherever the limit was hit; UNAVAILABLE stays "nothing can serve this now" (no ready
replica, every replica unreachable, the routing table not loaded yet).
"""

from __future__ import annotations

import grpc
import orjson

from modelpier.gateway.proxy import Answer, Headers

GRPC_CONTENT_TYPE = b"application/grpc"  # marks an Answer whose body is a protobuf message
STATUS_KEY = b"grpc-status"
MESSAGE_KEY = b"grpc-message"

# The HTTP status a gRPC code is counted as (google.rpc.Code's documented HTTP mapping).
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

# The gateway's own refusals: by the envelope's error code first (more precise than the status) ...
_BY_ERROR_CODE: dict[str, grpc.StatusCode] = {
    "overloaded": grpc.StatusCode.RESOURCE_EXHAUSTED,  # limits.maxInFlight (see the module docstring)
    "payload_too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "service_unavailable": grpc.StatusCode.UNAVAILABLE,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "remote_error": grpc.StatusCode.INTERNAL,  # a replica's answer the gateway cannot use: retrying won't help
}
# ... then by HTTP status.
_BY_HTTP_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    423: grpc.StatusCode.UNAVAILABLE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def http_status_of(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


def grpc_code_of(status: int, error_code: str | None = None) -> grpc.StatusCode:
    """The gRPC code for one of the gateway's own refusals (``error_answer``)."""
    if status == 200:
        return grpc.StatusCode.OK
    if error_code is not None and error_code in _BY_ERROR_CODE:
        return _BY_ERROR_CODE[error_code]
    if status in _BY_HTTP_STATUS:
        return _BY_HTTP_STATUS[status]
    return grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.UNKNOWN


def replica_error(code: grpc.StatusCode, message: str, trailing: Headers) -> Answer:
    """A replica's own error as an ``Answer``: counted by its HTTP equivalent, its code and message kept."""
    return Answer(http_status_of(code), [(b"content-type", GRPC_CONTENT_TYPE),
                                         (STATUS_KEY, str(code.value[0]).encode()),
                                         (MESSAGE_KEY, message.encode("utf-8")), *trailing], b"")


def answer_error(answer: Answer) -> tuple[grpc.StatusCode, str] | None:
    """None for a 200; else the code and message to end the call with."""
    if answer.status == 200:
        return None
    named = dict(answer.headers)
    if STATUS_KEY in named:  # the replica's own: unchanged
        number = named[STATUS_KEY]
        code = _BY_NUMBER.get(int(number)) if number.isdigit() else None
        return code or grpc.StatusCode.UNKNOWN, named.get(MESSAGE_KEY, b"").decode("utf-8", "replace")
    error_code, message = _envelope(answer.body)
    return grpc_code_of(answer.status, error_code), message or f"the gateway answered HTTP {answer.status}"


def _envelope(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` of the platform's error envelope ``{"error": {"code", "message"}}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)
    return None, error if isinstance(error, str) else None
