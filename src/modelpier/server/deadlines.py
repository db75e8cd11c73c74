"""A caller's deadline for one request: the ``x-pier-timeout-ms`` header or V2's ``timeout`` parameter.

The server's own ``request_timeout_s`` bounds every request; a caller may ask for less, never more:
``x-pier-timeout-ms: 250`` (any protocol over HTTP; the gateway forwards it to the replica), the V2
request parameter ``timeout`` in microseconds (what Triton's clients send: ``tritonclient``'s
``infer(timeout=...)``), or a gRPC deadline (``grpc-timeout``, read by the gRPC transport). Pure:
the transports pass the raw values in.
"""

from __future__ import annotations

from typing import Any

from modelpier.errors import InvalidInput

TIMEOUT_HEADER = b"x-pier-timeout-ms"


def header_timeout_s(value: bytes | None) -> float | None:
    """Seconds from an ``x-pier-timeout-ms`` header value; None when absent."""
    if value is None:
        return None
    try:
        ms = float(value)
    except ValueError:
        raise InvalidInput(f"x-pier-timeout-ms must be a number of milliseconds, got {value.decode('latin-1')!r}",
                           details={"header": "x-pier-timeout-ms"}) from None
    if not 0 < ms < float("inf"):  # also refuses NaN
        raise InvalidInput(f"x-pier-timeout-ms must be > 0, got {value.decode('latin-1')!r}",
                           details={"header": "x-pier-timeout-ms"})
    return ms / 1000.0


def parameter_timeout_s(parameters: dict[str, Any] | None) -> float | None:
    """Seconds from a V2 request's ``timeout`` parameter (microseconds); None when absent or 0.

    Triton treats 0 as "no timeout": so do we (the server's own bound still applies).
    """
    if not parameters or "timeout" not in parameters:
        return None
    value = parameters["timeout"]
    if type(value) is not int or value < 0:
        raise InvalidInput(f"parameter 'timeout' must be a non-negative integer of microseconds, got {value!r}",
                           details={"parameter": "timeout"})
    return value / 1e6 if value else None


def effective_timeout_s(server_s: float, *asked: float | None) -> float:
    """The shortest of the server's bound and what the caller asked for."""
    return min([server_s, *(a for a in asked if a is not None)])
