"""``auth.mode: token`` at the gateway: refused with 401 before any replica is called; the token stays."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from modelpier.gateway.app import build_gateway
from modelpier.gateway.proxy import ReplicaProxy, Upstream
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

GOOD = "pier_good"


class RecordingProxy(ReplicaProxy):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[tuple[str, str]]] = []

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *,
                   timeout_s: float, buffer_bytes: int = 1024 * 1024) -> Upstream:
        self.calls.append(headers)
        response: Any = None
        return Upstream(200, [("content-type", "application/json")], response, content=b"{}")


class Verifier:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    async def verify(self, project: str, deployment: str, token: str) -> bool:
        self.asked.append((project, deployment, token))
        return token == GOOD

    async def aclose(self) -> None:
        pass


def _post(app: Starlette, headers: dict[str, str] | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        # No lifespan: the table source is a plain callable, so nothing needs starting.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.post("/acme/iris/v2/models/iris/infer", json={}, headers=headers or {})
    return asyncio.run(run())


def _table(mode: str) -> RoutingTable:
    replica = ReplicaEndpoint("r1", "http://127.0.0.1:1", 1)
    return RoutingTable.of([DeploymentRoute("acme", "iris", 1, (PredictorRoute("main", 100, (replica,)),),
                                            auth_mode=mode)])


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"authorization": "Bearer pier_bad"}, 401), ({"authorization": "Basic x"}, 401),
    ({"authorization": f"Bearer {GOOD}"}, 200)])
def test_token_mode_checks_before_any_model_work(headers: dict[str, str], status: int) -> None:
    proxy, verifier = RecordingProxy(), Verifier()
    r = _post(build_gateway(lambda: _table("token"), proxy=proxy, verifier=verifier), headers)
    assert r.status_code == status
    assert len(proxy.calls) == (1 if status == 200 else 0)
    if status == 401:
        assert r.json()["error"]["code"] == "unauthenticated"
        assert "pier_bad" not in r.text
    else:
        assert all(k.lower() != "authorization" for k, _ in proxy.calls[0])  # the token stops at the gateway


def test_public_deployments_need_no_token_and_pass_headers_through() -> None:
    proxy, verifier = RecordingProxy(), Verifier()
    assert _post(build_gateway(lambda: _table("public"), proxy=proxy, verifier=verifier)).status_code == 200
    assert verifier.asked == []


def test_without_a_verifier_token_mode_fails_closed() -> None:
    proxy = RecordingProxy()
    r = _post(build_gateway(lambda: _table("token"), proxy=proxy), {"authorization": f"Bearer {GOOD}"})
    assert r.status_code == 401
    assert proxy.calls == []
