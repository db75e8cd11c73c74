"""Sends the gateway's traffic counters to the control plane: ``POST /api/v1/traffic`` every second.

The control plane's autoscaler, canary analysis, ``pier describe`` and dashboard read them. ``nudge``
sends one at once: a request waiting for a scaled-to-zero predictor should not wait a whole period
before the autoscaler hears of it. A control plane that is away is logged once per outage; the
counters are cumulative, so the next report that lands carries everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from modelpier._lib.ids import new_id
from modelpier.gateway.stats import TrafficStats

log = logging.getLogger("modelpier.gateway.report")
TRAFFIC_PATH = "/api/v1/traffic"


class TrafficReporter:
    def __init__(self, stats: TrafficStats, control_url: str, token: str | None, *, interval_s: float = 1.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.stats = stats
        self.url = control_url.rstrip("/") + TRAFFIC_PATH
        self.gateway_id = f"gw-{new_id(4)}"
        self.started_at = time.time()
        self.interval_s = interval_s
        self._headers = {"content-type": "application/json",
                         **({"authorization": f"Bearer {token}"} if token else {})}
        self._client = client or httpx.AsyncClient(timeout=5.0, trust_env=False)
        self._wake = asyncio.Event()
        self._error: str | None = None
        self.sent = 0

    def nudge(self) -> None:
        self._wake.set()

    async def send_once(self) -> bool:
        report = self.stats.snapshot(self.gateway_id, self.started_at, time.time())
        try:
            # Encoded by pydantic in one go: no intermediate dict on the event loop.
            response = await self._client.post(self.url, content=report.model_dump_json(by_alias=True),
                                               headers=self._headers)
            ok = response.status_code < 300
            error = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if error is not None and self._error is None:
            log.warning("cannot report traffic to %s (%s); will keep trying", self.url, error)
        elif error is None and self._error is not None:
            log.info("reporting traffic to %s again", self.url)
        self._error = error
        self.sent += ok
        return ok

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self.send_once()

    async def aclose(self) -> None:
        await self._client.aclose()
