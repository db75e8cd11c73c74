"""JSON bodies of the traffic API: the gateway's report (``POST /api/v1/traffic``) and a deployment's
window (``GET .../traffic``), in the wire form the gateway/control-plane contract fixes (camelCase).

Validation here is the only check a report gets: counters are non-negative, a histogram has one
cumulative count per bound, bounds increase and end with ``+Inf``. Unknown fields are ignored, so a
newer gateway can send more than this control plane reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from modelpier.control.traffic import PredictorWindow, ShadowWindow, TrafficWindow
from modelpier.control.traffic_counters import (
    DeploymentCounters,
    GatewayReport,
    Histogram,
    PredictorCounters,
    ShadowCounters,
)
from modelpier.spec.deployment import ModelDeploymentStatus

# A cumulative counter or a gauge; absent counts as 0.
_Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class LatencyBody(_In):
    le: list[float | Literal["+Inf"]] = Field(min_length=1, max_length=64,
                                              description="Upper bounds in seconds, increasing, the last \"+Inf\".")
    counts: list[int] = Field(min_length=1, max_length=64, description="Cumulative counts (<= le).")
    sum: float = Field(ge=0, description="Sum of observed seconds.")

    @model_validator(mode="after")
    def _shape(self) -> LatencyBody:
        bounds = self.bounds()
        if len(self.counts) != len(bounds):
            raise ValueError(f"counts has {len(self.counts)} entries but le has {len(bounds)}")
        if not math.isinf(bounds[-1]) or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
            raise ValueError("le must increase and end with \"+Inf\"")
        if any(c < 0 for c in self.counts) or any(b < a for a, b in zip(self.counts, self.counts[1:], strict=False)):
            raise ValueError("counts must be cumulative: non-negative and never decreasing")
        return self

    def bounds(self) -> tuple[float, ...]:
        return tuple(math.inf if b == "+Inf" else float(b) for b in self.le)


class PredictorTrafficBody(_In):
    name: str = Field(min_length=1, max_length=63)
    requests: _Count = 0
    errors: _Count = 0
    rejected: _Count = 0
    retries: _Count = 0
    cache_hits: _Count = 0
    in_flight: _Count = 0
    waiting: _Count = 0
    replicas: dict[str, int] = Field(default_factory=dict, max_length=1000, description="In flight per replica id.")
    latency: LatencyBody | None = None


class ShadowTrafficBody(_In):
    predictor: str = Field(min_length=1, max_length=63)
    mirrored: _Count = 0
    failed: _Count = 0
    compared: _Count = 0
    agreed: _Count = 0
    numeric: _Count = 0
    abs_error_sum: float = Field(0.0, ge=0)


class DeploymentTrafficBody(_In):
    project: str = Field(min_length=1, max_length=63)
    deployment: str = Field(min_length=1, max_length=63)
    predictors: list[PredictorTrafficBody] = Field(default_factory=list, max_length=64)
    shadow: ShadowTrafficBody | None = None


class TrafficReportBody(_In):
    """One gateway's cumulative counters at ``at``."""

    gateway: str = Field(min_length=1, max_length=128, description="Random id per gateway process start.")
    started_at: float = Field(ge=0, description="When the gateway started (unix seconds).")
    at: float = Field(ge=0, description="When the snapshot was taken (unix seconds).")
    deployments: list[DeploymentTrafficBody] = Field(default_factory=list, max_length=10_000)

    def to_report(self) -> GatewayReport:
        deployments = {}
        for d in self.deployments:
            predictors = {}
            for p in d.predictors:
                latency = Histogram(p.latency.bounds(), tuple(p.latency.counts), p.latency.sum) if p.latency \
                    else Histogram()
                predictors[p.name] = PredictorCounters(
                    requests=p.requests, errors=p.errors, rejected=p.rejected, retries=p.retries,
                    cache_hits=p.cache_hits, in_flight=p.in_flight, waiting=p.waiting,
                    replicas=MappingProxyType(dict(p.replicas)), latency=latency)
            shadow = None
            if d.shadow is not None:
                s = d.shadow
                shadow = ShadowCounters(s.predictor, s.mirrored, s.failed, s.compared, s.agreed, s.numeric,
                                        s.abs_error_sum)
            deployments[(d.project, d.deployment)] = DeploymentCounters(MappingProxyType(predictors), shadow)
        return GatewayReport(self.gateway, self.started_at, self.at, MappingProxyType(deployments))

    def waiting(self) -> bool:
        """Does some predictor hold requests for a cold start? (The reconciler is woken at once.)"""
        return any(p.waiting > 0 for d in self.deployments for p in d.predictors)


