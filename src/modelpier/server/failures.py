"""What a transport tells a client about an exception: a code and a message, never a traceback.

Errors of the platform's tree carry their own code and message. Anything else is a bug: it is
logged with its traceback under a fresh error id, and the client gets only that id to quote.
"""

from __future__ import annotations

import logging

from modelpier._lib.ids import new_id
from modelpier.errors import PierError

log = logging.getLogger("modelpier.server")


def describe_failure(exc: Exception) -> tuple[str, str]:
    """``(code, message)`` for a client; logs unexpected exceptions with an error id."""
    if isinstance(exc, PierError):
        return exc.code, exc.message
    error_id = new_id(8)
    log.error("unexpected error (error id %s)", error_id, exc_info=exc)
    return "internal", f"internal server error; error id {error_id}"
