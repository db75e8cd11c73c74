"""What a gateway asks of the control plane: the routing table (long poll), token checks, traffic reports.

The gateway sits above ``sdk`` in the layers, so it uses these through ``AsyncControlClient`` like
every other client of ``/api/v1``; what it does when they fail (keep the last table, the breaker,
log once per outage) stays in ``gateway/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from modelpier.auth.wire import InvocationAnswerBody
from modelpier.sdk.control_api.call import Call, nothing, post, send_model
from modelpier.spec.routing import RoutingTable, table_from_wire
from modelpier.spec.traffic import TrafficReport

ROUTING_PATH = "/routing"
VERIFY_PATH = "/invocations/verify"
TRAFFIC_PATH = "/traffic"


@dataclass(frozen=True, slots=True)
class RoutingPoll:
    """A poll's answer: ``table`` None when unchanged since ``etag`` (304)."""

    table: RoutingTable | None
    etag: str | None


def _polled(response: httpx.Response) -> RoutingPoll:
    if response.status_code == 304:
        return RoutingPoll(None, response.headers.get("etag"))
    if response.status_code != 200:
        raise ValueError(f"expected a routing table, got HTTP {response.status_code}: {response.text[:200]}")
    return RoutingPoll(table_from_wire(response.json()), response.headers.get("etag") or "unversioned")


def poll_routing(etag: str | None, *, wait_s: float, timeout_s: float) -> Call[RoutingPoll]:
    """``GET /routing``: the table, or 304 while it still has ``etag``; with an ``etag`` and
    ``wait_s > 0`` the control plane holds the request up to ``wait_s`` until the table changes;
    ``timeout_s`` covers the hold."""
    headers = {"If-None-Match": etag} if etag else {}
    params = {"wait": f"{wait_s:g}"} if wait_s > 0 and etag else None
    return Call("GET", ROUTING_PATH, _polled, params=params, headers=headers, accept=frozenset({304}),
                timeout_s=timeout_s)


def verify_invocation(project: str, deployment: str, token: str) -> Call[bool]:
    """May ``token`` invoke ``project/deployment``? (Asked with the gateway's own, admin, token.)"""
    body = {"project": project, "deployment": deployment, "token": token}
    return post(VERIFY_PATH, body, lambda response: InvocationAnswerBody.model_validate_json(response.content).allowed)


def report_traffic(report: TrafficReport) -> Call[None]:
    """``POST /traffic``: a gateway's cumulative counters (``gateway/stats.py`` builds the report).

    Encoded by pydantic in one go (camelCase, the wire contract): no intermediate dict on the event loop."""
    return send_model("POST", TRAFFIC_PATH, report, nothing, by_alias=True)
