"""A synthetic gateway for integration tests: posts traffic snapshots to a real control plane.

It speaks the gateway/control-plane contract (``POST /api/v1/traffic``) as a gateway does: a random
id per start, cumulative counters, a report every ``period_s``. Tests set what each predictor sees
(``set``); counters grow by the given rate each period. Bounded: it stops on ``stop()`` or after
``max_reports``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.support.procs import ADMIN_HEADERS

LE: list[Any] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, "+Inf"]
_BUCKET = {0.005: 3, 0.01: 3, 0.1: 6, 1.0: 9}  # answer time -> index of the bucket it falls in


@dataclass
class Load:
    """What one predictor sees per period: answered requests (of which errors), and gauges."""

    requests: int = 0
    errors: int = 0
    latency_s: float = 0.005
    in_flight: int = 0
    waiting: int = 0


@dataclass
class _Counters:
    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LE))
    seconds: float = 0.0


class Feeder:
    def __init__(self, api: str, project: str, deployment: str, *, period_s: float = 0.5,
                 max_reports: int = 2000) -> None:
        self.url = f"{api}/api/v1/traffic"
        self.project, self.deployment = project, deployment
        self.gateway = f"gw-test-{uuid.uuid4().hex[:8]}"
        self.started = time.time()
        self.period_s, self.max_reports = period_s, max_reports
        self.loads: dict[str, Load] = {}
        self._counters: dict[str, _Counters] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0
        self.failures: list[str] = []

    def set(self, predictor: str, load: Load) -> None:
        with self._lock:
            self.loads[predictor] = load

    def send(self) -> None:
        """One report now (what a gateway does at once when a request starts waiting)."""
        with self._lock:
            predictors = []
            for name, load in self.loads.items():
                c = self._counters.setdefault(name, _Counters())
                c.requests += load.requests
                c.errors += load.errors
                index = next((i for bound, i in sorted(_BUCKET.items()) if load.latency_s <= bound), 9)
                for i in range(index, len(LE)):
                    c.buckets[i] += load.requests
                c.seconds += load.requests * load.latency_s
                predictors.append({"name": name, "requests": c.requests, "errors": c.errors, "rejected": 0,
                                   "retries": 0, "cacheHits": 0, "inFlight": load.in_flight, "waiting": load.waiting,
                                   "replicas": {}, "latency": {"le": LE, "counts": list(c.buckets),
                                                               "sum": c.seconds}})
        body = {"gateway": self.gateway, "startedAt": self.started, "at": time.time(),
                "deployments": [{"project": self.project, "deployment": self.deployment, "predictors": predictors}]}
        try:
            r = httpx.post(self.url, json=body, headers=ADMIN_HEADERS, timeout=10)
            if r.status_code != 204:
                self.failures.append(f"{r.status_code}: {r.text}")
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
        self.sent += 1

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < self.max_reports:
            self.send()
            self._stop.wait(self.period_s)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=15)
