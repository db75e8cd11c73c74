"""``ReplicaHistory``: ready/desired replicas per predictor over time, for the charts; and the traffic body
built on it (issue 14: the Replicas chart showed busy replicas, and a finished canary left the charts)."""

from __future__ import annotations

from modelpier.control.api.traffic_wire import TrafficBody
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import PredictorWindow, SeriesPoint, TrafficWindow
from modelpier.spec.deployment import ModelDeploymentStatus
from tests.unit.control.fakes import EPOCH, FakeClock

KEY = ("default", "iris")


def t(clock: FakeClock) -> float:
    return (EPOCH.timestamp() + clock.t)


def test_the_counts_in_force_at_a_time_and_unknown_before_the_first() -> None:
    clock = FakeClock()
    history = ReplicaHistory(clock)
    start = t(clock)
    history.record(KEY, {"main": (1, 2)})
    clock.advance(5)
    history.record(KEY, {"main": (2, 2)})
    history.record(KEY, {"main": (2, 2)})  # unchanged: no new point
    assert history.at(KEY, start - 1) is None
    assert history.at(KEY, start + 1) == {"main": (1, 2)}
    assert history.at(KEY, start + 10) == {"main": (2, 2)}
    assert history.at(("default", "other"), start) is None


def test_a_predictor_that_ran_in_the_window_is_seen_after_it_is_gone() -> None:
    clock = FakeClock()
    history = ReplicaHistory(clock, retention_s=100)
    history.record(KEY, {"main": (2, 2)})
    clock.advance(10)
    history.record(KEY, {"main": (2, 2), "canary": (1, 1)})
    clock.advance(10)
    history.record(KEY, {"main": (2, 2)})  # the canary ended
    now = t(clock)
    assert history.seen(KEY, now - 15) == ["main", "canary"]
    assert history.seen(KEY, now - 5) == ["main", "canary"]  # it still ran then
    assert history.seen(KEY, now) == ["main"]
    clock.advance(500)
    history.record(KEY, {"main": (3, 3)})  # older changes beyond the retention go, but one baseline stays
    assert history.at(KEY, t(clock) - 1) == {"main": (2, 2)}


def test_the_series_carries_ready_and_desired_replicas_of_each_step() -> None:
    clock = FakeClock()
    history = ReplicaHistory(clock)
    history.record(KEY, {"main": (1, 2)})
    first = t(clock)
    clock.advance(5)
    history.record(KEY, {"main": (2, 2)})
    busy = PredictorWindow("main", requests=10, replicas=1)  # one replica had a request in flight
    window = TrafficWindow(10, 5, first + 5, {"main": busy},
                           series=(SeriesPoint(first - 1, {"main": busy}), SeriesPoint(first + 1, {"main": busy}),
                                   SeriesPoint(first + 6, {"main": busy})))
    status = ModelDeploymentStatus.model_validate({"predictors": [
        {"name": "main", "readyReplicas": 2, "desiredReplicas": 2}]})
    body = TrafficBody.of(window, ["main"], status, lambda at: history.at(KEY, at)).model_dump(by_alias=True)
    points = [p["predictors"]["main"] for p in body["series"]]
    assert [(p["readyReplicas"], p["desiredReplicas"], p["replicas"]) for p in points] == [
        (None, None, 1), (1, 2, 1), (2, 2, 1)]
    flat = TrafficBody.of(window, ["main"], status).model_dump(by_alias=True)  # no history: the status of now
    assert {p["predictors"]["main"]["readyReplicas"] for p in flat["series"]} == {2}


def test_current_counts_are_those_of_deployments_recorded_lately() -> None:
    clock = FakeClock()
    history = ReplicaHistory(clock)
    history.record(KEY, {"main": (1, 2)})
    history.record(("default", "gone"), {"main": (1, 1)})
    clock.advance(20)
    history.record(KEY, {"main": (1, 2)})  # unchanged, but looked at: still current
    assert history.current(10) == {KEY: {"main": (1, 2)}}
    assert history.current(30) == {KEY: {"main": (1, 2)}, ("default", "gone"): {"main": (1, 1)}}
