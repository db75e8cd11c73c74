"""The gateway's traffic counters per project, deployment and predictor.

Plain integers in dicts, bumped on the request path (a few attribute increments, no locks: one event
loop), read two ways: ``prometheus()`` renders ``/metrics`` in the text exposition format, and
``snapshot()`` is the report the gateway sends to the control plane every second, a
``spec.traffic.TrafficReport``: the one type both sides use (cumulative counters, so a lost report
loses nothing; the wire form is in docs/autoscaling.md). The control plane turns
those reports into rates and percentiles for the autoscaler, the canary analysis, ``pier describe``
and the dashboard.
"""

from __future__ import annotations

import math
from bisect import bisect_left

from modelpier.spec.traffic import (
    DeploymentTraffic,
    LatencyHistogram,
    PredictorTraffic,
    ShadowTraffic,
    TrafficReport,
)

# Upper bounds in seconds; a 15th bucket is +Inf.
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LE = (*BUCKETS, math.inf)


class PredictorStats:
    __slots__ = ("buckets", "cache_hits", "codes", "errors", "in_flight", "latency_sum", "rejected", "replicas",
                 "requests", "retries", "waiting")

    def __init__(self) -> None:
        self.requests = self.errors = self.rejected = self.retries = self.cache_hits = 0
        self.in_flight = self.waiting = 0
        self.replicas: dict[str, int] = {}
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative
        self.latency_sum = 0.0

    def observe(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.codes[status] = self.codes.get(status, 0) + 1
        if status >= 500:
            self.errors += 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def cumulative(self) -> list[int]:
        out, total = [], 0
        for n in self.buckets:
            total += n
            out.append(total)
        return out

    def report(self, name: str) -> PredictorTraffic:
        return PredictorTraffic(
            name=name, requests=self.requests, errors=self.errors, rejected=self.rejected, retries=self.retries,
            cache_hits=self.cache_hits, in_flight=self.in_flight, waiting=self.waiting,
            replicas={r: n for r, n in self.replicas.items() if n > 0},
            latency=LatencyHistogram(le=_LE, counts=tuple(self.cumulative()), sum=self.latency_sum))


class ShadowStats:
    __slots__ = ("abs_error_sum", "agreed", "compared", "failed", "mirrored", "numeric", "predictor")

    def __init__(self, predictor: str) -> None:
        self.predictor = predictor
        self.mirrored = self.failed = self.compared = self.agreed = self.numeric = 0
        self.abs_error_sum = 0.0

    def report(self) -> ShadowTraffic:
        return ShadowTraffic(predictor=self.predictor, mirrored=self.mirrored, failed=self.failed,
                             compared=self.compared, agreed=self.agreed, numeric=self.numeric,
                             abs_error_sum=self.abs_error_sum)


Key = tuple[str, str]  # (project, deployment)


class TrafficStats:
    def __init__(self) -> None:
        self._predictors: dict[Key, dict[str, PredictorStats]] = {}
        self._shadows: dict[Key, ShadowStats] = {}
        self.ejections = 0  # replicas ejected by passive health, all deployments

    def predictor(self, project: str, deployment: str, name: str) -> PredictorStats:
        by_name = self._predictors.get((project, deployment))
        if by_name is None:
            by_name = self._predictors[(project, deployment)] = {}
        stats = by_name.get(name)
        if stats is None:
            stats = by_name[name] = PredictorStats()
        return stats

    def shadow(self, project: str, deployment: str, predictor: str) -> ShadowStats:
        stats = self._shadows.get((project, deployment))
        if stats is None or stats.predictor != predictor:
            stats = self._shadows[(project, deployment)] = ShadowStats(predictor)
        return stats

    def snapshot(self, gateway_id: str, started_at: float, at: float) -> TrafficReport:
        deployments = []
        for (project, deployment), by_name in sorted(self._predictors.items()):
            shadow = self._shadows.get((project, deployment))
            deployments.append(DeploymentTraffic(
                project=project, deployment=deployment,
                predictors=tuple(s.report(name) for name, s in sorted(by_name.items())),
                shadow=shadow.report() if shadow else None))
        return TrafficReport(gateway=gateway_id, started_at=started_at, at=at, deployments=tuple(deployments))

    def prometheus(self) -> bytes:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        rows = [(_labels(p, d, n), s) for (p, d), by_name in sorted(self._predictors.items())
                for n, s in sorted(by_name.items())]
        family("pier_gateway_requests_total", "counter", "Requests answered, by predictor and status code.")
        for labels, s in rows:
            for code, n in sorted(s.codes.items()):
                lines.append(f'pier_gateway_requests_total{{{labels},code="{code}"}} {n}')
        family("pier_gateway_request_duration_seconds", "histogram", "Time from request to answer at the gateway.")
        for labels, s in rows:
            for bound, n in zip([*(f"{b:g}" for b in BUCKETS), "+Inf"], s.cumulative(), strict=True):
                lines.append(f'pier_gateway_request_duration_seconds_bucket{{{labels},le="{bound}"}} {n}')
            lines.append(f"pier_gateway_request_duration_seconds_sum{{{labels}}} {s.latency_sum}")
            lines.append(f"pier_gateway_request_duration_seconds_count{{{labels}}} {s.requests}")
        for name, kind, attr, help_text in (
                ("pier_gateway_in_flight", "gauge", "in_flight", "Requests forwarded and not yet answered."),
                ("pier_gateway_waiting", "gauge", "waiting", "Requests waiting for a scaled-to-zero predictor."),
                ("pier_gateway_retries_total", "counter", "retries", "Requests retried on another replica."),
                ("pier_gateway_rejected_total", "counter", "rejected", "Requests refused by limits.maxInFlight."),
                ("pier_gateway_cache_hits_total", "counter", "cache_hits", "Requests answered from the cache.")):
            family(name, kind, help_text)
            lines.extend(f"{name}{{{labels}}} {getattr(s, attr)}" for labels, s in rows)
        family("pier_gateway_shadow_requests_total", "counter",
               "Shadow copies by result: mirrored, failed, compared, agreed.")
        shadows = [(_labels(p, d, sh.predictor), sh) for (p, d), sh in sorted(self._shadows.items())]
        for labels, sh in shadows:
            for result in ("mirrored", "failed", "compared", "agreed", "numeric"):
                lines.append(f'pier_gateway_shadow_requests_total{{{labels},result="{result}"}} '
                             f"{getattr(sh, result)}")
        family("pier_gateway_shadow_abs_error_sum", "counter", "Sum of mean absolute differences, numeric outputs.")
        lines.extend(f"pier_gateway_shadow_abs_error_sum{{{labels}}} {sh.abs_error_sum}" for labels, sh in shadows)
        family("pier_gateway_ejections_total", "counter", "Replicas ejected by passive health checks.")
        lines.append(f"pier_gateway_ejections_total {self.ejections}")
        return ("\n".join(lines) + "\n").encode()


def _labels(project: str, deployment: str, predictor: str) -> str:
    # Names are DNS-1123 labels (validated by the spec), so they need no escaping.
    return f'project="{project}",deployment="{deployment}",predictor="{predictor}"'
