"""``auth.mode: token`` at the gateway: refused with 401 before any replica is called; the token stays."""

from __future__ import annotations

import pytest

from modelpier.gateway.compose import GatewayParts, build_gateway
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable
from tests.unit.gateway.fakes import FakeProxy, request, run

GOOD = "pier_good"


class Verifier:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, int]] = []

    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool:
        self.asked.append((project, deployment, token, epoch))
        return token == GOOD

    async def aclose(self) -> None:
        pass


def _table(mode: str) -> StaticTable:
    replica = ReplicaEndpoint("r1", "http://127.0.0.1:1", 1)
    return StaticTable(RoutingTable.of([DeploymentRoute("acme", "iris", 1, (PredictorRoute("main", 100, (replica,)),),
                                                        auth_mode=mode)], auth_epoch=7))


def _post(mode: str, proxy: FakeProxy, verifier: Verifier | None, headers: dict[str, str] | None = None) -> object:
    app = build_gateway(_table(mode), GatewayParts(verifier=verifier), proxy=proxy)
    return run(lambda: request(app, "POST", "/acme/iris/v2/models/iris/infer", headers=headers))


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"authorization": "Bearer pier_bad"}, 401), ({"authorization": "Basic x"}, 401),
    ({"authorization": f"Bearer {GOOD}"}, 200)])
def test_token_mode_checks_before_any_model_work(headers: dict[str, str], status: int) -> None:
    proxy, verifier = FakeProxy(), Verifier()
    r = _post("token", proxy, verifier, headers)
    assert r.status_code == status  # type: ignore[attr-defined]
    assert len(proxy.calls) == (1 if status == 200 else 0)
    if status == 401:
        assert r.json()["error"]["code"] == "unauthenticated"  # type: ignore[attr-defined]
        assert "pier_bad" not in r.text  # type: ignore[attr-defined]
    else:
        assert all(k != b"authorization" for k, _ in proxy.calls[0][2])  # the token stops at the gateway
        assert verifier.asked == [("acme", "iris", GOOD, 7)]  # with the table's auth epoch


def test_public_deployments_need_no_token_and_pass_headers_through() -> None:
    proxy, verifier = FakeProxy(), Verifier()
    r = _post("public", proxy, verifier, {"authorization": "Bearer for-the-model", "x-custom": "1"})
    assert r.status_code == 200  # type: ignore[attr-defined]
    assert verifier.asked == []
    sent = dict(proxy.calls[0][2])
    assert (sent[b"authorization"], sent[b"x-custom"]) == (b"Bearer for-the-model", b"1")


def test_without_a_verifier_token_mode_fails_closed() -> None:
    proxy = FakeProxy()
    r = _post("token", proxy, None, {"authorization": f"Bearer {GOOD}"})
    assert r.status_code == 401  # type: ignore[attr-defined]
    assert proxy.calls == []
