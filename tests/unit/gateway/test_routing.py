"""Routing decisions: predictor by weight with injected randomness, replica by outstanding requests."""

from __future__ import annotations

import pytest

from modelpier.gateway.routing import match_predictor, pick_replica
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

A, B, C = (ReplicaEndpoint(f"r{i}", f"http://127.0.0.1:{9000 + i}", 1) for i in range(3))


def route(*predictors: PredictorRoute) -> DeploymentRoute:
    return DeploymentRoute("default", "iris", 1, predictors)


@pytest.mark.parametrize(("rand", "expected"), [(0.0, "main"), (0.89, "main"), (0.9, "canary"), (0.999, "canary")])
def test_weights_split_traffic(rand: float, expected: str) -> None:
    r = route(PredictorRoute("main", 90, (A,)), PredictorRoute("canary", 10, (B,)))
    chosen = match_predictor(r, rand)
    assert chosen is not None
    assert chosen.name == expected


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.99])
def test_a_single_predictor_always_serves(rand: float) -> None:
    chosen = match_predictor(route(PredictorRoute("main", 100, (A,))), rand)
    assert chosen is not None
    assert chosen.name == "main"


def test_predictors_without_replicas_drop_out() -> None:
    r = route(PredictorRoute("main", 90, ()), PredictorRoute("canary", 10, (B,)))
    assert [match_predictor(r, x).name for x in (0.0, 0.5, 0.99)] == ["canary"] * 3  # type: ignore[union-attr]
    assert match_predictor(route(PredictorRoute("main", 100, ())), 0.3) is None


def test_zero_weight_predictors_still_serve_when_alone() -> None:
    chosen = match_predictor(route(PredictorRoute("old", 0, (A,)), PredictorRoute("new", 0, (B,))), 0.7)
    assert chosen is not None
    assert chosen.name == "old"


@pytest.mark.parametrize(("outstanding", "rand", "exclude", "expected"), [
    ({}, 0.0, (), "r0"),
    ({}, 0.99, (), "r2"),
    ({"r0": 3, "r1": 1, "r2": 2}, 0.0, (), "r1"),
    ({"r0": 3, "r1": 1, "r2": 2}, 0.0, ("r1",), "r2"),
    ({"r0": 1, "r1": 0, "r2": 0}, 0.6, (), "r2"),
    ({}, 0.5, ("r0", "r1", "r2"), None),
])
def test_least_outstanding_requests(outstanding: dict[str, int], rand: float, exclude: tuple[str, ...],
                                    expected: str | None) -> None:
    chosen = pick_replica((A, B, C), outstanding, rand, exclude)
    assert (chosen.replica_id if chosen else None) == expected


def test_routing_table_lookup() -> None:
    table = RoutingTable.of([route(PredictorRoute("main", 100, (A,)))])
    found = table.get("default", "iris")
    assert found is not None
    assert found.ready_replicas == 1
    assert table.get("default", "other") is None
