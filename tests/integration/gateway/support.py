"""Helpers of the gateway storage tests: waiting on an async condition, a real HTTP callback receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.procs import free_port


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
                     ) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class CallbackReceiver:
    """Records every POST; answers each with the next status of ``statuses`` (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    job_ids: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def callback_receiver(statuses: list[int] | None = None) -> AsyncIterator[CallbackReceiver]:
    """A real HTTP server on a free loopback port, in this event loop."""
    port = free_port()
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/hook", list(statuses or []))

    async def hook(request: web.Request) -> web.Response:
        receiver.received.append(json.loads(await request.read()))
        receiver.job_ids.append(request.headers.get("x-pier-job-id"))
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
