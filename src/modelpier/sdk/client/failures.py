"""A failed call as a modelpier error: the server's own message, its status and the request id.

One map for every transport the client uses. HTTP: the status picks the class (the platform's
envelope ``{"error": {"code": ...}}`` picks a finer one when present) and the message is the
server's, whichever shape it used (V2 and KServe V1 ``{"error": "..."}``, the platform's envelope,
Seldon's ``{"status": {"info": ...}}``). gRPC: the status code picks the class. Every error's
``details`` carry ``request_id`` (sent by the client, so known even when no answer came) and, for
HTTP, ``status``; the message ends with the request id, so a log line is enough to find the call
in the server's logs.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelpier.errors import (
    ERROR_HTTP_STATUS,
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PierError,
    RemoteError,
    RemoteUnreachable,
    ServiceUnavailable,
    Unauthenticated,
)

_BY_STATUS: dict[int, type[PierError]] = {
    400: InvalidInput, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    422: InvalidInput, 429: Overloaded, 503: ServiceUnavailable, 504: DeadlineExceeded,
}
_BY_CODE = {cls.code: cls for cls in ERROR_HTTP_STATUS}

# gRPC status code names (``grpc.StatusCode.X.name``) to classes; kept as names so this module
# needs no grpc import.
_BY_GRPC: dict[str, type[PierError]] = {
    "INVALID_ARGUMENT": InvalidInput, "NOT_FOUND": NotFound, "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": Forbidden, "ALREADY_EXISTS": AlreadyExists, "FAILED_PRECONDITION": Conflict,
    "ABORTED": Conflict,  # what a server answers for a Conflict (errors.Conflict.wire)
    "RESOURCE_EXHAUSTED": Overloaded, "UNAVAILABLE": ServiceUnavailable, "DEADLINE_EXCEEDED": DeadlineExceeded,
    "OUT_OF_RANGE": InvalidInput,
}


def server_message(body: bytes) -> tuple[str | None, str | None]:
    """The server's message and, in the platform's envelope, its error code."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or None), None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, str):
            return error, None
        if isinstance(error, dict):
            return str(error.get("message", "")) or None, str(error.get("code", "")) or None
        status = doc.get("status")
        if isinstance(status, dict) and status.get("info"):
            return str(status["info"]), None
    return None, None


def _build(cls: type[PierError], message: str, details: dict[str, Any], retry_after: int | None,
           status: int | None) -> PierError:
    if issubclass(cls, Overloaded):
        return cls(message, retry_after_s=retry_after or 1, details=details)
    if issubclass(cls, RemoteError):
        return cls(message, status=status or 502, details=details)
    return cls(message, details=details)


def http_error(status: int, body: bytes, request_id: str, retry_after: str | None = None,
               url: str | None = None) -> PierError:
    """The error for a non-2xx HTTP answer."""
    message, code = server_message(body)
    details: dict[str, Any] = {"status": status, "request_id": request_id}
    if url:
        details["url"] = url
    cls: type[PierError] = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or RemoteError
    if cls is PierError:
        cls = RemoteError
    hint = retry_after_s(retry_after)
    if status == 503 and hint is not None and cls is ServiceUnavailable:
        cls = Overloaded  # a refusal with a hint: the caller may come back then
    text = message or f"HTTP {status}"
    return _build(cls, f"{text} (HTTP {status}, request id {request_id})", details, hint, status)


def grpc_error(code_name: str, message: str, request_id: str, retry_after: str | None = None) -> PierError:
    details: dict[str, Any] = {"grpc_status": code_name, "request_id": request_id}
    cls = _BY_GRPC.get(code_name, RemoteError)
    return _build(cls, f"{message or code_name} (gRPC {code_name}, request id {request_id})", details,
                  retry_after_s(retry_after), None)


def unreachable(url: str, exc: BaseException, request_id: str) -> RemoteUnreachable:
    return RemoteUnreachable(f"cannot connect to {url}: {exc or type(exc).__name__} (request id {request_id})",
                             details={"url": url, "request_id": request_id})


def lost(url: str, exc: BaseException, request_id: str) -> RemoteError:
    """The connection failed after the request was (maybe) sent: never retried, the model may have run."""
    return RemoteError(f"the connection to {url} failed before an answer came: {exc or type(exc).__name__} "
                       f"(request id {request_id}; not retried, the model may have run)",
                       details={"url": url, "request_id": request_id})


def timed_out(url: str, timeout_s: float, request_id: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"no answer from {url} within {timeout_s:g}s (request id {request_id})",
                            details={"url": url, "timeout_s": timeout_s, "request_id": request_id})


def retry_after_s(value: str | None) -> int | None:
    """Seconds of a ``Retry-After`` header (the delay form; an HTTP date counts as 1 s)."""
    if value is None:
        return None
    try:
        return max(0, int(float(value)))
    except ValueError:
        return 1
