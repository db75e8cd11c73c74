"""Test doubles for the gateway's unit tests: a proxy that answers per replica URL, and app calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from modelpier.gateway.app import GatewayApp
from modelpier.gateway.proxy import Answer, Headers, ReplicaProxy, Retryable

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


def v2_answer(label: int) -> Answer:
    return Answer(200, list(JSON_HEADERS), orjson.dumps(
        {"model_name": "iris", "outputs": [{"name": "predict", "datatype": "INT64", "shape": [1], "data": [label]}]}))


class FakeProxy(ReplicaProxy):
    """Answers from ``answers[base_url]`` (an Answer, an exception to raise, or a callable)."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers: dict[str, Any] = answers or {}
        self.calls: list[tuple[str, str, Headers, bytes]] = []
        self.gate: asyncio.Event | None = None  # when set, every send waits for it
        self._arrived: asyncio.Condition | None = None

    async def send(self, method: str, url: str, headers: Headers, body: bytes, *, timeout_s: float) -> Answer:
        self.calls.append((method, url, headers, body))
        if self._arrived is not None:
            async with self._arrived:
                self._arrived.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        base = url.split("/", 3)
        found = self.answers.get("/".join(base[:3]), v2_answer(0))
        if isinstance(found, BaseException):
            raise found
        if callable(found):
            result: Answer = found()
            return result
        return found  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        pass

    async def wait_for_calls(self, n: int) -> None:
        self._arrived = self._arrived or asyncio.Condition()
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.calls) >= n)

    def urls(self) -> list[str]:
        return ["/".join(u.split("/", 3)[:3]) for _, u, _, _ in self.calls]


def refused() -> Retryable:
    return Retryable("ClientConnectorError: connection refused", delivered=False)


async def request(app: GatewayApp, method: str, path: str, *, headers: dict[str, str] | None = None,
                  body: bytes = b"{}") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://gw") as client:
        return await client.request(method, path, headers=headers or {}, content=body)


def run(factory: Callable[[], Any]) -> Any:
    return asyncio.run(factory())
