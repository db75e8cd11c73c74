"""The blob collector: deletes blobs no version references, every ``control.blob_gc_interval_s``.

Runs as a task in the control plane's lifespan (the first pass one interval after start-up). A
pass lists the blob store and asks the metadata store about each old blob, in a worker thread;
it keeps blobs written within ``control.blob_gc_grace_s``, which a push in progress is about to
reference (``Registry.collect_garbage`` has the guarantee). A failing pass is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging

from modelpier.registry.service import Registry

log = logging.getLogger("modelpier.control.blobs")


async def run_blob_collector(registry: Registry, *, grace_s: float, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(registry.collect_garbage, grace_s)
        except Exception:
            log.exception("collecting unreferenced blobs failed; retrying in %gs", interval_s)
