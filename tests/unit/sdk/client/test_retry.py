"""The client's retry decision: only calls the model cannot have seen, with backoff, within the deadline."""

from __future__ import annotations

import pytest

from modelpier.sdk.client.retry import Failure, RetryPolicy, decide_retry

POLICY = RetryPolicy(retries=3, base_s=0.1, max_backoff_s=1.0)


@pytest.mark.parametrize(("failure", "attempt", "remaining", "jitter", "retry_after", "wait"), [
    (Failure.NOT_CONNECTED, 0, 10.0, 0.0, None, 0.05),  # half the backoff at the lowest jitter
    (Failure.NOT_CONNECTED, 0, 10.0, 1.0, None, 0.1),
    (Failure.NOT_CONNECTED, 2, 10.0, 1.0, None, 0.4),  # exponential
    (Failure.NOT_CONNECTED, 3, 10.0, 0.5, None, None),  # out of retries
    (Failure.REFUSED, 0, 10.0, 0.0, 2.0, 2.0),  # at least the server's Retry-After
    (Failure.REFUSED, 0, 1.5, 0.0, 2.0, None),  # ... unless it would pass the deadline
    (Failure.OTHER, 0, 10.0, 0.0, None, None),  # may have reached the model: never
    (Failure.OTHER, 0, 10.0, 0.0, 1.0, None),
])
def test_decide_retry(failure: Failure, attempt: int, remaining: float, jitter: float,
                      retry_after: float | None, wait: float | None) -> None:
    got = decide_retry(POLICY, failure, attempt, remaining_s=remaining, jitter=jitter, retry_after_s=retry_after)
    assert got == pytest.approx(wait) if wait is not None else got is None


def test_backoff_is_capped() -> None:
    got = decide_retry(RetryPolicy(retries=50, base_s=0.1, max_backoff_s=1.0), Failure.NOT_CONNECTED, 20,
                       remaining_s=100.0, jitter=1.0)
    assert got == 1.0


def test_no_retries_when_the_policy_allows_none() -> None:
    assert decide_retry(RetryPolicy(retries=0), Failure.NOT_CONNECTED, 0, remaining_s=10.0, jitter=0.5) is None
