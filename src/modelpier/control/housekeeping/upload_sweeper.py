"""The upload sweeper: discards blob uploads left untouched for ``control.upload_ttl_s``.

Runs as a task in the control plane's lifespan, first at start-up, then every tenth of the TTL (at
most every 5 minutes): an abandoned upload holds disk and its project's storage quota for at most
about 1.1 TTL. A pass runs in a worker thread (it walks the upload folder); a failing pass is
logged, never fatal. Uploads being appended to are skipped (``UploadStager.purge_older_than``).
"""

from __future__ import annotations

import asyncio
import logging

from modelpier.registry.uploads import UploadStager

log = logging.getLogger("modelpier.control.uploads")


def sweep_interval_s(ttl_s: float) -> float:
    return min(max(ttl_s / 10, 0.05), 300.0)


async def run_upload_sweeper(stager: UploadStager, ttl_s: float) -> None:
    interval = sweep_interval_s(ttl_s)
    while True:
        try:
            purged = await asyncio.to_thread(stager.purge_older_than, ttl_s)
        except Exception:
            log.exception("sweeping expired uploads failed; retrying in %.1f s", interval)
        else:
            if purged:
                log.info("discarded %d uploads untouched for %gs: %s", len(purged), ttl_s, ", ".join(purged))
        await asyncio.sleep(interval)
