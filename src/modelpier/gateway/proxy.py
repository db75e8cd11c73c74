"""Forwarding one request to one replica over the gateway's one pooled HTTP client.

The only I/O of the gateway. ``send`` returns once the replica's response headers arrived; the
body streams through afterwards. Failures *before* the response started and before the replica
can have acted on the request (connect errors, a connection reset with no response) are
``Retryable``: the caller may try another replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import httpx

# Headers that describe one hop, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
})
# httpx sets these itself from the URL and the body it sends.
_REQUEST_ONLY = frozenset({"host", "content-length"})


class Retryable(Exception):
    """The replica failed before it answered; another replica may serve the request."""


class UpstreamTimeout(Exception):
    """The replica did not answer in time."""


@dataclass(slots=True)
class Upstream:
    status: int
    headers: list[tuple[str, str]]
    response: httpx.Response

    async def body(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    async def close(self) -> None:
        await self.response.aclose()


def forwarded_headers(headers: Iterable[tuple[str, str]], *, request: bool = False) -> list[tuple[str, str]]:
    drop = HOP_BY_HOP | _REQUEST_ONLY if request else HOP_BY_HOP
    return [(k, v) for k, v in headers if k.lower() not in drop]


class ReplicaProxy:
    """Owns the shared ``httpx.AsyncClient`` (keep-alive pool to every replica)."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, connect_timeout_s: float = 2.0,
                 max_connections: int = 1000) -> None:
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=connect_timeout_s), trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=200,
                                keepalive_expiry=30))
        self._connect_timeout = connect_timeout_s

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *,
                   timeout_s: float) -> Upstream:
        request = self._client.build_request(
            method, url, headers=headers, content=body,
            timeout=httpx.Timeout(timeout_s, connect=min(self._connect_timeout, timeout_s)))
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError) as exc:
            # No response started: the replica died, drained, or reset the connection.
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g}s") from exc
        return Upstream(response.status_code, forwarded_headers(response.headers.multi_items()), response)

    async def aclose(self) -> None:
        await self._client.aclose()
