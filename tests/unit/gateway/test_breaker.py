"""``Breaker``: one probe per backoff while open, doubling up to a ceiling; state changes reported once."""

from __future__ import annotations

import pytest

from modelpier.gateway.breaker import Breaker


def test_closed_lets_every_call_go() -> None:
    breaker = Breaker()
    assert all(breaker.attempt(t) for t in range(5))
    assert breaker.succeeded(5) is None


def test_an_outage_backs_off_doubling_and_ends_on_success() -> None:
    breaker = Breaker(initial_s=0.5, max_s=2.0)
    assert breaker.failed(10.0)  # the outage begins: reported
    assert not breaker.attempt(10.1)
    assert breaker.retry_after_s(10.1) == 1
    assert breaker.attempt(10.5)  # the probe
    assert not breaker.attempt(10.5)  # its slot is taken: concurrent calls do not dial
    assert not breaker.failed(10.6)  # still the same outage: not reported again
    assert not breaker.attempt(11.5)
    assert breaker.attempt(11.6)  # 1 s later
    breaker.failed(11.7)
    breaker.failed(13.7)
    assert breaker.backoff_s == 2.0  # the ceiling
    assert breaker.retry_after_s(13.7) == 2
    assert breaker.attempt(15.7)
    assert breaker.succeeded(15.8) == pytest.approx(5.8)  # reported once, with how long it lasted
    assert breaker.succeeded(15.9) is None
    assert breaker.attempt(16.0)
