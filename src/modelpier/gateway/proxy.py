"""The contract of forwarding one request to one replica: ``ReplicaProxy.send`` and what it raises.

``send`` returns the whole answer: a prediction is small, and holding it whole is what lets the
gateway cache it, compare it with the shadow's, log it, and keep an asynchronous job's result;
answers above ``max_response_bytes`` raise ``AnswerTooLarge`` (502) rather than being held.
Failures before any answer arrived are ``Retryable`` (the caller may try another replica): connect
errors, a connection reset or closed with no response, and a response cut off mid-body (a replica
killed between writing its headers and its body). A prediction has no side effects, so repeating it
on another replica is safe. The implementation is ``upstream.FastReplicaProxy``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

Headers = list[tuple[bytes, bytes]]

# Headers that describe one hop, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
})
# The client sets these itself from the URL and the body it sends; the server from the body it sends.
_LENGTH = frozenset({b"host", b"content-length"})


class Retryable(Exception):
    """The replica failed before it answered; another replica may serve the request.

    ``delivered`` is False only when the request certainly never reached the replica (no connection):
    the gateway's final 503 then carries Retry-After, an invitation to send it again that a caller
    may take without the model running the request twice.
    """

    def __init__(self, message: str, *, delivered: bool = True) -> None:
        super().__init__(message)
        self.delivered = delivered


class UpstreamTimeout(Exception):
    """The replica did not answer in time."""


class AnswerTooLarge(Exception):
    """The replica's answer is larger than the gateway holds."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Headers  # end-to-end headers only: no hop-by-hop, no content-length
    body: bytes


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in _LENGTH]


class ReplicaProxy(Protocol):
    async def send(self, method: str, url: str, headers: Headers, body: bytes, *, timeout_s: float) -> Answer:
        """The replica's whole answer to one request; raises as the module says."""

    async def aclose(self) -> None:
        """Close pooled connections."""
