"""``GET /api/v1/routing``: the routing table the reconciler last published, for gateways.

Gateways run in their own processes and poll this route with ``If-None-Match``; an unchanged
table answers ``304`` with no body, so polling costs a comparison. With ``?wait=S`` the request is
held (a long poll) until the table changes or ``S`` seconds pass, so a gateway sees a new table
within a few tens of milliseconds instead of a poll interval; held requests are released at once
when the control plane shuts down (``RoutingFeed.close``). The ETag hashes the content, so it stays valid
across control-plane restarts. Until the
reconciler's first pass has published a table the route answers ``503``: an empty table then would
mean "not known yet", and a gateway must keep the table it has rather than drop every route.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from modelpier.auth.epoch import AuthEpoch
from modelpier.errors import ServiceUnavailable
from modelpier.spec.routing import RoutingTable, RoutingTableCell, encode_table

ROUTING_MEDIA_TYPE = "application/json"
MAX_WAIT_S = 30.0


class RoutingFeed:
    """Where the reconciler publishes (``publish``) and the route reads; held requests wake when the
    table changes or the feed closes. Used from the event loop's thread only, except the auth
    epoch's listener, which hands over to that thread.

    The table served is the reconciler's with ``auth_epoch`` set to the auth store's epoch: when a
    token is revoked or access otherwise shrinks, ``auth_epoch`` advances, the table changes (new
    ETag) and held long polls answer at once, so gateways drop their cached token checks within
    a round trip instead of after their cache lifetime.
    """

    def __init__(self, auth_epoch: AuthEpoch | None = None) -> None:
        self._cell = RoutingTableCell()
        self._changed = asyncio.Event()
        self._epoch = auth_epoch
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        if auth_epoch is not None:
            auth_epoch.subscribe(self._epoch_moved)

    def current(self) -> RoutingTable | None:
        if not self._cell.published:
            return None
        table = self._cell.get()
        if self._epoch is not None and table.auth_epoch != self._epoch.value:
            self._set(table)  # the epoch moved since the last table: serve (and announce) the new one
        return self._cell.get()

    def publish(self, table: RoutingTable) -> None:
        self._set(table)

    def _set(self, table: RoutingTable) -> None:
        if self._epoch is not None:
            table = replace(table, auth_epoch=self._epoch.value)
        before = self._cell.get() if self._cell.published else None
        self._cell.set(table)
        if self._cell.get() is not before:  # the cell keeps the old object when the table is equal
            self._changed.set()
            self._changed = asyncio.Event()

    def _epoch_moved(self, _epoch: int) -> None:
        # Called on the request worker thread that revoked; only the loop's thread touches the cell.
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(self.current)

    async def wait_change(self, table: RoutingTable, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        changed = self._changed
        if self.current() is table and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout_s)

    def close(self) -> None:
        self.closed = True
        self._changed.set()


@dataclass(slots=True)
class _Encoded:
    table: RoutingTable | None = None
    body: bytes = b""
    etag: str = ""


def routing_router(feed: RoutingFeed) -> APIRouter:
    router = APIRouter(tags=["routing"])
    cache = _Encoded()  # the reconciler keeps the same object while the table is unchanged

    @router.get("/routing", summary="The routing table gateways serve from",
                responses={200: {"description": "The table, with an ETag"},
                           304: {"description": "Unchanged since the ETag in If-None-Match"},
                           503: {"description": "The reconciler has not published a table yet"}})
    async def routing(request: Request, wait: Annotated[float, Query(
            ge=0, le=MAX_WAIT_S, description="Seconds to hold the request while the table still has the "
                                             "ETag in If-None-Match")] = 0.0) -> Response:
        table = feed.current()
        known = request.headers.get("if-none-match")
        if wait > 0 and table is not None and known == cache.etag and cache.table is table:
            await feed.wait_change(table, wait)
            table = feed.current()
        if table is None:
            raise ServiceUnavailable("the reconciler has not published a routing table yet; retry shortly",
                                     details={"retry_after_s": 1})
        if cache.table is not table:
            cache.body, cache.etag = encode_table(table)
            cache.table = table
        headers = {"etag": cache.etag, "cache-control": "no-cache"}
        if known == cache.etag:
            return Response(status_code=304, headers=headers)
        return Response(cache.body, media_type=ROUTING_MEDIA_TYPE, headers=headers)

    return router
