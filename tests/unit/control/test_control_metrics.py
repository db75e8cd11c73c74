"""``ControlMetrics`` over a reconciler with fakes: the desired replicas of every predictor, fixed or
autoscaled, and the autoscaling bounds, as the Grafana dashboard's replicas panel reads them (issue 16:
the panel read a HorizontalPodAutoscaler's series, and the Kubernetes backend makes none)."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from modelpier.control.api.metrics import DESIRED_MAX_AGE_S, ControlMetrics
from modelpier.control.canary.driver import CanaryRun
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.reconciler.loop import Reconciler
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import TrafficStore
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from tests.unit.control.fakes import FakeBackend, FakeClock, FakeStore

SPEC = ModelDeploymentSpec.model_validate({"predictors": [
    {"name": "fixed", "model": "iris:1", "replicas": 2, "weight": 50},
    {"name": "auto", "model": "iris:1", "weight": 50,
     "autoscaling": {"minReplicas": 1, "maxReplicas": 5, "targetInFlight": 8}}]})
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class NoCanaries:
    def runs(self) -> list[CanaryRun]:
        return []


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store, self.backend = FakeStore(self.clock), FakeBackend(self.clock)
        traffic = TrafficStore(self.clock)
        autoscaler = Autoscaler(traffic)
        history = ReplicaHistory(self.clock)
        self.reconciler = Reconciler(self.store, self.backend, self.clock, endpoint_base="http://gw",
                                     autoscaler=autoscaler, on_status=history.record_status)
        self.metrics = ControlMetrics(traffic, NoCanaries(), autoscaler, history)
        self.store.ensure_project("acme")
        self.store.apply("acme", "iris", SPEC, resolved={"fixed": "iris:1", "auto": "iris:1"}, created_by="t",
                         kind=RevisionKind.APPLIED, cause="applied")

    def pass_(self, seconds: float = 0.5) -> None:
        self.clock.advance(seconds)
        asyncio.run(self.reconciler.reconcile_once())
        self.backend.make_ready()

    def samples(self, *names: str) -> Samples:
        text = self.metrics.render().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples if s.name in names}


def labels(predictor: str) -> tuple[tuple[str, str], ...]:
    return (("deployment", "iris"), ("predictor", predictor), ("project", "acme"))


def test_every_predictor_has_its_desired_replicas_and_an_autoscaled_one_its_bounds() -> None:
    w = World()
    assert w.samples("modelpier_deployment_desired_replicas") == {}  # no pass yet: unknown, not zero
    w.pass_()
    assert w.samples("modelpier_deployment_desired_replicas", "modelpier_autoscaler_desired_replicas",
                     "modelpier_autoscaler_min_replicas", "modelpier_autoscaler_max_replicas") == {
        ("modelpier_deployment_desired_replicas", labels("auto")): 1.0,
        ("modelpier_deployment_desired_replicas", labels("fixed")): 2.0,  # fixed `replicas`: no autoscaler series
        ("modelpier_autoscaler_desired_replicas", labels("auto")): 1.0,
        ("modelpier_autoscaler_min_replicas", labels("auto")): 1.0,
        ("modelpier_autoscaler_max_replicas", labels("auto")): 5.0,
    }


def test_a_deleted_deployment_drops_out_once_no_pass_looks_at_it() -> None:
    w = World()
    w.pass_()
    w.store.request_delete("acme", "iris")
    w.pass_()
    assert w.samples("modelpier_deployment_desired_replicas")  # still the last pass's counts, for a while
    w.pass_(DESIRED_MAX_AGE_S + 1)
    assert w.samples("modelpier_deployment_desired_replicas", "modelpier_autoscaler_max_replicas") == {}


def test_a_control_plane_that_stops_reconciling_stops_exporting_desired_counts() -> None:
    """A standby (another replica leads) exports none, so two control planes never disagree on a series."""
    w = World()
    w.pass_()
    w.clock.advance(DESIRED_MAX_AGE_S + 1)
    assert w.samples("modelpier_deployment_desired_replicas") == {}
