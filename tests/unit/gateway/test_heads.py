"""Request heads the gateway refuses (``heads.check_head``), and who may read its ``/metrics``."""

from __future__ import annotations

import httpx
import pytest

from modelpier.gateway.app import GatewayApp
from modelpier.gateway.compose import GatewayParts, build_gateway
from modelpier.gateway.heads import check_head
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable
from tests.unit.gateway.fakes import FakeProxy, run

REPLICA = ReplicaEndpoint("main-a", "http://main-a", 3, "iris:1")


@pytest.mark.parametrize(("headers", "problem"), [
    ([], None),
    ([(b"authorization", b"Bearer a")], None),
    ([(b"accept", b"a"), (b"accept", b"b")], None),
    ([(b"transfer-encoding", b"chunked")], None),
    ([(b"transfer-encoding", b" Chunked ")], None),
    ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], "2 Authorization headers"),
    ([(b"authorization", b"Bearer a")] * 3, "3 Authorization headers"),
    ([(b"transfer-encoding", b"gzip, chunked")], "Transfer-Encoding 'gzip, chunked' is not supported"),
    ([(b"transfer-encoding", b"gzip")], "not supported"),
    ([(b"transfer-encoding", b"chunked, chunked")], "not supported"),
    ([(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")], "several Transfer-Encoding"),
])
def test_check_head(headers: list[tuple[bytes, bytes]], problem: str | None) -> None:
    refusal = check_head(headers)
    if problem is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert problem in refusal.message


def _gateway(metrics_token: str | None) -> GatewayApp:
    route = DeploymentRoute("acme", "iris", 3, (PredictorRoute("main", 100, (REPLICA,)),))
    table = StaticTable(RoutingTable.of([route]))
    return build_gateway(table, GatewayParts(metrics_token=metrics_token), proxy=FakeProxy())


def _get(app: GatewayApp, path: str, headers: list[tuple[str, str]]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                     base_url="http://gw") as client:
            return await client.get(path, headers=headers)
    return run(go)  # type: ignore[no-any-return]


def test_metrics_are_public_unless_a_scrape_token_is_set() -> None:
    assert _get(_gateway(None), "/metrics", []).status_code == 200
    app = _gateway("scrape-secret")
    for headers in ([], [("authorization", "Bearer wrong")], [("authorization", "Basic scrape-secret")],
                    [("authorization", "Bearer scrape-secret"), ("authorization", "Bearer scrape-secret")]):
        refused = _get(app, "/metrics", headers)
        assert refused.status_code == 401, headers
        assert "gateway.metrics_token" in refused.json()["error"]["message"]
        assert b"pier_gateway" not in refused.content
    allowed = _get(app, "/metrics", [("authorization", "bearer scrape-secret")])
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")
    assert _get(app, "/healthz", []).status_code == 200  # health stays open to probes


def test_duplicate_authorization_is_refused_on_the_asgi_path_too() -> None:
    r = _get(_gateway(None), "/acme/iris/v2/models/iris",
             [("authorization", "Bearer a"), ("authorization", "Bearer b")])
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"
