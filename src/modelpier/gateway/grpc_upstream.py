"""The gateway's gRPC client to replicas: ``ReplicaProxy`` (``proxy.py``) for unary V2 gRPC methods.

The ``Dispatcher`` sends a gRPC ``Call`` here with the URL ``{replica.grpc_url}{method path}``
(``127.0.0.1:30001/inference.GRPCInferenceService/ModelInfer``), the caller's metadata as header
pairs and the request message as bytes. The message is forwarded as it is (no protobuf decoding:
every V2 message works, raw tensor contents included) over one ``grpc.aio`` channel per replica
address, reused by every call. Outcomes, in the contract's terms:

* OK → ``Answer(200)``: the response bytes, the replica's trailing metadata as headers, and
  ``content-type: application/grpc`` marking the body as a protobuf message;
* UNAVAILABLE (unreachable, or still loading) → ``Retryable``: the dispatcher tries another replica;
* DEADLINE_EXCEEDED at our own deadline → ``UpstreamTimeout``;
* any other code (bad input, unknown model, a full queue, the replica's own timeout) → an ``Answer``
  with the HTTP equivalent of the code and ``grpc-status`` / ``grpc-message`` headers, so the front
  end re-raises the replica's code and message unchanged (``grpc_status``).

Channels of addresses that left the routing table are closed after a grace period for the calls
still on them: each send checks whether the table changed (an identity check) and prunes then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

import grpc

from modelpier.gateway.grpc_status import GRPC_CONTENT_TYPE, replica_error
from modelpier.gateway.proxy import Answer, AnswerTooLarge, Headers, ReplicaProxy, Retryable, UpstreamTimeout
from modelpier.spec.routing import RoutingTable

Metadata = list[tuple[str, str | bytes]]

_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", -1),  # bounded by max_response_bytes below, with a clear error
    ("grpc.max_send_message_length", -1),  # the gateway's server bounds what callers send
    ("grpc.enable_retries", 0),  # retrying is the dispatcher's: once, on another replica
    # A replica restarted on its old port is reachable again within a poll of the table; gRPC's
    # default reconnect backoff (1 s, growing to 120 s) would keep the channel failing long after.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
# Headers the dispatcher adds for HTTP replicas, and transport keys gRPC sets itself (or refuses).
_NOT_METADATA = frozenset({b"x-forwarded-prefix", b"user-agent", b"content-type", b"te", b"host",
                           b"content-length"})


def to_metadata(headers: Headers) -> Metadata:
    """Header pairs as gRPC metadata: text values, except raw bytes for ``-bin`` keys."""
    return [(k.decode("latin-1"), v if k.endswith(b"-bin") else v.decode("latin-1"))
            for k, v in headers if k not in _NOT_METADATA and not k.startswith((b":", b"grpc-"))]


def from_metadata(metadata: Any) -> Headers:
    """gRPC metadata as header pairs (keys lower-cased, ``grpc-*`` transport keys dropped)."""
    return [(str(k).lower().encode("latin-1"), v if isinstance(v, bytes) else str(v).encode("latin-1", "replace"))
            for k, v in (metadata or ()) if not str(k).startswith("grpc-")]


class ChannelPool:
    """One ``grpc.aio`` channel per replica address, created on first use and kept for reuse.

    ``prune`` closes the channels of addresses no longer in the routing table, after a grace period
    for the calls still in flight on them (a closed channel cancels its calls).
    """

    def __init__(self, grace_s: float = 30.0) -> None:
        self._channels: dict[str, Any] = {}
        self._grace = grace_s
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._channels)

    def get(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        return channel

    def prune(self, live: Collection[str]) -> None:
        for address in [a for a in self._channels if a not in live]:
            task = asyncio.create_task(self._channels.pop(address).close(self._grace), name=f"close {address}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self, grace_s: float | None = None) -> None:
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(c.close(grace_s) for c in channels), *self._closing, return_exceptions=True)


def grpc_addresses(table: RoutingTable) -> set[str]:
    return {r.grpc_url for d in table.deployments.values() for p in d.predictors for r in p.replicas
            if r.grpc_url}


class GrpcReplicaProxy(ReplicaProxy):
    """``ReplicaProxy`` over ``grpc.aio`` channels, one per replica address.

    ``tables`` (the routing table source's ``get``) lets it close the channels of replicas that left.
    """

    def __init__(self, tables: Callable[[], RoutingTable] | None = None, *, channel_grace_s: float = 30.0,
                 max_response_bytes: int = 256 * 1024 * 1024) -> None:
        self.channels = ChannelPool(channel_grace_s)
        self._grace = channel_grace_s
        self.max_response_bytes = max_response_bytes
        self._tables = tables
        self._pruned_for: RoutingTable | None = None

    def _prune(self) -> None:
        if self._tables is None:
            return
        table = self._tables()
        if table is not self._pruned_for:  # a new table: drop the channels of replicas that left
            self.channels.prune(grpc_addresses(table))
            self._pruned_for = table

    async def send(self, method: str, url: str, headers: Headers, body: bytes, *, timeout_s: float) -> Answer:
        self._prune()
        address, slash, path = url.partition("/")
        if not slash or not address:
            raise Retryable(f"cannot forward to {url!r}: not HOST:PORT/METHOD", delivered=False)
        timeout_s = max(timeout_s, 0.001)
        begun = time.monotonic()
        call = self.channels.get(address).unary_unary("/" + path)(body, metadata=to_metadata(headers),
                                                                  timeout=timeout_s)
        try:
            response: bytes = await call
            trailing = await call.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                # "failed to connect": the call never left; anything else may have reached the replica.
                raise Retryable(f"{address}: UNAVAILABLE: {details}",
                                delivered="failed to connect" not in details.lower()) from None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - begun >= timeout_s * 0.99:
                # Our deadline, not the replica's own timeout (whose message passes through).
                raise UpstreamTimeout(f"no answer within {timeout_s:.3g}s") from None
            return replica_error(code, details, from_metadata(exc.trailing_metadata()))
        if len(response) > self.max_response_bytes:
            raise AnswerTooLarge(f"the replica's answer is over {self.max_response_bytes} bytes")
        return Answer(200, [(b"content-type", GRPC_CONTENT_TYPE), *from_metadata(trailing)], response)

    async def aclose(self) -> None:
        """Close every channel; calls still in flight on them get the grace period to finish."""
        await self.channels.close(self._grace)
