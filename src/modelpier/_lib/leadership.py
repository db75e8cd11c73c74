"""Who may act when several control planes share one backend, and running work only while this one leads.

``Leadership`` is the gate (a Kubernetes Lease in ``backends/kubernetes/lease.py``; ``AlwaysLeader`` for one
control plane on one machine); ``while_leading`` runs a piece of work during each term of leadership. The
composition root (``control/platform.py``) gates the canary driver, the blob collector and the alias
follower with it, and the Kubernetes backend's parts gate the CR synchroniser with the same function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("modelpier.leadership")

RESTART_S = 1.0  # pause before running work again that ended by itself or failed: never a tight loop


class Leadership(Protocol):
    """``acquire`` returns once this process leads (it may wait for ever); ``lost`` returns when it no
    longer does; ``release`` gives leadership up at shutdown, so a standby takes over at once."""

    async def acquire(self) -> None: ...

    async def lost(self) -> None: ...

    async def release(self) -> None: ...


class AlwaysLeader:
    """The ``Leadership`` of a control plane that is alone: it always leads."""

    async def acquire(self) -> None:
        return None

    async def lost(self) -> None:
        await asyncio.Event().wait()  # never

    async def release(self) -> None:
        return None


async def while_leading(leadership: Leadership, work: Callable[[], Awaitable[None]], *,
                        restart_s: float = RESTART_S) -> None:
    """Run ``work()`` during each term of leadership (cancelled when the term ends), until cancelled. Work
    that ends by itself or fails during a term is started again after ``restart_s``."""
    name = getattr(work, "__qualname__", repr(work))
    while True:
        await leadership.acquire()
        running = asyncio.ensure_future(work())
        lost = asyncio.ensure_future(leadership.lost())
        try:
            await asyncio.wait({running, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (running, lost):
                task.cancel()
            await asyncio.gather(running, lost, return_exceptions=True)
        if running.done() and not running.cancelled() and running.exception() is not None:
            log.error("%s failed during a term of leadership; it starts again", name, exc_info=running.exception())
        if lost.done() and not lost.cancelled():
            log.warning("leadership lost: %s stops until this control plane leads again", name)
        else:
            await asyncio.sleep(restart_s)
