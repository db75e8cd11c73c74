"""Prometheus metrics of one server, in a registry it owns (never the process-global default).

Counting happens on the hot path, so the per-request series are plain Python counters updated from
the event loop (no locks, no label lookups through prometheus-client) and turned into metric
families only when ``/metrics`` is scraped. Exported:

- ``modelpier_requests_total{model,protocol,status}``: finished requests; ``status`` is ``ok`` or the
  error code (``invalid_input``, ``not_found``, ``overloaded``, ``deadline_exceeded``, ``internal``...);
- ``modelpier_request_duration_seconds{model,protocol}``: latency histogram, decode to encode;
- ``modelpier_batch_size{model}``: rows per model call (a histogram: > 1 means requests merged);
- ``modelpier_queue_depth{model}``: requests queued or being predicted, read at scrape time;
- ``modelpier_requests_in_flight{model}``: requests inside the data plane;
- ``modelpier_model_load_seconds{model}``: how long loading the model took;
- ``modelpier_model_ready{model}``: 1 once the model is loaded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelpier.server.stats import StatsBook

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((_le(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and bound >= 1 else repr(float(bound))


class ServerMetrics(Collector):
    """The metrics of one server; ``render()`` is the body of ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Histogram] = {}
        self._batches: dict[str, _Histogram] = {}
        self._queue_depth: dict[str, Callable[[], int]] = {}
        self._in_flight: dict[str, int] = {}
        self._load_seconds: dict[str, float] = {}
        self._ready: dict[str, bool] = {}
        self.stats = StatsBook()  # the V2 statistics extension reads the same events
        self.registry.register(self)

    # -- recording (event-loop thread only) ---------------------------------------------------
    def request(self, model: str, protocol: str, status: str, seconds: float) -> None:
        key = (model, protocol, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        hist = self._latency.get((model, protocol))
        if hist is None:
            hist = self._latency[(model, protocol)] = _Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)
        self.stats.request(model, status == "ok", seconds)

    def batch(self, model: str, rows: int) -> None:
        hist = self._batches.get(model)
        if hist is None:
            hist = self._batches[model] = _Histogram(BATCH_BUCKETS)
        hist.observe(rows)
        self.stats.execution(model, rows)

    def enter(self, model: str) -> None:
        self._in_flight[model] = self._in_flight.get(model, 0) + 1

    def leave(self, model: str) -> None:
        self._in_flight[model] -= 1

    def model_loaded(self, model: str, seconds: float, depth: Callable[[], int]) -> None:
        self._load_seconds[model] = seconds
        self._queue_depth[model] = depth
        self._ready[model] = True

    def model_unloaded(self, model: str) -> None:
        self._queue_depth.pop(model, None)
        self._ready[model] = False

    def model_declared(self, model: str) -> None:
        self._ready.setdefault(model, False)

    # -- exposition -----------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelpier_requests", "Finished inference requests.", labels=["model", "protocol", "status"])
        for (model, protocol, status), count in sorted(self._requests.items()):
            requests.add_metric([model, protocol, status], count)
        yield requests
        latency = HistogramMetricFamily(
            "modelpier_request_duration_seconds", "Inference request latency, decode to encode.",
            labels=["model", "protocol"])
        for (model, protocol), hist in sorted(self._latency.items()):
            latency.add_metric([model, protocol], hist.buckets(), hist.total)
        yield latency
        batches = HistogramMetricFamily(
            "modelpier_batch_size", "Rows per model call (above 1: requests were merged).", labels=["model"])
        for model, hist in sorted(self._batches.items()):
            batches.add_metric([model], hist.buckets(), hist.total)
        yield batches
        yield self._gauge("modelpier_queue_depth", "Requests queued or being predicted.",
                          {m: float(depth()) for m, depth in self._queue_depth.items()})
        yield self._gauge("modelpier_requests_in_flight", "Inference requests inside the server.",
                          {m: float(n) for m, n in self._in_flight.items()})
        yield self._gauge("modelpier_model_load_seconds", "Seconds it took to load the model.",
                          self._load_seconds)
        yield self._gauge("modelpier_model_ready", "1 when the model is loaded and serving.",
                          {m: float(r) for m, r in self._ready.items()})

    @staticmethod
    def _gauge(name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(name, doc, labels=["model"])
        for model, value in sorted(values.items()):
            gauge.add_metric([model], value)
        return gauge
