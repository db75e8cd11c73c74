"""What a transport tells a client about an exception: an error of the tree, never a traceback.

Errors of the platform's tree are told as they are. Anything else is a bug: it is logged with its
traceback under a fresh error id, and the client gets an ``Unexpected`` that carries only that id
to quote. Each transport then answers with the error tree's one map (``errors.py``): the HTTP
protocols with ``inference_http_status`` and ``retry_after_s``, Seldon with ``seldon_error``, gRPC
with ``grpc_code``.
"""

from __future__ import annotations

import logging

from modelpier._lib.ids import new_id
from modelpier.errors import PierError

log = logging.getLogger("modelpier.server")


class Unexpected(PierError):
    """An exception outside the error tree, told to the client by its error id alone (500, INTERNAL)."""

    code = "internal"


def as_pier_error(exc: Exception) -> PierError:
    """``exc`` itself when it is one of the tree; else an ``Unexpected``, logged with its error id."""
    if isinstance(exc, PierError):
        return exc
    error_id = new_id(8)
    log.error("unexpected error (error id %s)", error_id, exc_info=exc)
    return Unexpected(f"internal server error; error id {error_id}")
