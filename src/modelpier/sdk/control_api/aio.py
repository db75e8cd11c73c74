"""``AsyncControlClient``: the control plane's ``/api/v1`` from asyncio (the dashboard, the gateway).

The same ``Call`` objects and the same ``transport.py`` rules as ``ControlClient``, over one pooled
``httpx.AsyncClient``. Any ``httpx.AsyncBaseTransport`` works: the dashboard passes an ASGI
transport to call its own control plane in-process (no socket), tests a mock one.
"""

from __future__ import annotations

import asyncio
import random
from typing import Self, TypeVar

import httpx

from modelpier.sdk.control_api.call import Call
from modelpier.sdk.control_api.transport import (
    DEFAULT_TIMEOUT,
    Exchange,
    Options,
    normalize,
)

T = TypeVar("T")


class AsyncControlClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 retries: int = 2, trust_env: bool = True, hint: str = "",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.options = Options(normalize(base_url), token, timeout, retries, trust_env, hint)
        self._http = httpx.AsyncClient(transport=transport, **self.options.client_kwargs())
        self._random = random.Random()  # noqa: S311 -- backoff jitter, not a secret

    @property
    def base_url(self) -> str:
        return self.options.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        exchange = Exchange(self.options, call, self._http, self._random)
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = await self._http.send(exchange.request)
            except httpx.TransportError as exc:
                outcome = exc
            wait = exchange.settle(outcome)
            if wait is None:
                return exchange.result
            await asyncio.sleep(wait)
