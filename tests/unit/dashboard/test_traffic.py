"""Chart data from the traffic summary (the contract's shape); anything else is "no traffic data yet"."""

from __future__ import annotations

from typing import Any

import pytest

from modelpier.dashboard.traffic import NO_DATA, SUMMARY_COLUMNS, chart_data

BODY: dict[str, Any] = {
    "window": 300, "step": 5,
    "predictors": [{"name": "main", "requestRate": 41.2, "errorRate": 0.01, "p50Ms": 2.1, "p99Ms": 9.8,
                    "inFlight": 3, "waiting": 0, "cacheHitRate": 0.1, "readyReplicas": 2, "desiredReplicas": 2},
                   {"name": "canary", "requestRate": 0, "errorRate": 0, "p50Ms": None, "p99Ms": None,
                    "inFlight": 0, "readyReplicas": 1, "desiredReplicas": 1}],
    "shadow": None,
    "series": [
        {"t": 100.0, "predictors": {"main": {"requestRate": 40.0, "errorRate": 0.0, "p50Ms": 2.0, "p99Ms": 9.0,
                                             "inFlight": 3, "replicas": 1, "readyReplicas": 1,
                                             "desiredReplicas": 2}}},
        {"t": 105.0, "predictors": {"main": {"requestRate": 42.0, "errorRate": 0.02, "p50Ms": 2.2, "p99Ms": 10.0,
                                             "inFlight": 0, "replicas": 0, "readyReplicas": 2,
                                             "desiredReplicas": 2},
                                    "canary": {"requestRate": 1.0, "errorRate": 0.0, "p50Ms": None, "p99Ms": None,
                                               "inFlight": 0, "replicas": 1, "readyReplicas": 1,
                                               "desiredReplicas": 1}}},
    ],
}


def test_one_line_per_predictor_and_gaps_where_a_predictor_has_no_point() -> None:
    data = chart_data(BODY)
    assert data["available"] is True
    charts = {c["id"]: c for c in data["charts"]}
    assert list(charts) == ["requests", "errors", "latency", "replicas"]
    assert charts["requests"]["t"] == [100.0, 105.0]
    assert charts["requests"]["series"] == [{"label": "main", "values": [40.0, 42.0]},  # the summary's order
                                            {"label": "canary", "values": [None, 1.0]}]
    assert charts["errors"]["series"][0] == {"label": "main", "values": [0.0, 2.0]}  # percent
    assert [s["label"] for s in charts["latency"]["series"]] == ["main p50", "main p99", "canary p50", "canary p99"]
    assert charts["latency"]["series"][2]["values"] == [None, None]
    # Ready and desired replicas, not the busy ones ("replicas": with a request in flight, 1 then 0).
    assert charts["replicas"]["series"] == [{"label": "main ready", "values": [1.0, 2.0]},
                                            {"label": "main desired", "values": [2.0, 2.0]},
                                            {"label": "canary ready", "values": [None, 1.0]},
                                            {"label": "canary desired", "values": [None, 1.0]}]


def test_the_summary_is_text_per_predictor() -> None:
    summary = chart_data(BODY)["summary"]
    assert summary[0] == {"name": "main", "Requests": "41.20 req/s", "Errors": "1.00 %", "p50": "2.1 ms",
                          "p99": "9.8 ms", "In flight": "3", "Replicas": "2/2"}
    assert summary[1]["p99"] == "\u2013"
    assert set(summary[0]) == set(SUMMARY_COLUMNS)


@pytest.mark.parametrize("body", [None, {}, {"series": []}, {"series": [{"t": "x"}, "junk", {"predictors": {}}]},
                                  "not a dict"])
def test_nothing_usable_is_no_traffic_data_yet(body: Any) -> None:
    assert chart_data(body) == {"available": False, "message": NO_DATA}


def test_malformed_values_become_gaps_not_errors() -> None:
    body = {"series": [{"t": 1, "predictors": {"main": {"requestRate": "fast", "errorRate": True,
                                                         "readyReplicas": 1, "desiredReplicas": None}}}],
            "predictors": [{"name": "main", "requestRate": "fast"}, {"no": "name"}]}
    data = chart_data(body)
    charts = {c["id"]: c for c in data["charts"]}
    assert charts["requests"]["series"][0]["values"] == [None]
    assert charts["errors"]["series"][0]["values"] == [None]
    assert charts["replicas"]["series"][0]["values"] == [1.0]
    assert charts["replicas"]["series"][1]["values"] == [None]  # unknown: a gap
    assert [r["name"] for r in data["summary"]] == ["main"]
