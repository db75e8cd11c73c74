"""The gateway's copy of the routing table, kept fresh by polling the control plane.

``RoutingTableClient.run`` asks ``GET {control}/api/v1/routing?wait=S`` with the last ETag in
``If-None-Match``: the control plane holds the request until the table changes (a long poll), so a
new table arrives within tens of milliseconds, and an unchanged one costs a 304 with no body every
``S`` seconds. A control plane that answers without holding is polled every ``interval_s``. Whatever goes wrong — the
control plane is down or restarting, answers 503 before its first reconcile pass, or sends a body
that does not parse — the gateway keeps serving the last table it had: replicas outlive the
control plane, so the last known table stays the best answer. Errors are logged once per outage,
not once per poll. The requests go through the one API client (``sdk/control_api``, with no retries
of its own: this loop is the retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from modelpier.errors import PierError
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api.gateway import ROUTING_PATH, poll_routing
from modelpier.sdk.control_api.transport import API_PREFIX
from modelpier.spec.routing import RoutingTable

log = logging.getLogger("modelpier.gateway.table")


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
                 api: AsyncControlClient | None = None, monotonic: Callable[[], float] = time.monotonic,
                 token: str | None = None) -> None:
        self._api = api or AsyncControlClient(control_url, token=token, retries=0, trust_env=False)
        self.url = self._api.base_url + API_PREFIX + ROUTING_PATH
        self.interval_s, self.wait_s, self.timeout_s = interval_s, wait_s, timeout_s
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
        outcome: Literal["changed", "unchanged"] = "unchanged"
        try:
            call = poll_routing(self._etag, wait_s=wait_s, timeout_s=self.timeout_s + self.wait_s)
            polled = await self._api.send(call)
            if polled.table is None:
                self.unchanged += 1
            else:
                outcome = "changed"
                self._table, self._etag = polled.table, polled.etag
                self.fetches += 1
                self._changed.fire()
        except PierError as exc:
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
        await self._api.aclose()


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
