"""The gateway's request path with a fake proxy: routes, sticky keys, shadow, limits, health, cold starts."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import orjson
import pytest

from modelpier.gateway.compose import GatewayParts, build_gateway
from modelpier.gateway.health import PassiveHealth
from modelpier.gateway.proxy import Answer, UpstreamTimeout
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import (
    DeploymentRoute,
    HeaderRoute,
    PredictorRoute,
    ReplicaEndpoint,
    RoutingTable,
    TrafficPolicy,
)
from tests.unit.gateway.fakes import FakeProxy, refused, request, run, v2_answer

MAIN = ReplicaEndpoint("main-a", "http://main-a", 2, "iris:1")
MAIN_B = ReplicaEndpoint("main-b", "http://main-b", 2, "iris:1")
CANARY = ReplicaEndpoint("canary-a", "http://canary-a", 2, "iris:2")
INFER = "/acme/iris/v2/models/iris/infer"


def table(*predictors: PredictorRoute, policy: TrafficPolicy | None = None, timeout_s: float = 5.0) -> StaticTable:
    return StaticTable(RoutingTable.of([DeploymentRoute("acme", "iris", 2, predictors, timeout_s=timeout_s,
                                                        policy=policy or TrafficPolicy())]))


def split(policy: TrafficPolicy | None = None) -> StaticTable:
    return table(PredictorRoute("main", 90, (MAIN,)), PredictorRoute("canary", 10, (CANARY,)), policy=policy)


def cycle(*values: float) -> itertools.cycle[float]:
    return itertools.cycle(values)


def test_weights_answer_with_predictor_and_model_version_headers() -> None:
    rands = cycle(0.95, 0.0, 0.5, 0.0)  # predictor pick, replica pick, ...
    app = build_gateway(split(), proxy=FakeProxy(), rand=lambda: next(rands))

    async def go() -> list[tuple[str, str]]:
        out = []
        for _ in range(2):
            r = await request(app, "POST", INFER)
            assert r.status_code == 200
            out.append((r.headers["x-pier-predictor"], r.headers["x-pier-model-version"]))
        return out
    assert run(go) == [("canary", "iris:2"), ("main", "iris:1")]


def test_a_matching_header_route_always_wins_over_weights() -> None:
    policy = TrafficPolicy(routes=(HeaderRoute((("x-segment", "beta"),), "canary"),))
    app = build_gateway(split(policy), proxy=FakeProxy())  # random weights

    async def go() -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(50):
            r = await request(app, "POST", INFER, headers={"x-segment": "beta"})
            seen[r.headers["x-pier-predictor"]] += 1
        return seen
    assert run(go) == Counter({"canary": 50})


def test_sticky_key_keeps_a_caller_on_one_predictor_and_spreads_callers() -> None:
    app = build_gateway(split(TrafficPolicy(sticky_header="x-user")), proxy=FakeProxy())

    async def go() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for user in range(200):
            for _ in range(3):
                r = await request(app, "POST", INFER, headers={"x-user": f"user-{user}"})
                seen.setdefault(f"user-{user}", set()).add(r.headers["x-pier-predictor"])
        return seen
    seen = run(go)
    assert all(len(v) == 1 for v in seen.values())
    canary = sum("canary" in v for v in seen.values())
    assert 5 <= canary <= 40  # 10% of 200 callers, loosely: the hash spreads them


def test_shadow_failures_never_reach_the_caller_and_are_counted() -> None:
    policy = TrafficPolicy(shadow="canary", shadow_percent=100)
    proxy = FakeProxy({"http://canary-a": refused()})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,)), PredictorRoute("canary", 0, (CANARY,)),
                              policy=policy), proxy=proxy)

    async def go() -> list[int]:
        statuses = [(await request(app, "POST", INFER)).status_code for _ in range(5)]
        await app.dispatcher.drain()
        return statuses
    assert run(go) == [200] * 5
    shadow = app.dispatcher.stats.shadow("acme", "iris", "canary")
    assert (shadow.mirrored, shadow.failed, shadow.compared) == (5, 5, 0)
    assert sorted(set(proxy.urls())) == ["http://canary-a", "http://main-a"]


def test_shadow_comparison_counts_agreement() -> None:
    policy = TrafficPolicy(shadow="canary", shadow_percent=100)
    labels = itertools.cycle([0, 1])  # the shadow agrees every other time
    proxy = FakeProxy({"http://canary-a": lambda: v2_answer(next(labels))})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,)), PredictorRoute("canary", 0, (CANARY,)),
                              policy=policy), proxy=proxy)

    async def go() -> None:
        for _ in range(4):
            assert (await request(app, "POST", INFER)).headers["x-pier-predictor"] == "main"
        await app.dispatcher.drain()
    run(go)
    shadow = app.dispatcher.stats.shadow("acme", "iris", "canary")
    assert (shadow.compared, shadow.agreed) == (4, 2)
    assert b'result="agreed"} 2' in app.dispatcher.stats.prometheus()


def test_max_in_flight_refuses_with_503_while_accepted_requests_succeed() -> None:
    proxy = FakeProxy()
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,)), policy=TrafficPolicy(max_in_flight=2)),
                        proxy=proxy)

    async def go() -> tuple[list[int], int, str | None]:
        proxy.gate = asyncio.Event()
        accepted = [asyncio.create_task(request(app, "POST", INFER)) for _ in range(2)]
        await proxy.wait_for_calls(2)
        over = await request(app, "POST", INFER)
        proxy.gate.set()
        return [(await t).status_code for t in accepted], over.status_code, over.headers.get("retry-after")
    statuses, over, retry_after = run(go)
    assert statuses == [200, 200]
    assert (over, retry_after) == (503, "1")
    assert app.dispatcher.stats.predictor("acme", "iris", "main").rejected == 1


def test_connection_failures_retry_elsewhere_then_eject_the_replica() -> None:
    proxy = FakeProxy({"http://main-a": refused()})
    health = PassiveHealth(threshold=2, base_s=60)
    rands = cycle(0.0)  # ties go to main-a, the broken one
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN, MAIN_B))), proxy=proxy, health=health,
                        rand=lambda: next(rands))

    async def go() -> list[int]:
        return [(await request(app, "POST", INFER)).status_code for _ in range(5)]
    assert run(go) == [200] * 5
    # main-a was tried twice (two failures eject it), then never again
    assert proxy.urls().count("http://main-a") == 2
    assert app.dispatcher.stats.predictor("acme", "iris", "main").retries == 2
    assert app.dispatcher.stats.ejections == 1


def test_every_replica_refusing_is_a_503_naming_the_failure() -> None:
    proxy = FakeProxy({"http://main-a": refused(), "http://main-b": refused()})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN, MAIN_B))), proxy=proxy)
    r = run(lambda: request(app, "POST", INFER))
    assert r.status_code == 503
    assert "failed before answering" in r.json()["error"]["message"]


def test_a_replica_timeout_is_a_504() -> None:
    proxy = FakeProxy({"http://main-a": UpstreamTimeout("no answer within 5s")})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,))), proxy=proxy)
    r = run(lambda: request(app, "POST", INFER))
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "deadline_exceeded"


def test_a_scaled_to_zero_predictor_holds_the_request_until_a_replica_is_ready() -> None:
    tables = table(PredictorRoute("main", 100, (), scales_to_zero=True))
    nudged: list[int] = []
    app = build_gateway(tables, proxy=FakeProxy())

    async def go() -> int:
        waiting = asyncio.Event()
        stats = app.dispatcher.stats.predictor("acme", "iris", "main")

        def nudge() -> None:
            nudged.append(stats.waiting)
            waiting.set()
        app.dispatcher.nudge = nudge
        pending = asyncio.create_task(request(app, "POST", INFER))
        await waiting.wait()
        assert not pending.done()
        tables.set(table(PredictorRoute("main", 100, (MAIN,), scales_to_zero=True)).get())
        return (await pending).status_code
    assert run(go) == 200
    assert nudged == [1]  # the control plane heard of the waiting request at once
    assert app.dispatcher.stats.predictor("acme", "iris", "main").waiting == 0


def test_a_cold_start_that_never_comes_is_a_504_after_the_timeout() -> None:
    app = build_gateway(table(PredictorRoute("main", 100, (), scales_to_zero=True), timeout_s=0.05),
                        proxy=FakeProxy())
    r = run(lambda: request(app, "POST", INFER))
    assert r.status_code == 504
    assert "scaled to zero" in r.json()["error"]["message"]


@pytest.mark.parametrize(("sent", "kept"), [("abc-123", True), ("bad id with spaces", False), ("x" * 200, False)])
def test_request_ids_are_propagated_when_sane_and_generated_otherwise(sent: str, kept: bool) -> None:
    proxy = FakeProxy()
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,))), proxy=proxy, id_factory=lambda: "generated")
    r = run(lambda: request(app, "POST", INFER, headers={"x-request-id": sent}))
    expected = sent if kept else "generated"
    assert r.headers["x-request-id"] == expected
    forwarded = dict(proxy.calls[0][2])
    assert forwarded[b"x-request-id"] == expected.encode()


def test_body_over_the_deployment_limit_is_413_without_calling_a_replica() -> None:
    proxy = FakeProxy()
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,)), policy=TrafficPolicy(max_body_bytes=10)),
                        proxy=proxy)
    r = run(lambda: request(app, "POST", INFER, body=b"x" * 11))
    assert r.status_code == 413
    assert "limits.maxBodyBytes" in r.json()["error"]["message"]
    assert proxy.calls == []


def test_unknown_deployment_is_404_and_an_unsynced_gateway_503() -> None:
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,))), proxy=FakeProxy())
    assert run(lambda: request(app, "POST", "/acme/nope/v2")).status_code == 404
    assert run(lambda: request(app, "GET", "/justone")).status_code == 404
    cold = build_gateway(StaticTable(), proxy=FakeProxy())
    r = run(lambda: request(cold, "POST", INFER))
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")


def test_metrics_count_requests_by_predictor_and_code() -> None:
    proxy = FakeProxy({"http://main-a": Answer(400, [], orjson.dumps({"error": "bad"}))})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN,))), proxy=proxy, parts=GatewayParts())

    async def go() -> bytes:
        await request(app, "POST", INFER)
        return (await request(app, "GET", "/metrics")).content
    text = run(go)
    assert b'pier_gateway_requests_total{project="acme",deployment="iris",predictor="main",code="400"} 1' in text
    assert b'pier_gateway_request_duration_seconds_count{project="acme",deployment="iris",predictor="main"} 1' in text
