"""The gateway's traffic report: the one ``spec.traffic.TrafficReport`` type, in the wire form the control
plane has always read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from modelpier.gateway.stats import BUCKETS, TrafficStats
from modelpier.spec.traffic import TrafficReport


def busy_stats() -> TrafficStats:
    stats = TrafficStats()
    main = stats.predictor("acme", "iris", "main")
    main.observe(200, 0.004)
    main.observe(503, 0.2)
    main.rejected, main.retries, main.cache_hits, main.in_flight, main.waiting = 1, 2, 3, 4, 5
    main.replicas.update({"r1": 2, "r0": 0})
    stats.predictor("acme", "iris", "canary").observe(200, 40.0)
    shadow = stats.shadow("acme", "iris", "canary")
    shadow.mirrored, shadow.compared, shadow.agreed, shadow.abs_error_sum = 3, 2, 1, 0.5
    stats.predictor("default", "wine", "main")
    return stats


def legacy_wire(stats: TrafficStats, gateway: str, started_at: float, at: float) -> dict[str, Any]:
    """The dict the gateway built by hand before the report had a type (gateway/stats.py until 0007)."""
    le: list[float | str] = [*BUCKETS, "+Inf"]
    deployments = []
    for (project, deployment), names in [(("acme", "iris"), ["canary", "main"]), (("default", "wine"), ["main"])]:
        shadow = stats.shadow("acme", "iris", "canary") if deployment == "iris" else None
        deployments.append({"project": project, "deployment": deployment, "predictors": [
            {"name": name, "requests": s.requests, "errors": s.errors, "rejected": s.rejected,
             "retries": s.retries, "cacheHits": s.cache_hits, "inFlight": s.in_flight, "waiting": s.waiting,
             "replicas": {r: n for r, n in s.replicas.items() if n > 0},
             "latency": {"le": le, "counts": s.cumulative(), "sum": s.latency_sum}}
            for name in names for s in [stats.predictor(project, deployment, name)]],
            "shadow": None if shadow is None else {
                "predictor": shadow.predictor, "mirrored": shadow.mirrored, "failed": shadow.failed,
                "compared": shadow.compared, "agreed": shadow.agreed, "numeric": shadow.numeric,
                "absErrorSum": shadow.abs_error_sum}})
    return {"gateway": gateway, "startedAt": started_at, "at": at, "deployments": deployments}


def test_the_report_is_byte_for_byte_the_hand_built_dict_it_replaced() -> None:
    stats = busy_stats()
    wire = stats.snapshot("gw-1", 100.0, 101.5).model_dump(mode="json", by_alias=True)
    assert json.dumps(wire) == json.dumps(legacy_wire(stats, "gw-1", 100.0, 101.5))
    assert wire["deployments"][0]["predictors"][1]["replicas"] == {"r1": 2}
    assert wire["deployments"][0]["predictors"][1]["latency"]["le"][-1] == "+Inf"


def test_what_the_gateway_sends_is_what_the_control_plane_reads() -> None:
    report = busy_stats().snapshot("gw-1", 100.0, 101.5)
    received = TrafficReport.model_validate_json(json.dumps(report.model_dump(mode="json", by_alias=True)))
    assert received == report
    iris = received.deployment(("acme", "iris"))
    assert iris is not None
    main = iris.predictor("main")
    assert main is not None
    assert (main.errors, main.latency.total if main.latency else None) == (1, 2)
    assert received.waiting()


@pytest.mark.parametrize("latency", [
    {"le": [0.1, 0.2], "counts": [1, 2], "sum": 0.1},  # no +Inf
    {"le": [0.2, 0.1, "+Inf"], "counts": [1, 2, 3], "sum": 0.1},  # not increasing
    {"le": [0.1, "inf"], "counts": [1, 2], "sum": 0.1},  # infinity is spelled +Inf
    {"le": [0.1, "+Inf"], "counts": [2, 1], "sum": 0.1},  # not cumulative
    {"le": [0.1, "+Inf"], "counts": [1], "sum": 0.1},  # one count per bound
])
def test_a_malformed_histogram_is_refused(latency: dict[str, object]) -> None:
    body = {"gateway": "gw", "startedAt": 0, "at": 1, "deployments": [
        {"project": "p", "deployment": "d", "predictors": [{"name": "main", "latency": latency}]}]}
    with pytest.raises(ValidationError):
        TrafficReport.model_validate(body)
