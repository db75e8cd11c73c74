"""gRPC status codes and the gateway's HTTP statuses, both ways. Pure.

The ``Dispatcher`` speaks in ``Answer``s with HTTP statuses (its counters, cache and logs do too),
so a gRPC call crosses that language twice:

* on the way in (``grpc_upstream``): a replica's own error becomes an ``Answer`` whose status is
  the HTTP equivalent of its code (``http_status_of``: INVALID_ARGUMENT → 400, RESOURCE_EXHAUSTED →
  429, ...), carrying ``grpc-status`` and ``grpc-message`` headers so the code and message survive;
* on the way out (``grpc_proxy``): ``answer_error`` turns a non-200 ``Answer`` back into a code and
  a message: the replica's own when the headers carry them, else the gateway's own refusal (the
  platform's error envelope) mapped by its error code and status (``grpc_code_of``).

Both maps are the error tree's, in ``errors.py`` (``Wire.grpc`` of each class, ``GRPC_CODE_OF_HTTP``,
``HTTP_STATUS_OF_GRPC``); this module only turns their code names into ``grpc.StatusCode``. That is
why ``limits.maxInFlight`` (``Overloaded``, 503) is RESOURCE_EXHAUSTED, as a replica's full queue is.
"""

from __future__ import annotations

import grpc
import orjson

from modelpier.errors import HTTP_STATUS_OF_GRPC, grpc_code_of_http
from modelpier.gateway.proxy import Answer, Headers

GRPC_CONTENT_TYPE = b"application/grpc"  # marks an Answer whose body is a protobuf message
STATUS_KEY = b"grpc-status"
MESSAGE_KEY = b"grpc-message"

_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def http_status_of(code: grpc.StatusCode) -> int:
    return HTTP_STATUS_OF_GRPC.get(code.name, 500)


def grpc_code_of(status: int, error_code: str | None = None) -> grpc.StatusCode:
    """The gRPC code for one of the gateway's own refusals (``error_answer``): the error tree's own code
    for the envelope's error code, else the one of the HTTP status (``errors.grpc_code_of_http``)."""
    return grpc.StatusCode[grpc_code_of_http(status, error_code)]


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
