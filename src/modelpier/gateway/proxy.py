"""Forwarding one request to one replica over the gateway's one pooled HTTP client.

The only I/O of the gateway. ``send`` returns once the replica's response headers arrived and,
for a small body of known length (``buffer_bytes``; a prediction is usually a few hundred bytes),
once the whole body arrived too; larger bodies stream through afterwards. Failures before the
client was sent anything are ``Retryable`` (the caller may try another replica): connect errors, a
connection reset with no response, and a small response cut off mid-body (a replica killed
between writing its headers and its body). A prediction has no side effects, so repeating it on
another replica is safe; a streamed body that breaks cannot be retried, the client sees it end.

The client is aiohttp's: its connection pool stays flat under many concurrent requests, where
httpx's async pool cost the gateway most of its throughput at 64 connections (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp

# Headers that describe one hop, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
})
# The client sets these itself from the URL and the body it sends.
_REQUEST_ONLY = frozenset({"host", "content-length"})
# A reset or refused connection, a replica that closed without answering, a body cut short.
_BROKEN = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)


class Retryable(Exception):
    """The replica failed before it answered; another replica may serve the request."""


class UpstreamTimeout(Exception):
    """The replica did not answer in time."""


@dataclass(slots=True)
class Upstream:
    status: int
    headers: list[tuple[str, str]]
    response: aiohttp.ClientResponse
    content: bytes | None = None  # the whole body, when it was small enough to buffer

    async def body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        finally:
            self.response.release()

    async def close(self) -> None:
        self.response.release()


def forwarded_headers(headers: Iterable[tuple[str, str]], *, request: bool = False) -> list[tuple[str, str]]:
    drop = HOP_BY_HOP | _REQUEST_ONLY if request else HOP_BY_HOP
    return [(k, v) for k, v in headers if k.lower() not in drop]


class ReplicaProxy:
    """Owns the shared ``aiohttp.ClientSession`` (keep-alive pool to every replica).

    The session is created on first use, inside the running event loop, as aiohttp requires.
    """

    def __init__(self, *, connect_timeout_s: float = 2.0, max_connections: int = 1000) -> None:
        self._connect_timeout = connect_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                             keepalive_timeout=30, ttl_dns_cache=None)
            # auto_decompress off: bodies pass through byte for byte with their Content-Encoding.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  trust_env=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *,
                   timeout_s: float, buffer_bytes: int = 1024 * 1024) -> Upstream:
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(self._connect_timeout, timeout_s))
        try:
            response = await self._client().request(method, url, headers=headers, data=body or None,
                                                     timeout=timeout, allow_redirects=False)
        except _BROKEN as exc:
            # No response started: the replica died, drained, or reset the connection.
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g}s") from exc
        upstream = Upstream(response.status, forwarded_headers(response.headers.items()), response)
        length = response.content_length
        if length is not None and length <= buffer_bytes:
            try:
                upstream.content = await response.read()
            except _BROKEN as exc:
                raise Retryable(f"response cut off: {type(exc).__name__}: {exc}") from exc
            except TimeoutError as exc:
                raise UpstreamTimeout(f"no complete answer within {timeout_s:g}s") from exc
            finally:
                response.release()
        return upstream

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector's transports finish closing before the loop goes away.
            await asyncio.sleep(0)
