"""The gateway's copy of the routing table, kept fresh by polling the control plane.

``RoutingTableClient.run`` asks ``GET {control}/api/v1/routing?wait=S`` with the last ETag in
``If-None-Match``: the control plane holds the request until the table changes (a long poll), so a
new table arrives within tens of milliseconds, and an unchanged one costs a 304 with no body every
``S`` seconds. A control plane that answers without holding is polled every ``interval_s``. Whatever goes wrong — the
control plane is down or restarting, answers 503 before its first reconcile pass, or sends a body
that does not parse — the gateway keeps serving the last table it had: replicas outlive the
control plane, so the last known table stays the best answer. Errors are logged once per outage,
not once per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx

from modelpier.spec.routing import RoutingTable, table_from_wire

log = logging.getLogger("modelpier.gateway.table")

ROUTING_PATH = "/api/v1/routing"


class _ChangeSignal:
    """Wakes everyone waiting for the next table. One event per generation: ``fire`` sets it and
    starts a new one, so a waiter never sees a change that happened before it started waiting."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None  # created by the first waiter, inside the running loop

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout_s: float) -> None:
        """Until the next ``fire`` or ``timeout_s`` passes (no error either way)."""
        if self._event is None:
            self._event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)


class RoutingTableClient:
    """Holds the last table fetched; ``get`` is the gateway's ``table_source`` (a reference read)."""

    def __init__(self, control_url: str, *, interval_s: float = 0.5, wait_s: float = 10.0, timeout_s: float = 2.0,
                 client: httpx.AsyncClient | None = None, monotonic: Callable[[], float] = time.monotonic,
                 token: str | None = None) -> None:
        self.url = control_url.rstrip("/") + ROUTING_PATH
        self._auth = {"authorization": f"Bearer {token}"} if token else {}
        self.interval_s, self.wait_s = interval_s, wait_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s + wait_s, trust_env=False)
        self._monotonic = monotonic
        self._table = RoutingTable()
        self._etag: str | None = None
        self._synced_at: float | None = None  # monotonic time of the last answer (200 or 304)
        self._error: str | None = None
        self.fetches = 0  # 200s: tables actually transferred and parsed
        self.unchanged = 0  # 304s
        self._changed = _ChangeSignal()

    def get(self) -> RoutingTable:
        return self._table

    async def wait_change(self, timeout_s: float) -> None:
        """Until the next table arrives or ``timeout_s`` passes (no error either way)."""
        await self._changed.wait(timeout_s)

    @property
    def synced(self) -> bool:
        """True once a table arrived; before that the gateway does not know any deployment."""
        return self._etag is not None

    def describe(self) -> dict[str, Any]:
        """For the gateway's ``/healthz``: is the copy fresh, and if not, why."""
        age = None if self._synced_at is None else round(self._monotonic() - self._synced_at, 3)
        return {"control": self.url, "synced": self.synced, "etag": self._etag, "age_s": age,
                "deployments": len(self._table.deployments), "error": self._error}

    async def poll_once(self, wait_s: float = 0.0) -> Literal["changed", "unchanged", "failed"]:
        """One request, held by the control plane up to ``wait_s`` while the table is unchanged."""
        headers = {"if-none-match": self._etag, **self._auth} if self._etag else dict(self._auth)
        params = {"wait": f"{wait_s:g}"} if wait_s > 0 and self._etag else {}
        outcome: Literal["changed", "unchanged"] = "unchanged"
        try:
            response = await self._client.get(self.url, headers=headers, params=params)
            if response.status_code == 304:
                self.unchanged += 1
            elif response.status_code == 200:
                outcome = "changed"
                table = table_from_wire(response.json())
                self._table, self._etag = table, response.headers.get("etag") or "unversioned"
                self.fetches += 1
                self._changed.fire()
            else:
                raise _Unexpected(f"HTTP {response.status_code}: {response.text[:200]}")
        except (httpx.HTTPError, _Unexpected, ValueError, KeyError, TypeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self._error is None:
                log.warning("cannot refresh the routing table from %s (%s); serving the last one (%d "
                            "deployments) until the control plane answers", self.url, error,
                            len(self._table.deployments))
            self._error = error
            return "failed"
        if self._error is not None:
            log.info("routing table refreshed from %s again", self.url)
        self._error = None
        self._synced_at = self._monotonic()
        return outcome

    async def run(self) -> None:
        """Long-poll until cancelled; after a failure, or an answer that was not held, wait
        ``interval_s`` before the next request."""
        while True:
            started = self._monotonic()
            outcome = await self.poll_once(self.wait_s)
            held = self._monotonic() - started >= min(self.wait_s / 2, self.interval_s)
            if outcome == "failed" or (outcome == "unchanged" and not held):
                await asyncio.sleep(self.interval_s)

    async def aclose(self) -> None:
        await self._client.aclose()


class _Unexpected(Exception):
    """The control plane answered, but not with a table."""


class StaticTable:
    """A table set by its owner (tests, or an embedding process): the same ``get``/``wait_change``
    as the polling client, without a control plane."""

    def __init__(self, table: RoutingTable | None = None) -> None:
        self._table = table
        self._changed = _ChangeSignal()

    @property
    def synced(self) -> bool:
        return self._table is not None

    def get(self) -> RoutingTable:
        return self._table or RoutingTable()

    def set(self, table: RoutingTable) -> None:
        self._table = table
        self._changed.fire()

    async def wait_change(self, timeout_s: float) -> None:
        await self._changed.wait(timeout_s)
