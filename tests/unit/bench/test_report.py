"""Building the bench report from what the load recorded: counts, rates, percentiles, JSON."""

from __future__ import annotations

import json

import pytest

from modelpier.bench.histogram import LatencyHistogram
from modelpier.bench.report import REPORT_FORMAT, build_report, outcome_line


def histogram(*latencies_ms: float) -> LatencyHistogram:
    h = LatencyHistogram()
    for ms in latencies_ms:
        h.record(ms / 1000)
    return h


def test_report_counts_rates_and_percentiles() -> None:
    latencies = [float(i) for i in range(1, 101)]  # 1..100 ms
    report = build_report(target="default/iris", url="http://gw/default/iris/v2/models/iris/infer", method="POST",
                          concurrency=4, warmup_s=1.0, elapsed_s=2.0, histogram=histogram(*latencies),
                          statuses={200: 90, 503: 10}, errors={"timeout": 4})
    assert report.requests == 104
    assert report.ok == 90
    assert report.failed == 14
    assert report.throughput_rps == 52.0
    assert report.ok_rps == 45.0
    lat = report.latency
    assert lat.count == 100
    assert lat.min_ms == 1.0
    assert lat.max_ms == 100.0
    assert lat.p50_ms == pytest.approx(50, rel=0.006)
    assert lat.p90_ms == pytest.approx(90, rel=0.006)
    assert lat.p99_ms == pytest.approx(99, rel=0.006)
    assert lat.mean_ms == pytest.approx(50.5)
    assert report.status_counts == {"200": 90, "503": 10}
    assert outcome_line(report) == "200 x 90, 503 x 10, timeout x 4"


def test_report_is_json_with_a_format_number() -> None:
    report = build_report(target="t", url="http://x", method="POST", concurrency=1, warmup_s=0, elapsed_s=1.0,
                          histogram=histogram(2.0), statuses={200: 1}, errors={})
    body = json.loads(json.dumps(report.to_dict()))
    assert body["format"] == REPORT_FORMAT
    assert body["latency"]["p99_ms"] == 2.0
    assert body["status_counts"] == {"200": 1}
    assert "log buckets" in body["histogram"]


def test_nothing_measured_gives_zero_rates_not_a_division_error() -> None:
    report = build_report(target="t", url="http://x", method="POST", concurrency=1, warmup_s=0, elapsed_s=0.0,
                          histogram=LatencyHistogram(), statuses={}, errors={})
    assert (report.requests, report.throughput_rps, report.latency.p50_ms, report.latency.min_ms) == (0, 0.0, 0.0, 0.0)
    assert outcome_line(report) == "nothing"


def test_statuses_sorted_and_errors_most_frequent_first() -> None:
    report = build_report(target="t", url="http://x", method="POST", concurrency=1, warmup_s=0, elapsed_s=1.0,
                          histogram=LatencyHistogram(), statuses={503: 1, 200: 2, 404: 3},
                          errors={"b": 1, "a": 1, "connect: Connection refused": 5})
    assert list(report.status_counts) == ["200", "404", "503"]
    assert list(report.errors) == ["connect: Connection refused", "a", "b"]
