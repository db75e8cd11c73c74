"""``TrafficStore``: the gateways' traffic snapshots of the last minutes, and window queries on them.

Gateways POST cumulative counters every second (``POST /api/v1/traffic``); this keeps each
gateway's snapshots for ``retention_s`` (15 minutes) in memory and answers, per deployment and
predictor over a window: request and error rates, p50/p99 interpolated from histogram deltas,
in-flight and waiting (latest gauges), cache hit rate, shadow agreement, and a series by step. The
autoscaler, the canary driver, ``GET .../traffic`` and ``pier describe`` read it. Nothing is
persisted: a restarted control plane starts with an empty window, which fills within seconds.

Algorithm. Every snapshot is stamped with the control plane's clock when it arrives (gateway
clocks may differ; windows are the control plane's). The increase over ``(a, b]`` is the sum, over
each gateway's consecutive snapshot pairs whose later one arrived in ``(a, b]``, of the pair's
increase (a counter that went down was reset). A gateway's counting starts at zero when it
starts, so a gateway seen shortly after its start (``startedAt`` within ``first_report_grace_s``)
gets a virtual all-zero snapshot at its start; one first seen long after (the control plane
restarted) has its first snapshot as a baseline only. A new gateway id is a new series, so a
gateway restart starts afresh. Gauges are the sum of each gateway's latest snapshot, ignoring
gateways silent for ``stale_after_s``.

Memory is bounded: snapshots closer than ``min_spacing_s`` replace each other (cumulative counters
lose nothing), snapshots older than the retention go (keeping one as the baseline of the next),
silent gateways are dropped, and at most ``max_gateways`` are kept. Thread-safe: the API records
from its thread pool while the reconciler reads.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modelpier._lib.clock import Clock
from modelpier.control.traffic.counters import (
    PredictorIncrease,
    ShadowIncrease,
    predictor_increase,
    quantile,
    shadow_increase,
)
from modelpier.errors import InvalidInput
from modelpier.spec.traffic import DeploymentKey, DeploymentTraffic, PredictorTrafficWindow, TrafficReport

RETENTION_S = 900.0


@dataclass(frozen=True, slots=True)
class PredictorWindow:
    """One predictor over a window (or one step of a series). Latencies in seconds."""

    name: str
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    retries: int = 0
    cache_hits: int = 0
    request_rate: float = 0.0  # per second
    error_rate: float = 0.0  # errors / requests; 0 without requests
    cache_hit_rate: float = 0.0
    p50_s: float | None = None
    p99_s: float | None = None
    in_flight: int = 0  # latest, summed over gateways
    waiting: int = 0
    replicas: int = 0  # replicas the gateways route to (latest)

    def summary(self, ready: int = 0, desired: int = 0) -> PredictorTrafficWindow:
        """The window as the API shows it (and a canary's judgement keeps it), with the predictor's ready
        and desired replicas."""
        return PredictorTrafficWindow(
            name=self.name, requests=self.requests, errors=self.errors, request_rate=round(self.request_rate, 4),
            error_rate=round(self.error_rate, 6), p50_ms=milliseconds(self.p50_s), p99_ms=milliseconds(self.p99_s),
            in_flight=self.in_flight, waiting=self.waiting, cache_hit_rate=round(self.cache_hit_rate, 6),
            ready_replicas=ready, desired_replicas=desired)


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass(frozen=True, slots=True)
class ShadowWindow:
    predictor: str
    mirrored: int = 0
    failed: int = 0
    compared: int = 0
    agreed: int = 0
    numeric: int = 0
    agreement_rate: float | None = None  # agreed / class-like pairs; None without such pairs
    mean_abs_error: float | None = None  # over numeric pairs; None without such pairs


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    t: float  # end of the step, unix seconds (control-plane clock)
    predictors: Mapping[str, PredictorWindow]


@dataclass(frozen=True, slots=True)
class TrafficWindow:
    window_s: float
    step_s: float
    end: float
    predictors: Mapping[str, PredictorWindow]
    shadow: ShadowWindow | None = None
    series: tuple[SeriesPoint, ...] = ()
    gateways: int = 0  # gateways that reported this deployment in the window

    def predictor(self, name: str) -> PredictorWindow:
        return self.predictors.get(name) or PredictorWindow(name)


@dataclass(slots=True)
class _Point:
    t: float  # control-plane time it arrived
    report: TrafficReport


@dataclass(slots=True)
class _Gateway:
    zero_at: float | None  # control-plane time its counters were all zero, when known
    points: deque[_Point] = field(default_factory=deque)


@dataclass(slots=True)
class _Bin:
    predictors: dict[str, PredictorIncrease] = field(default_factory=dict)
    shadow: ShadowIncrease | None = None

    def add(self, name: str, inc: PredictorIncrease) -> None:
        self.predictors.setdefault(name, PredictorIncrease()).add(inc)

    def add_shadow(self, inc: ShadowIncrease) -> None:
        if self.shadow is None:
            self.shadow = ShadowIncrease(inc.predictor)
        self.shadow.add(inc)


class TrafficStore:
    def __init__(self, clock: Clock, *, retention_s: float = RETENTION_S, min_spacing_s: float = 0.5,
                 stale_after_s: float = 10.0, first_report_grace_s: float = 10.0, max_gateways: int = 64,
                 max_points: int = 4000) -> None:
        self._clock = clock
        self.retention_s = retention_s
        self._min_spacing = min_spacing_s
        self._stale = stale_after_s
        self._grace = first_report_grace_s
        self._max_gateways = max_gateways
        self._max_points = max_points
        self._gateways: dict[str, _Gateway] = {}
        self._lock = threading.Lock()
        self.reports = 0  # received, for metrics

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # -- recording ------------------------------------------------------------------------------
    def record(self, report: TrafficReport) -> None:
        """Keep a snapshot. One older (by the gateway's own ``at``) than the last kept is ignored."""
        now = self._now()
        with self._lock:
            self.reports += 1
            gw = self._gateways.get(report.gateway)
            if gw is None:
                start = report.started_at + (now - report.at)  # the gateway's start on our clock
                gw = self._gateways[report.gateway] = _Gateway(
                    zero_at=min(start, now) if now - start <= self._grace else None)
            points = gw.points
            if points and report.at < points[-1].report.at:
                return
            if len(points) >= 2 and now - points[-2].t < self._min_spacing:
                points[-1] = _Point(now, report)  # cumulative: the newer one says all the older did
            else:
                points.append(_Point(now, report))
            self._prune(now)

    def _prune(self, now: float) -> None:
        cutoff = now - self.retention_s
        for gid in [g for g, gw in self._gateways.items() if gw.points[-1].t < cutoff]:
            del self._gateways[gid]
        for gw in self._gateways.values():
            points = gw.points
            while len(points) >= 2 and (points[1].t < cutoff or len(points) > self._max_points):
                points.popleft()
                gw.zero_at = None  # its zero point lies before the first kept point now
        while len(self._gateways) > self._max_gateways:
            oldest = min(self._gateways, key=lambda g: self._gateways[g].points[-1].t)
            del self._gateways[oldest]

    # -- reading --------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """How much is kept: gateways and snapshots (for tests and metrics)."""
        with self._lock:
            return {"gateways": len(self._gateways), "snapshots": sum(len(g.points) for g in self._gateways.values())}

    def reported(self) -> list[DeploymentKey]:
        """Deployments some gateway reported within the retention."""
        with self._lock:
            return sorted({k for gw in self._gateways.values() for p in gw.points for k in p.report.deployment_keys()})

    def window(self, project: str, deployment: str, window_s: float, step_s: float | None = None
               ) -> TrafficWindow:
        """The deployment over the last ``window_s`` seconds, with a series of ``step_s`` steps (default: the
        whole window as one step). ``InvalidInput`` for a window beyond the retention or too many steps."""
        step = window_s if step_s is None else step_s
        if not 0 < window_s <= self.retention_s:
            raise InvalidInput(f"window must be between 0 and {self.retention_s:g} seconds, got {window_s:g}",
                               details={"field": "window"})
        if not 0 < step <= window_s:
            raise InvalidInput(f"step must be between 0 and the window ({window_s:g} s), got {step:g}",
                               details={"field": "step"})
        count = math.ceil(window_s / step - 1e-9)
        if count > 1000:
            raise InvalidInput(f"window / step gives {count} points; at most 1000", details={"field": "step"})
        end = self._now()
        key = (project, deployment)
        with self._lock:
            return self._window(key, window_s, step, count, end)

    def _window(self, key: DeploymentKey, window_s: float, step: float, count: int, end: float) -> TrafficWindow:
        start, series_start = end - window_s, end - count * step
        total, bins = _Bin(), [_Bin() for _ in range(count)]
        gauge_points: list[tuple[list[float], list[_Point]]] = []
        reporting = 0
        for gw in self._gateways.values():
            previous: DeploymentTraffic | None = None
            have_previous = False
            if gw.zero_at is not None and gw.zero_at <= end:
                have_previous = True  # the virtual all-zero snapshot
            mine: list[_Point] = []
            for point in gw.points:
                if point.t > end:
                    break
                current = point.report.deployment(key)
                if have_previous and current is not None and point.t > series_start:
                    into = [bins[min(max(math.ceil((point.t - series_start) / step) - 1, 0), count - 1)]]
                    _accumulate(previous, current, [*into, total] if point.t > start else into)
                previous, have_previous = current, True
                mine.append(point)
            if any(p.t > start and p.report.deployment(key) is not None for p in mine):
                reporting += 1
            gauge_points.append(([p.t for p in mine], mine))
        predictors = {name: _finish(name, inc, window_s) for name, inc in total.predictors.items()}
        latest = _gauges(gauge_points, key, end, self._stale)
        for name, gauge in latest.items():
            predictors[name] = _with_gauges(predictors.get(name) or _finish(name, PredictorIncrease(), window_s), gauge)
        series = []
        for i, b in enumerate(bins):
            t = series_start + (i + 1) * step
            points = {name: _finish(name, inc, step) for name, inc in b.predictors.items()}
            for name, gauge in _gauges(gauge_points, key, t, self._stale).items():
                points[name] = _with_gauges(points.get(name) or _finish(name, PredictorIncrease(), step), gauge)
            series.append(SeriesPoint(t, MappingProxyType(points)))
        return TrafficWindow(window_s, step, end, MappingProxyType(predictors), _shadow(total.shadow),
                             tuple(series), reporting)


def _accumulate(before: DeploymentTraffic | None, after: DeploymentTraffic, targets: list[_Bin]) -> None:
    """Add the increase between two snapshots of one deployment to each of ``targets``."""
    for name, counters in after.by_name():
        inc = predictor_increase(before.predictor(name) if before else None, counters)
        for target in targets:
            target.add(name, inc)
    if after.shadow is not None:
        prior = before.shadow if before is not None and before.shadow is not None \
            and before.shadow.predictor == after.shadow.predictor else None
        shadow = shadow_increase(prior, after.shadow)
        for target in targets:
            target.add_shadow(shadow)


@dataclass(slots=True)
class _Gauge:
    in_flight: int = 0
    waiting: int = 0
    replicas: set[str] = field(default_factory=set)


def _gauges(per_gateway: list[tuple[list[float], list[_Point]]], key: DeploymentKey, t: float, stale: float
            ) -> dict[str, _Gauge]:
    """Latest gauges at ``t``: each gateway's last snapshot at or before ``t``, unless older than ``stale``."""
    out: dict[str, _Gauge] = {}
    for times, points in per_gateway:
        i = bisect_right(times, t)
        if i == 0 or t - points[i - 1].t > stale:
            continue
        last = points[i - 1]
        counters = last.report.deployment(key)
        if counters is None:
            continue
        for name, c in counters.by_name():
            g = out.setdefault(name, _Gauge())
            g.in_flight += c.in_flight
            g.waiting += c.waiting
            g.replicas.update(c.replicas)
    return out


def _finish(name: str, inc: PredictorIncrease, seconds: float) -> PredictorWindow:
    bounds, counts = inc.histogram()
    return PredictorWindow(
        name=name, requests=inc.requests, errors=inc.errors, rejected=inc.rejected, retries=inc.retries,
        cache_hits=inc.cache_hits, request_rate=inc.requests / seconds,
        error_rate=inc.errors / inc.requests if inc.requests else 0.0,
        cache_hit_rate=inc.cache_hits / inc.requests if inc.requests else 0.0,
        p50_s=quantile(0.5, bounds, counts), p99_s=quantile(0.99, bounds, counts))


def _with_gauges(w: PredictorWindow, g: _Gauge) -> PredictorWindow:
    return PredictorWindow(
        name=w.name, requests=w.requests, errors=w.errors, rejected=w.rejected, retries=w.retries,
        cache_hits=w.cache_hits, request_rate=w.request_rate, error_rate=w.error_rate,
        cache_hit_rate=w.cache_hit_rate, p50_s=w.p50_s, p99_s=w.p99_s, in_flight=g.in_flight, waiting=g.waiting,
        replicas=len(g.replicas))


def _shadow(inc: ShadowIncrease | None) -> ShadowWindow | None:
    if inc is None:
        return None
    classes = inc.compared - inc.numeric
    return ShadowWindow(
        predictor=inc.predictor, mirrored=inc.mirrored, failed=inc.failed, compared=inc.compared, agreed=inc.agreed,
        numeric=inc.numeric, agreement_rate=inc.agreed / classes if classes > 0 else None,
        mean_abs_error=inc.abs_error_sum / inc.numeric if inc.numeric > 0 else None)
