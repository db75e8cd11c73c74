"""Forwarding one request to one replica over the gateway's one pooled HTTP client.

The only replica I/O of the gateway. ``send`` returns the whole answer: a prediction is small, and
holding it whole is what lets the gateway cache it, compare it with the shadow's, log it, and keep
an asynchronous job's result; answers above ``max_response_bytes`` are refused (502) rather than
held. Failures before any answer arrived are ``Retryable`` (the caller may try another replica):
connect errors, a connection reset or closed with no response, and a response cut off mid-body (a
replica killed between writing its headers and its body). A prediction has no side effects, so
repeating it on another replica is safe.

The client is aiohttp's: its connection pool stays flat under many concurrent requests, where
httpx's async pool cost the gateway most of its throughput at 64 connections (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

Headers = list[tuple[bytes, bytes]]

# Headers that describe one hop, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
})
# The client sets these itself from the URL and the body it sends; the server from the body it sends.
_LENGTH = frozenset({b"host", b"content-length"})
# A reset or refused connection, a replica that closed without answering, a body cut short.
_BROKEN = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)


class Retryable(Exception):
    """The replica failed before it answered; another replica may serve the request."""


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


class ReplicaProxy:
    """Owns the shared ``aiohttp.ClientSession`` (keep-alive pool to every replica).

    The session is created on first use, inside the running event loop, as aiohttp requires.
    """

    def __init__(self, *, connect_timeout_s: float = 2.0, max_connections: int = 1000,
                 max_response_bytes: int = 256 * 1024 * 1024) -> None:
        self._connect_timeout = connect_timeout_s
        self._max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                             keepalive_timeout=30, ttl_dns_cache=None)
            # auto_decompress off: bodies pass through byte for byte with their Content-Encoding.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  trust_env=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def send(self, method: str, url: str, headers: Headers, body: bytes, *, timeout_s: float) -> Answer:
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(self._connect_timeout, timeout_s))
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in end_to_end(headers)]
        try:
            async with self._client().request(method, url, headers=sent, data=body or None, timeout=timeout,
                                              allow_redirects=False) as response:
                length = response.content_length
                if length is not None and length > self.max_response_bytes:
                    raise AnswerTooLarge(f"the replica's answer has {length} bytes, over {self.max_response_bytes}")
                if length is not None:
                    content = await response.read()
                else:  # chunked: count as it comes
                    chunks, size = [], 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > self.max_response_bytes:
                            raise AnswerTooLarge(f"the replica's answer is over {self.max_response_bytes} bytes")
                        chunks.append(chunk)
                    content = b"".join(chunks)
                raw = [(k, v) for k, v in response.raw_headers]
                return Answer(response.status, end_to_end(raw), content)
        except _BROKEN as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g}s") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector's transports finish closing before the loop goes away.
            await asyncio.sleep(0)
