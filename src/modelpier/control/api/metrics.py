"""Prometheus metrics of the control plane, in a registry of its own (never the process-global one).

Collected when scraped (``GET /api/v1/metrics``, platform admin), from the objects that already
hold the numbers; nothing is counted twice. Exported:

- ``modelpier_deployment_desired_replicas{project,deployment,predictor}``: the replicas the
  reconciler runs each predictor at, fixed (``replicas``) or autoscaled, as its last pass derived
  them for the status (``ReplicaHistory``); only while this control plane reconciles (a standby
  exports none);
- ``modelpier_autoscaler_desired_replicas{project,deployment,predictor}``: the count the local
  autoscaler decided; ``modelpier_autoscaler_ready_replicas``: ready replicas it sees (actual);
  ``modelpier_autoscaler_min_replicas`` and ``modelpier_autoscaler_max_replicas``: the predictor's
  ``autoscaling`` bounds;
- ``modelpier_autoscaler_decisions_total{project,deployment,predictor,direction}``: scale-ups/downs;
- ``modelpier_autoscaler_quota_limited{...}``: 1 while the project's quota holds a predictor below
  what its load asks for;
- ``modelpier_canary_weight{project,deployment,predictor}``: the weight of each running canary;
- ``modelpier_shadow_agreement_ratio{project,deployment,predictor}`` and
  ``modelpier_shadow_compared{...}``: shadow comparison over the last minute, all gateways together;
- ``modelpier_traffic_reports_total``: gateway reports received.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelpier.control.canary.driver import CanaryRun
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import TrafficStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREDICTOR = ["project", "deployment", "predictor"]
SHADOW_WINDOW_S = 60.0
# A deployment's desired count is exported while a reconcile pass derived its status this recently
# (at least three passes: ``platform.reconcile_interval_s``, 0.5 s by default), so only a deleted
# deployment, or a process that stopped reconciling (a standby, a stalled loop), drops out.
DESIRED_MAX_AGE_S = 30.0


class CanaryRuns(Protocol):
    """What the metrics read of the canary driver (``CanaryDriver``)."""

    def runs(self) -> list[CanaryRun]: ...


class ControlMetrics(Collector):
    def __init__(self, traffic: TrafficStore, canaries: CanaryRuns, autoscaler: Autoscaler | None = None,
                 replicas: ReplicaHistory | None = None, *, reconcile_interval_s: float = 0.5) -> None:
        self._traffic, self._canaries, self._autoscaler = traffic, canaries, autoscaler
        self._replicas = replicas
        self._desired_max_age_s = max(DESIRED_MAX_AGE_S, 3 * reconcile_interval_s)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        yield self._deployment_desired()
        yield from self._autoscaling()
        yield from self._canaries_and_shadows()
        reports = CounterMetricFamily("modelpier_traffic_reports", "Gateway traffic reports received.")
        reports.add_metric([], self._traffic.reports)
        yield reports

    def _deployment_desired(self) -> Metric:
        desired = GaugeMetricFamily("modelpier_deployment_desired_replicas",
                                    "Replicas the reconciler runs the predictor at (spec replicas, or the "
                                    "autoscaler's count).", labels=_PREDICTOR)
        if self._replicas is not None:
            for (project, deployment), counts in sorted(self._replicas.current(self._desired_max_age_s).items()):
                for predictor, (_ready, wanted) in sorted(counts.items()):
                    desired.add_metric([project, deployment, predictor], wanted)
        return desired

    def _autoscaling(self) -> Iterator[Metric]:
        desired = GaugeMetricFamily("modelpier_autoscaler_desired_replicas",
                                    "Replicas the local autoscaler wants for the predictor.", labels=_PREDICTOR)
        ready = GaugeMetricFamily("modelpier_autoscaler_ready_replicas",
                                  "Ready replicas of an autoscaled predictor (actual).", labels=_PREDICTOR)
        limited = GaugeMetricFamily("modelpier_autoscaler_quota_limited",
                                    "1 while the project quota holds the predictor below its load.", labels=_PREDICTOR)
        low = GaugeMetricFamily("modelpier_autoscaler_min_replicas", "The predictor's autoscaling.minReplicas.",
                                labels=_PREDICTOR)
        high = GaugeMetricFamily("modelpier_autoscaler_max_replicas", "The predictor's autoscaling.maxReplicas.",
                                 labels=_PREDICTOR)
        decisions = CounterMetricFamily("modelpier_autoscaler_decisions", "Scaling decisions.",
                                        labels=[*_PREDICTOR, "direction"])
        if self._autoscaler is not None:
            for v in self._autoscaler.views():
                labels = [v.project, v.deployment, v.predictor]
                desired.add_metric(labels, v.desired)
                ready.add_metric(labels, v.ready)
                limited.add_metric(labels, 1.0 if v.limited_by_quota else 0.0)
                low.add_metric(labels, v.min_replicas)
                high.add_metric(labels, v.max_replicas)
            for (project, deployment, predictor, direction), n in sorted(self._autoscaler.decisions.items()):
                decisions.add_metric([project, deployment, predictor, direction], n)
        yield from (desired, ready, limited, low, high, decisions)

    def _canaries_and_shadows(self) -> Iterator[Metric]:
        weight = GaugeMetricFamily("modelpier_canary_weight", "Weight (percent) of each running canary.",
                                   labels=_PREDICTOR)
        for run in self._canaries.runs():
            if not run.done:
                weight.add_metric([run.project, run.deployment, run.predictor], run.weight)
        yield weight
        agreement = GaugeMetricFamily("modelpier_shadow_agreement_ratio",
                                      "Share of shadow answers agreeing with the primary's (last minute).",
                                      labels=_PREDICTOR)
        compared = GaugeMetricFamily("modelpier_shadow_compared", "Shadow pairs compared in the last minute.",
                                     labels=_PREDICTOR)
        for project, deployment in self._traffic.reported():
            shadow = self._traffic.window(project, deployment, SHADOW_WINDOW_S).shadow
            if shadow is not None:
                compared.add_metric([project, deployment, shadow.predictor], shadow.compared)
                if shadow.agreement_rate is not None:
                    agreement.add_metric([project, deployment, shadow.predictor], shadow.agreement_rate)
        yield from (agreement, compared)
