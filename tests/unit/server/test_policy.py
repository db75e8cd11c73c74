"""The flush policy is pure: a matrix of queue views and the decision each must get."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelpier.server.batching.policy import (
    FLUSH,
    IDLE,
    CostEstimate,
    FlushDecision,
    QueueView,
    decide_flush,
    decide_lone,
    ewma,
)

BASE = QueueView(
    now=10.0, queued_rows=4, oldest_at=10.0, busy=False, max_batch_size=64, max_latency_s=0.005,
    call_cost_s=0.008, arrival_interval_s=0.0002, typical_rows=None,
)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"queued_rows": 0}, IDLE),
    ({"busy": True}, IDLE),
    ({"busy": True, "queued_rows": 64}, IDLE),  # a running call is never doubled up
    ({"queued_rows": 64}, FLUSH),  # full
    ({"queued_rows": 100}, FLUSH),  # one oversized request goes alone
    ({"now": 10.005}, FLUSH),  # the oldest waited max_latency
    ({"call_cost_s": None}, FLUSH),  # no evidence that waiting pays
    ({"arrival_interval_s": None}, FLUSH),
    ({"arrival_interval_s": 0.01}, FLUSH),  # sparse: next arrival expected after the horizon
    ({"typical_rows": 4.0}, FLUSH),  # as many as usual: everyone is here
    ({"call_cost_s": 0.0001, "now": 10.0001}, FLUSH),  # held as long as a call costs
    ({}, FlushDecision(flush=False, recheck_at=10.005)),  # a busy stream: wait until the horizon
    ({"call_cost_s": 0.002}, FlushDecision(flush=False, recheck_at=10.002)),  # horizon = call cost
    ({"typical_rows": 32.0}, FlushDecision(flush=False, recheck_at=10.005)),
], ids=str)
def test_decide_flush(changes: dict[str, object], expected: FlushDecision) -> None:
    assert decide_flush(replace(BASE, **changes)) == expected  # type: ignore[arg-type]


def test_a_lone_request_on_an_idle_model_is_not_held() -> None:
    # One client, one request at a time: arrivals every 8.5 ms on a model costing 8 ms.
    view = replace(BASE, queued_rows=1, arrival_interval_s=0.0085)
    assert decide_flush(view) == FLUSH


def test_ewma_starts_at_the_first_sample_and_moves_a_fifth_of_the_way() -> None:
    assert ewma(None, 3.0) == 3.0
    assert ewma(1.0, 2.0) == pytest.approx(1.2)


def test_cost_estimate_learns_fixed_and_per_row_cost() -> None:
    cost = CostEstimate()
    assert cost.fixed_s is None
    assert cost.predict_s(1) is None
    for _ in range(60):
        for rows in (1, 8, 32):
            cost = cost.observe(rows, 0.001 + 0.0001 * rows)
    assert cost.per_row_s == pytest.approx(0.0001, rel=0.05)
    assert cost.fixed_s == pytest.approx(0.001, rel=0.05)
    assert cost.predict_s(10) == pytest.approx(0.002, rel=0.05)


def test_cost_estimate_of_a_single_batch_size_is_its_mean_time() -> None:
    cost = CostEstimate()
    for _ in range(10):
        cost = cost.observe(1, 0.0002)
    assert cost.per_row_s == 0.0
    assert cost.fixed_s == pytest.approx(0.0002)


@pytest.mark.parametrize(("cost", "interval", "at_once"), [
    (None, 0.01, False),  # no cost estimate yet
    (0.0001, None, False),  # no arrival rate yet: wait for the iteration's burst
    (0.0001, 0.0004, True),  # one connection: a 100 us model, a request every 400 us
    (0.0002, 0.00005, False),  # under load: four more arrivals expected within one call
    (0.008, 0.005, False),  # a model slower than the latency bound: the bound decides (rule 2)
])
def test_decide_lone_sends_a_request_at_once_only_when_arrivals_are_sparse(
        cost: float | None, interval: float | None, at_once: bool) -> None:
    assert decide_lone(0.005, cost, interval, 1.0) is at_once


@pytest.mark.parametrize(("typical_requests", "at_once"), [
    (None, True),  # no batch yet: the arrival rate alone decides
    (1.0, True),  # one client: every batch is one request
    (1.4, True),  # a second client now and then
    (1.5, False),  # batches merge requests: several clients, however sparse arrivals look
    (7.0, False),  # eight connections
])
def test_decide_lone_waits_while_recent_batches_merged_requests(
        typical_requests: float | None, at_once: bool) -> None:
    # 400 us between arrivals, a 100 us model: sparse by the arrival rate (as an inline run makes a
    # busy loop look), so only the batches' size can tell.
    assert decide_lone(0.005, 0.0001, 0.0004, typical_requests) is at_once