# -- the window ---------------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class PredictorTrafficWindow(_Out):
    name: str
    requests: int = Field(description="Answered requests in the window.")
    errors: int
    request_rate: float = Field(description="Requests per second.")
    error_rate: float = Field(description="errors / requests (0 without requests).")
    p50_ms: float | None = Field(description="Median latency (ms), interpolated from the histogram; null without "
                                             "requests.")
    p99_ms: float | None
    in_flight: int = Field(description="Forwarded, not yet answered: latest, summed over gateways.")
    waiting: int = Field(description="Held for a cold start (scale-to-zero): latest.")
    cache_hit_rate: float
    ready_replicas: int = 0
    desired_replicas: int = 0

    @classmethod
    def of(cls, w: PredictorWindow, ready: int = 0, desired: int = 0) -> PredictorTrafficWindow:
        return cls(name=w.name, requests=w.requests, errors=w.errors, request_rate=round(w.request_rate, 4),
                   error_rate=round(w.error_rate, 6), p50_ms=_ms(w.p50_s), p99_ms=_ms(w.p99_s), in_flight=w.in_flight,
                   waiting=w.waiting, cache_hit_rate=round(w.cache_hit_rate, 6), ready_replicas=ready,
                   desired_replicas=desired)


class ShadowTrafficWindow(_Out):
    predictor: str
    mirrored: int
    failed: int
    compared: int
    agreement_rate: float | None = Field(description="Share of class-like pairs (int/bool/str outputs) that agreed.")
    mean_abs_error: float | None = Field(description="Mean absolute difference over numeric (float) pairs.")

    @classmethod
    def of(cls, s: ShadowWindow) -> ShadowTrafficWindow:
        return cls(predictor=s.predictor, mirrored=s.mirrored, failed=s.failed, compared=s.compared,
                   agreement_rate=s.agreement_rate, mean_abs_error=s.mean_abs_error)


class SeriesPredictorPoint(_Out):
    request_rate: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    in_flight: int
    replicas: int = Field(description="Replicas with requests in flight at the step's end (busy, not running).")
    ready_replicas: int | None = Field(None, description="Ready replicas at the step's end; null when unknown "
                                                         "(before the control plane's first reconcile pass).")
    desired_replicas: int | None = Field(None, description="Desired replicas at the step's end; null when unknown.")


class SeriesPointBody(_Out):
    t: float = Field(description="End of the step (unix seconds).")
    predictors: dict[str, SeriesPredictorPoint]


class TrafficBody(_Out):
    window: float
    step: float
    predictors: list[PredictorTrafficWindow]
    shadow: ShadowTrafficWindow | None = None
    series: list[SeriesPointBody] = Field(description="One point per step, oldest first.")

    @classmethod
    def of(cls, w: TrafficWindow, names: list[str], status: ModelDeploymentStatus,
           replicas_at: Callable[[float], Mapping[str, tuple[int, int]] | None] | None = None) -> TrafficBody:
        """The window for the predictors ``names`` (the deployment's, in spec order, then any that served in
        the window). ``replicas_at(t)``: ready and desired replicas per predictor at ``t`` (the control plane's
        ``ReplicaHistory``); without it every point gets the status's counts of now."""
        seen = {p.name: p for p in status.predictors}
        now = {n: (p.ready_replicas, p.desired_replicas) for n, p in seen.items()}
        predictors = [PredictorTrafficWindow.of(w.predictor(n), *now.get(n, (0, 0))) for n in names]
        series = []
        for p in w.series:
            counts = replicas_at(p.t) if replicas_at is not None else now
            series.append(SeriesPointBody(t=round(p.t, 3), predictors={
                n: SeriesPredictorPoint(request_rate=round(x.request_rate, 4), error_rate=round(x.error_rate, 6),
                                        p50_ms=_ms(x.p50_s), p99_ms=_ms(x.p99_s), in_flight=x.in_flight,
                                        replicas=x.replicas,
                                        ready_replicas=None if counts is None else counts.get(n, (0, 0))[0],
                                        desired_replicas=None if counts is None else counts.get(n, (0, 0))[1])
                for n in names for x in [p.predictors.get(n) or PredictorWindow(n)]}))
        return cls(window=w.window_s, step=w.step_s, predictors=predictors,
                   shadow=ShadowTrafficWindow.of(w.shadow) if w.shadow else None, series=series)
