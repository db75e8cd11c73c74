"""decide_canary: promote a step, hold, or roll back naming the metric and both values."""

from __future__ import annotations

import pytest

from modelpier.control.canary.plan import Hold, PromoteStep, Rollback, Sample, decide_canary
from modelpier.spec.deployment import CanaryAnalysis

THRESHOLDS = CanaryAnalysis(max_error_rate_increase=0.01, max_latency_ratio=1.5, min_requests=20)


def test_healthy_canary_takes_the_next_step() -> None:
    verdict = decide_canary(Sample(900, 1, 0.010), Sample(100, 0, 0.011), THRESHOLDS)
    assert isinstance(verdict, PromoteStep)
    assert verdict.kind == "promote-step"
    assert "100 canary request(s)" in verdict.reason


def test_too_few_requests_is_inconclusive() -> None:
    verdict = decide_canary(Sample(900, 0, 0.01), Sample(19, 19, 5.0), THRESHOLDS)
    assert isinstance(verdict, Hold)
    assert "19 canary request(s)" in verdict.reason
    assert "minRequests" in verdict.reason


def test_a_worse_error_rate_rolls_back_with_both_values() -> None:
    verdict = decide_canary(Sample(1000, 5, 0.01), Sample(100, 3, 0.01), THRESHOLDS)
    assert isinstance(verdict, Rollback)
    assert verdict.metric == "error rate"
    assert "canary 3.0% (3 of 100) vs stable 0.5% (5 of 1000)" in verdict.reason
    assert "maxErrorRateIncrease" in verdict.reason


@pytest.mark.parametrize(("stable_errors", "canary_errors", "rolls_back"), [
    (0, 1, False),   # exactly +1 point: allowed
    (0, 2, True),
    (10, 1, False),  # better than stable
])
def test_error_rate_threshold_edges(stable_errors: int, canary_errors: int, rolls_back: bool) -> None:
    verdict = decide_canary(Sample(100, stable_errors, 0.01), Sample(100, canary_errors, 0.01), THRESHOLDS)
    assert isinstance(verdict, Rollback) is rolls_back


def test_a_slower_p99_rolls_back_with_both_values() -> None:
    verdict = decide_canary(Sample(1000, 0, 0.020), Sample(100, 0, 0.080), THRESHOLDS)
    assert isinstance(verdict, Rollback)
    assert verdict.metric == "p99 latency"
    assert "canary 80.0 ms vs stable 20.0 ms" in verdict.reason
    assert "1.5x" in verdict.reason


@pytest.mark.parametrize(("stable_p99", "canary_p99", "rolls_back"), [
    (0.020, 0.030, False),     # exactly 1.5x
    (0.020, 0.0301, True),
    (0.0005, 0.004, False),    # 8x, but 3.5 ms: below histogram resolution
    (0.001, 0.0065, True),     # 6.5x and 5.5 ms
])
def test_latency_threshold_edges(stable_p99: float, canary_p99: float, rolls_back: bool) -> None:
    verdict = decide_canary(Sample(100, 0, stable_p99), Sample(100, 0, canary_p99), THRESHOLDS)
    assert isinstance(verdict, Rollback) is rolls_back


def test_errors_are_checked_before_latency() -> None:
    verdict = decide_canary(Sample(100, 0, 0.01), Sample(100, 50, 1.0), THRESHOLDS)
    assert isinstance(verdict, Rollback)
    assert verdict.metric == "error rate"


def test_without_stable_traffic_there_is_no_latency_baseline() -> None:
    verdict = decide_canary(Sample(), Sample(100, 0, 2.0), THRESHOLDS)
    assert isinstance(verdict, PromoteStep)
    assert "no latency baseline" in verdict.reason
    assert isinstance(decide_canary(Sample(), Sample(100, 5, 0.01), THRESHOLDS), Rollback)
