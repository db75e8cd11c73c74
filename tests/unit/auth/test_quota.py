from __future__ import annotations

from modelpier.auth.quota import Exceeded, Limits, Resources, check_quota


def test_a_request_within_limits_passes() -> None:
    assert check_quota(Resources(replicas=2), Resources(replicas=2), Limits(replicas=4)) == []


def test_each_exceeded_quota_is_named_with_how_much() -> None:
    out = check_quota(Resources(replicas=3, gpus=1), Resources(replicas=2, gpus=2, cpu_millis=500),
                      Limits(replicas=4, gpus=2))
    assert out == [Exceeded("replicas", 4, 5), Exceeded("gpus", 2, 3)]
    assert out[0].over_by == 1
    assert out[0].message() == "replicas: limit 4, would use 5 (over by 1)"


def test_unlimited_and_shrinking_requests_never_fail() -> None:
    assert check_quota(Resources(replicas=100), Resources(replicas=50), Limits()) == []
    # Over already (the limit was lowered): scaling down is still allowed.
    assert check_quota(Resources(replicas=10), Resources(replicas=-2), Limits(replicas=4)) == []
