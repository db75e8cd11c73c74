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
from modelpier.errors import PierError
from modelpier.gateway.stats import TrafficStats
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api.gateway import TRAFFIC_PATH, report_traffic
from modelpier.sdk.control_api.transport import API_PREFIX

log = logging.getLogger("modelpier.gateway.report")
# A report is sent every second and carries cumulative counters: one that is late is replaced by the next.
REPORT_TIMEOUT = httpx.Timeout(5.0)


class TrafficReporter:
    def __init__(self, stats: TrafficStats, control_url: str, token: str | None, *, interval_s: float = 1.0,
                 api: AsyncControlClient | None = None) -> None:
        self.stats = stats
        self._api = api or AsyncControlClient(control_url, token=token, timeout=REPORT_TIMEOUT, retries=0,
                                              trust_env=False)
        self.url = self._api.base_url + API_PREFIX + TRAFFIC_PATH
        self.gateway_id = f"gw-{new_id(4)}"
        self.started_at = time.time()
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._error: str | None = None
        self.sent = 0

    def nudge(self) -> None:
        self._wake.set()

    async def send_once(self) -> bool:
        report = self.stats.snapshot(self.gateway_id, self.started_at, time.time())
        try:
            await self._api.send(report_traffic(report))
            ok, error = True, None
        except PierError as exc:
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
        await self._api.aclose()
