"""The follow-alias loop: calls ``DeploymentService.refresh_aliases`` every few seconds.

Runs as a task in the control plane's lifespan. A pass runs in a worker thread (it queries the
database and may fetch blobs), and a failing pass is logged and counted, never fatal: the loop
lives as long as the server. ``held(project, name)`` names the deployments to leave alone for now
(a canary runs on them: ``CanaryDriver.running``); their moves roll out after the canary ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelpier.control.deployments.service import DeploymentService

log = logging.getLogger("modelpier.control.aliases")


async def run_alias_poller(service: DeploymentService, interval: float,
                           held: Callable[[str, str], bool] | None = None) -> None:
    failures = 0
    while True:
        try:
            await asyncio.to_thread(service.refresh_aliases, held)
        except Exception:
            failures += 1
            log.exception("alias refresh pass failed (%d so far); retrying in %.1f s", failures, interval)
        await asyncio.sleep(interval)
