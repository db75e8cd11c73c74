"""``InvocationVerifier``: may this bearer token invoke this deployment? Asked of the control plane.

The gateway never imports the control plane and never holds the server secret, so it cannot check a
token itself. It posts ``{project, deployment, token}`` to the control plane's
``POST /api/v1/invocations/verify`` (authenticated with the gateway's own token) and caches the
answer under a SHA-256 of the token: allows for ``allow_ttl_s``, denials briefly, so a flood of bad
tokens costs one call per token per ``deny_ttl_s``. If the control plane is unreachable, unknown
tokens are refused (fail closed) while cached allows keep working until they expire.

Revocation: every call passes the ``auth_epoch`` of the routing table it is serving from. The
control plane advances that epoch whenever access shrinks (a token revoked, a member removed or
demoted, a user deleted), so when it differs from the last one seen every cached answer is
dropped: a revoked token stops working here as soon as the new table arrives (a long-poll round
trip), not when its cache entry expires. An answer to a check that began before a flush is not
cached, since the control plane may have given it before the change the flush stands for.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import httpx

log = logging.getLogger("modelpier.gateway")
VERIFY_PATH = "/api/v1/invocations/verify"


class InvocationVerifier(Protocol):
    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool: ...

    async def aclose(self) -> None: ...


class ControlPlaneVerifier:
    def __init__(self, control_url: str, gateway_token: str | None, *, allow_ttl_s: float = 10.0,
                 deny_ttl_s: float = 2.0, max_entries: int = 10_000, client: httpx.AsyncClient | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = control_url.rstrip("/") + VERIFY_PATH
        self._headers = {"authorization": f"Bearer {gateway_token}"} if gateway_token else {}
        self._client = client or httpx.AsyncClient(timeout=5.0, trust_env=False)
        self._allow_ttl, self._deny_ttl, self._max = allow_ttl_s, deny_ttl_s, max_entries
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._epoch: int | None = None  # the auth epoch the cache belongs to
        self._flushes = 0  # how many times the cache was dropped, to tell answers from before a flush

    def _observe(self, epoch: int) -> None:
        if epoch != self._epoch:
            if self._cache:
                log.info("auth epoch %s -> %d: dropping %d cached token checks", self._epoch, epoch, len(self._cache))
            self._cache.clear()
            self._epoch = epoch
            self._flushes += 1

    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool:
        self._observe(epoch)
        key = hashlib.sha256(f"{project}/{deployment}\0{token}".encode()).hexdigest()
        now = self._monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        flushes = self._flushes
        try:
            response = await self._client.post(self.url, headers=self._headers, json={
                "project": project, "deployment": deployment, "token": token})
        except httpx.HTTPError as exc:
            log.warning("cannot verify a token with the control plane (%s); refusing it", type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("the control plane answered %d to a token check; refusing the token", response.status_code)
            return False
        allowed = bool(response.json().get("allowed"))
        if flushes == self._flushes:
            self._cache[key] = (allowed, now + (self._allow_ttl if allowed else self._deny_ttl))
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return allowed

    async def aclose(self) -> None:
        await self._client.aclose()
