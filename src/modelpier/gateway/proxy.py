"""Forwarding one request to one replica over the gateway's one pooled HTTP client.

The only I/O of the gateway. ``send`` returns once the replica's response headers arrived and,
for a small body of known length (``buffer_bytes``; a prediction is usually a few hundred bytes),
once the whole body arrived too; larger bodies stream through afterwards. Failures before the
client was sent anything are ``Retryable`` (the caller may try another replica): connect errors, a
connection reset with no response, and a small response cut off mid-body (a replica killed
between writing its headers and its body). A prediction has no side effects, so repeating it on
another replica is safe; a streamed body that breaks cannot be retried, the client sees it end.
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
    content: bytes | None = None  # the whole body, when it was small enough to buffer

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
                   timeout_s: float, buffer_bytes: int = 1024 * 1024) -> Upstream:
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
        upstream = Upstream(response.status_code, forwarded_headers(response.headers.multi_items()), response)
        if _length(response) <= buffer_bytes:
            try:
                upstream.content = await response.aread()
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                raise Retryable(f"response cut off: {type(exc).__name__}: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(f"no complete answer within {timeout_s:g}s") from exc
            finally:
                await response.aclose()
        return upstream

    async def aclose(self) -> None:
        await self._client.aclose()


def _length(response: httpx.Response) -> float:
    """The body's declared length; infinite when unknown (chunked), so it is streamed."""
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return float("inf")
