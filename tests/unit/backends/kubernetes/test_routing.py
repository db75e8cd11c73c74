"""Routing objects: weights (canary, A/B), header routes, mirroring, rewrite, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.quantities import gateway_duration, istio_duration, quantity
from modelpier.backends.kubernetes.render import render
from tests.unit.backends.kubernetes.specs import FEATURES


def http_route(feature: str, **options: Any) -> dict[str, Any]:
    route: dict[str, Any] = render(FEATURES[feature], RenderOptions(**options))[-1]
    assert route["kind"] == "HTTPRoute"
    return route["spec"]


def virtual_service(feature: str) -> dict[str, Any]:
    route: dict[str, Any] = render(FEATURES[feature], RenderOptions(routing="istio"))[-1]
    assert route["kind"] == "VirtualService"
    return route["spec"]


def test_canary_weights_split_traffic() -> None:
    (rule,) = http_route("canary")["rules"]
    assert rule["backendRefs"] == [{"name": "iris-main", "port": 8080, "weight": 90},
                                   {"name": "iris-canary", "port": 8080, "weight": 10}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/acme/iris"}}]
    assert rule["filters"] == [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
    assert rule["timeouts"] == {"request": "30s"}


def test_header_routes_come_first_and_pin_one_predictor() -> None:
    header, default = http_route("header-route")["rules"]
    assert header["matches"][0]["headers"] == [{"type": "Exact", "name": "x-segment", "value": "beta"},
                                               {"type": "Exact", "name": "x-tier", "value": "gold"}]
    assert header["backendRefs"] == [{"name": "iris-canary", "port": 8080}]
    assert "headers" not in default["matches"][0]


def test_the_shadow_gets_mirrored_copies_and_no_weight() -> None:
    (rule,) = http_route("shadow")["rules"]
    assert rule["backendRefs"] == [{"name": "iris-main", "port": 8080, "weight": 100}]
    mirror = rule["filters"][1]
    assert mirror == {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "iris-next", "port": 8080}}}


def test_a_partial_shadow_mirrors_a_percentage_on_every_rule() -> None:
    rules = http_route("shadow-partial")["rules"]
    assert len(rules) == 2
    for rule in rules:
        assert rule["filters"][1]["requestMirror"]["percent"] == 25


def test_parent_gateway_and_hostnames() -> None:
    spec = http_route("single", gateway_name="edge", gateway_namespace=None, hostnames=("models.example.com",))
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}]
    assert spec["hostnames"] == ["models.example.com"]
    assert "hostnames" not in http_route("single")


def test_istio_virtual_service_mirrors_the_gateway_api_route() -> None:
    spec = virtual_service("shadow-partial")
    assert spec["gateways"] == ["modelpier-system/modelpier"]
    assert spec["hosts"] == ["*"]
    header, default = spec["http"]
    assert header["match"] == [{"uri": {"prefix": "/acme/iris/"}, "headers": {"x-user": {"exact": "qa"}}}]
    assert header["route"] == [{"destination": {"host": "iris-canary.acme.svc.cluster.local",
                                                "port": {"number": 8080}}}]
    assert [r["weight"] for r in default["route"]] == [90, 10]
    assert default["mirror"] == {"host": "iris-shadow.acme.svc.cluster.local", "port": {"number": 8080}}
    assert default["mirrorPercentage"] == {"value": 25.0}
    assert default["rewrite"] == {"uri": "/"}
    assert default["timeout"] == "30s"


def test_istio_without_shadow_has_no_mirror() -> None:
    (rule,) = virtual_service("canary")["http"]
    assert "mirror" not in rule
    assert "mirrorPercentage" not in rule


@pytest.mark.parametrize(("seconds", "gateway", "istio"), [
    (30, "30s", "30s"), (2.5, "2s500ms", "2.5s"), (0.001, "1ms", "0.001s"), (3600, "1h", "3600s"),
    (150.5, "2m30s500ms", "150.5s"), (3599.999, "59m59s999ms", "3599.999s")])
def test_durations(seconds: float, gateway: str, istio: str) -> None:
    assert gateway_duration(seconds) == gateway
    assert istio_duration(seconds) == istio


@pytest.mark.parametrize(("value", "expected"), [
    (8, "8"), (8.0, "8"), (2.5, "2500m"), (0.001, "1m"), (0.3, "300m"), (0.0001, "1m")])
def test_quantities(value: float, expected: str) -> None:
    assert quantity(value) == expected
