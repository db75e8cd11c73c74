"""The reconciler with an Autoscaler, over fakes: reported load becomes replicas, events and status."""

from __future__ import annotations

import asyncio

from modelpier.auth.quota import Limits
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.reconciler.loop import Reconciler
from modelpier.control.reconciler.plan import replica_count
from modelpier.control.traffic.store import TrafficStore
from modelpier.spec.deployment import ModelDeploymentSpec, PredictorSpec
from modelpier.spec.revision import RevisionKind
from modelpier.spec.traffic import DeploymentTraffic, PredictorTraffic, TrafficReport
from tests.unit.control.fakes import FakeBackend, FakeClock, FakeStore


def spec(min_replicas: int = 1, stabilization: float = 10) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [{
        "name": "main", "model": "iris:1",
        "autoscaling": {"minReplicas": min_replicas, "maxReplicas": 4, "targetInFlight": 8,
                        "stabilizationSeconds": stabilization}}]})


class World:
    def __init__(self, deployment: ModelDeploymentSpec, limits: Limits | None = None) -> None:
        self.clock = FakeClock()
        self.store, self.backend = FakeStore(self.clock), FakeBackend(self.clock)
        self.traffic = TrafficStore(self.clock)
        self.autoscaler = Autoscaler(self.traffic, lambda _: limits or Limits())
        self.reconciler = Reconciler(self.store, self.backend, self.clock, endpoint_base="http://gw",
                                     autoscaler=self.autoscaler)
        self.store.apply("default", "iris", deployment, resolved={"main": "iris:1"}, created_by="t",
                         kind=RevisionKind.APPLIED, cause="applied")
        self.started = self.clock.t

    def report(self, in_flight: int = 0, waiting: int = 0, requests: int = 0) -> None:
        counters = PredictorTraffic(name="main", requests=requests, in_flight=in_flight, waiting=waiting)
        deployment = DeploymentTraffic(project="default", deployment="iris", predictors=(counters,))
        self.traffic.record(TrafficReport(gateway="gw-1", started_at=self.started, at=self.clock.t,
                                          deployments=(deployment,)))

    def pass_(self, seconds: float = 0.5) -> None:
        self.clock.advance(seconds)
        asyncio.run(self.reconciler.reconcile_once())
        self.backend.make_ready()
        self.backend.finish_stops()

    def live(self) -> int:
        return sum(r.phase != "stopping" for r in self.backend.replicas.values())

    def messages(self, reason: str) -> list[str]:
        return [e.message for e in self.store.event_log[("default", "iris")] if e.reason == reason]


def test_load_scales_up_at_once_and_down_after_the_window() -> None:
    w = World(spec())
    w.pass_()
    assert w.live() == 1
    w.report(in_flight=24)
    w.pass_()
    assert w.live() == 3
    assert w.messages("ScaledUp") == ["Scaled predictor main from 1 to 3: 24 in flight, target 8 per replica"]
    w.pass_()
    status = w.store.get("default", "iris").status
    assert (status.predictors[0].desired_replicas, status.predictors[0].ready_replicas) == (3, 3)
    assert [(v.predictor, v.desired, v.ready) for v in w.autoscaler.views()] == [("main", 3, 3)]
    for _ in range(18):  # 9 s of low load: not yet
        w.report(in_flight=2)
        w.pass_()
    assert w.live() == 3
    for _ in range(4):
        w.report(in_flight=2)
        w.pass_()
    assert w.live() == 1
    assert "from 3 to 1" in w.messages("ScaledDown")[0]
    assert w.autoscaler.decisions[("default", "iris", "main", "down")] == 1


def test_scale_to_zero_and_wake_on_waiting() -> None:
    w = World(spec(min_replicas=0, stabilization=2))
    w.pass_()
    assert w.live() == 1  # starts warm
    for _ in range(6):
        w.pass_()
    assert w.live() == 0
    assert "no traffic for 2s" in w.messages("ScaledDown")[0]
    status = w.store.get("default", "iris").status
    assert status.condition("Ready") is not None
    w.report(waiting=1)
    w.pass_(0.1)
    assert w.live() == 1
    assert w.messages("ScaledUp")[-1] == ("Scaled predictor main from 0 to 1: 1 request(s) waiting for a cold "
                                          "start")


def test_the_quota_caps_scaling_and_is_recorded_once() -> None:
    w = World(spec(), Limits(replicas=2))
    w.pass_()
    for _ in range(3):
        w.report(in_flight=32)
        w.pass_()
    assert w.live() == 2
    refusals = w.messages("ScaleLimitedByQuota")
    assert len(refusals) == 1
    assert "needs 4 replicas but the project quota allows 2" in refusals[0]
    assert "replicas: limit 2, would use 3" in refusals[0]
    assert [v.limited_by_quota for v in w.autoscaler.views()] == [True]


def test_a_failing_autoscaler_keeps_the_last_counts() -> None:
    w = World(spec())
    w.pass_()
    w.report(in_flight=24)
    w.pass_()

    def broken(_: str) -> Limits:
        raise RuntimeError("auth store down")

    w.autoscaler = Autoscaler(w.traffic, broken)
    w.reconciler = Reconciler(w.store, w.backend, w.clock, endpoint_base="http://gw", autoscaler=w.autoscaler)
    w.pass_()
    assert w.reconciler.failures["autoscale"] == 1
    assert w.live() == 3  # a fresh autoscaler has no counts: nothing jumps below what runs


def test_replica_count_without_a_decision_is_the_initial_one() -> None:
    p = PredictorSpec.model_validate({"name": "main", "model": "iris:1", "replicas": 5,
                                      "autoscaling": {"minReplicas": 0, "maxReplicas": 3}})
    assert replica_count(p) == 1
    assert replica_count(p, {"main": 0}) == 0
    assert replica_count(p.model_copy(update={"autoscaling": None})) == 5
