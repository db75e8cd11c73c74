"""decide_scale: the local autoscaler's policy, driven through time by hand."""

from __future__ import annotations

import pytest

from modelpier.auth.quota import Limits, Resources
from modelpier.control.reconciler.autoscale_policy import (
    Load,
    ScaleState,
    decide_scale,
    exceeded,
    headroom,
    initial_replicas,
    replica_cost,
    seed_state,
)
from modelpier.spec.deployment import Autoscaling, PredictorSpec

T0 = 1_000_000.0


def spec(**kw: float) -> Autoscaling:
    return Autoscaling.model_validate({"minReplicas": 1, "maxReplicas": 6, "targetInFlight": 8,
                                       "stabilizationSeconds": 30, **kw})


class Scaler:
    """Feeds loads to the policy as the reconciler does, one decision per call, keeping the state."""

    def __init__(self, autoscaling: Autoscaling, replicas: int, now: float = T0) -> None:
        self.spec, self.now = autoscaling, now
        self.state = ScaleState(replicas, ((now, replicas),))

    def at(self, seconds: float, load: Load, **kw: object) -> int:
        self.now += seconds
        decision, self.state = decide_scale(self.spec, self.state, load, self.now, **kw)  # type: ignore[arg-type]
        self.last = decision
        return decision.replicas


@pytest.mark.parametrize(("in_flight", "current", "expected"), [
    (24, 1, 3),    # ceil(24 / 8)
    (25, 1, 4),
    (8, 1, 1),
    (100, 1, 6),   # capped at maxReplicas
    (0, 1, 1),     # minReplicas
])
def test_scale_up_is_immediate(in_flight: int, current: int, expected: int) -> None:
    assert Scaler(spec(), current).at(0.5, Load(in_flight=in_flight)) == expected


def test_the_reason_reads_like_the_event() -> None:
    s = Scaler(spec(), 1)
    s.at(0.5, Load(in_flight=24))
    assert s.last.changed
    assert s.last.reason == "24 in flight, target 8 per replica"
    s.at(0.5, Load(in_flight=100))
    assert s.last.reason == "100 in flight, target 8 per replica; capped at maxReplicas 6"


def test_scale_down_waits_for_the_stabilization_window() -> None:
    s = Scaler(spec(), 1)
    assert s.at(1, Load(in_flight=24)) == 3
    assert s.at(1, Load(in_flight=4)) == 3   # below target, but not for long
    assert s.at(28, Load(in_flight=4)) == 3  # 29 s after the last high recommendation
    assert s.at(1.5, Load(in_flight=4)) == 1
    assert "below that for 30s" in s.last.reason


def test_scale_down_goes_to_the_highest_recommendation_of_the_window() -> None:
    s = Scaler(spec(), 1)
    s.at(1, Load(in_flight=48))                     # 6
    s.at(10, Load(in_flight=20))                    # recommends 3
    assert s.at(10, Load(in_flight=4)) == 6
    assert s.at(11, Load(in_flight=4)) == 3         # the 6 left the window; the 3 has not
    assert s.at(10, Load(in_flight=4)) == 1


def test_a_burst_inside_the_window_keeps_the_replicas() -> None:
    s = Scaler(spec(), 1)
    s.at(1, Load(in_flight=24))
    for _ in range(5):
        assert s.at(10, Load(in_flight=2)) == 3
        assert s.at(10, Load(in_flight=24)) == 3  # each burst renews the window: no flapping


def test_light_traffic_never_scales_to_zero() -> None:
    s = Scaler(spec(minReplicas=0), 1)
    for _ in range(10):
        assert s.at(10, Load(requests=5)) == 1  # fast requests: nothing in flight at the instant, but traffic


def test_scale_to_zero_after_a_whole_window_without_traffic() -> None:
    s = Scaler(spec(minReplicas=0, stabilizationSeconds=20), 1)
    assert s.at(10, Load()) == 1
    assert s.at(9.5, Load()) == 1  # the seed recommendation (1) is 19.5 s old
    assert s.at(0.5, Load()) == 0
    assert "no traffic for 20s" in s.last.reason


def test_minimum_one_never_scales_to_zero() -> None:
    s = Scaler(spec(minReplicas=1, stabilizationSeconds=5), 2)
    for _ in range(5):
        s.at(10, Load())
    assert s.state.replicas == 1


def test_waiting_requests_wake_a_scaled_to_zero_predictor_at_once() -> None:
    s = Scaler(spec(minReplicas=0), 0)
    assert s.at(0.1, Load(waiting=1)) == 1
    assert s.last.reason == "1 request(s) waiting for a cold start"


def test_many_waiting_requests_start_enough_replicas() -> None:
    assert Scaler(spec(minReplicas=0), 0).at(0.1, Load(waiting=20)) == 3


def test_zero_stabilization_follows_the_load() -> None:
    s = Scaler(spec(stabilizationSeconds=0), 1)
    assert s.at(1, Load(in_flight=40)) == 5
    assert s.at(1, Load(in_flight=8)) == 1


def test_a_lowered_max_applies_at_once() -> None:
    s = Scaler(spec(), 6)
    s.spec = spec(maxReplicas=2)
    assert s.at(1, Load(in_flight=48)) == 2
    assert s.last.reason == "maxReplicas is 2"


def test_a_raised_min_applies_at_once() -> None:
    s = Scaler(spec(), 1)
    s.spec = spec(minReplicas=3)
    assert s.at(1, Load()) == 3


def test_the_quota_caps_a_scale_up_and_says_why() -> None:
    s = Scaler(spec(), 1)
    assert s.at(1, Load(in_flight=40), headroom=2, quota="replicas: limit 3, would use 4 (over by 1)") == 3
    assert s.last.quota is not None
    assert "needs 5 replicas but the project quota allows 3" in s.last.quota
    assert "replicas: limit 3" in s.last.reason
    assert s.state.quota_note == s.last.quota


def test_the_quota_never_refuses_a_scale_down() -> None:
    s = Scaler(spec(stabilizationSeconds=0), 4)
    assert s.at(1, Load(in_flight=8), headroom=-3) == 1
    assert s.last.quota is None


def test_no_headroom_at_all_holds_the_count() -> None:
    s = Scaler(spec(), 2)
    assert s.at(1, Load(in_flight=40), headroom=-1) == 2
    assert s.last.quota is not None
    assert not s.last.changed


def test_seeding_from_what_runs() -> None:
    a = spec(minReplicas=0, maxReplicas=4)
    assert initial_replicas(a) == 1
    assert seed_state(a, 0, T0).replicas == 1
    assert seed_state(a, 3, T0).replicas == 3
    assert seed_state(a, 9, T0).replicas == 4
    assert seed_state(spec(minReplicas=2), 0, T0).replicas == 2


def test_headroom_and_exceeded_use_the_quota_check() -> None:
    p = PredictorSpec.model_validate({"name": "main", "model": "iris:1", "resources": {"cpu": "500m",
                                                                                      "memory": "1Gi"}})
    cost = replica_cost(p)
    usage = Resources(replicas=2, cpu_millis=1000, memory_bytes=2 * 1024**3, deployments=1)
    assert headroom(usage, cost, Limits()) is None
    assert headroom(usage, cost, Limits(replicas=5)) == 3
    assert headroom(usage, cost, Limits(replicas=5, cpu_millis=2000)) == 2
    assert headroom(usage, cost, Limits(replicas=1)) == -1
    over = exceeded(usage, cost, 3, Limits(replicas=5, cpu_millis=2000))
    assert [e.quota for e in over] == ["cpu_millis"]
    assert over[0].would_use == 2500
