"""``GET /api/v1/routing``: the routing table the reconciler last published, for gateways.

Gateways run in their own processes and poll this route about twice a second with
``If-None-Match``; an unchanged table answers ``304`` with no body, so polling costs a comparison.
The ETag hashes the content, so it stays valid across control-plane restarts. Until the
reconciler's first pass has published a table the route answers ``503``: an empty table then would
mean "not known yet", and a gateway must keep the table it has rather than drop every route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from modelpier.errors import ServiceUnavailable
from modelpier.spec.routing import RoutingTable, encode_table

ROUTING_MEDIA_TYPE = "application/json"


@dataclass(slots=True)
class _Encoded:
    table: RoutingTable | None = None
    body: bytes = b""
    etag: str = ""


def routing_router(source: Callable[[], RoutingTable | None]) -> APIRouter:
    """``source`` returns the latest table, or None before the first one was published."""
    router = APIRouter(tags=["routing"])
    cache = _Encoded()  # the reconciler keeps the same object while the table is unchanged

    @router.get("/routing", summary="The routing table gateways serve from",
                responses={200: {"description": "The table, with an ETag"},
                           304: {"description": "Unchanged since the ETag in If-None-Match"},
                           503: {"description": "The reconciler has not published a table yet"}})
    async def routing(request: Request) -> Response:
        table = source()
        if table is None:
            raise ServiceUnavailable("the reconciler has not published a routing table yet; retry shortly",
                                     details={"retry_after_s": 1})
        if cache.table is not table:
            cache.body, cache.etag = encode_table(table)
            cache.table = table
        headers = {"etag": cache.etag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == cache.etag:
            return Response(status_code=304, headers=headers)
        return Response(cache.body, media_type=ROUTING_MEDIA_TYPE, headers=headers)

    return router
