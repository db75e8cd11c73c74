"""``InvocationVerifier``: may this bearer token invoke this deployment? Asked of the control plane.

The gateway never imports the control plane and never holds the server secret, so it cannot check a
token itself. It posts ``{project, deployment, token}`` to the control plane's
``POST /api/v1/invocations/verify`` (through the API client, ``sdk/control_api``, authenticated with
the gateway's own token) and caches the answer under a SHA-256 of the token: allows for
``allow_ttl_s``, denials briefly, so a flood of bad tokens costs one call per token per ``deny_ttl_s``.

When the control plane cannot be reached (or answers other than 200), a ``Breaker`` stops dialling
it on every request (one probe per backoff, up to 10 s apart) and the outage is logged once, its end
once. Meanwhile an answer the gateway got within ``stale_limit_s`` still stands (a token verified
a minute ago keeps working through a control-plane restart), and a token it cannot vouch for raises
``ServiceUnavailable`` with a retry delay: the caller gets 503 and Retry-After, not a 401 that
says a valid token is invalid. The staleness limit bounds how long a token revoked during the
outage may still be admitted (docs/security.md).

Revocation: every call passes the ``auth_epoch`` of the routing table it is serving from. The
control plane advances that epoch whenever access shrinks (a token revoked, a member removed or
demoted, a user deleted), so when it differs from the last one seen every cached answer is
dropped: a revoked token stops working here as soon as the new table arrives (a long-poll round
trip), not when its cache entry expires. An answer to a check that began before a flush is not
cached, since the control plane may have given it before the change the flush stands for. The
flush drops stale answers too: a token whose revocation the gateway has seen is never admitted
from what it knew before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import httpx

from modelpier.errors import PierError, ServiceUnavailable
from modelpier.gateway.breaker import Breaker
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api.gateway import VERIFY_PATH, verify_invocation
from modelpier.sdk.control_api.transport import API_PREFIX

log = logging.getLogger("modelpier.gateway")
# How long one token check may take: a caller waits for it.
VERIFY_TIMEOUT = httpx.Timeout(5.0)


class InvocationVerifier(Protocol):
    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool:
        """Whether ``token`` may invoke the deployment; ``ServiceUnavailable`` (``details["retry_after_s"]``)
        when that cannot be known now."""
        ...

    async def aclose(self) -> None: ...


class ControlPlaneVerifier:
    def __init__(self, control_url: str, gateway_token: str | None, *, allow_ttl_s: float = 10.0,
                 deny_ttl_s: float = 2.0, stale_limit_s: float = 300.0, max_entries: int = 10_000,
                 api: AsyncControlClient | None = None, breaker: Breaker | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._api = api or AsyncControlClient(control_url, token=gateway_token, timeout=VERIFY_TIMEOUT, retries=0,
                                              trust_env=False)
        self.url = self._api.base_url + API_PREFIX + VERIFY_PATH
        self._allow_ttl, self._deny_ttl, self._max = allow_ttl_s, deny_ttl_s, max_entries
        self._stale_limit = max(stale_limit_s, allow_ttl_s, deny_ttl_s)
        self._monotonic = monotonic
        self._breaker = breaker or Breaker()
        self._cache: OrderedDict[str, tuple[bool, float]] = OrderedDict()  # key -> (allowed, when it was asked)
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
        if cached is not None and now - cached[1] < (self._allow_ttl if cached[0] else self._deny_ttl):
            return cached[0]
        if not self._breaker.attempt(now):
            return self._unchecked(cached, now)
        flushes = self._flushes
        try:
            allowed = await self._api.send(verify_invocation(project, deployment, token))
        except PierError as exc:
            problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if self._breaker.failed(self._monotonic()):
                log.warning("cannot check tokens with the control plane at %s (%s): admitting tokens checked in the "
                            "last %gs, answering 503 for others, retrying every %g-%gs until it answers", self.url,
                            problem, self._stale_limit, self._breaker.initial_s, self._breaker.max_s)
            return self._unchecked(cached, now)
        lasted = self._breaker.succeeded(self._monotonic())
        if lasted is not None:
            log.warning("the control plane answers token checks again, after %.1fs", lasted)
        if flushes == self._flushes:
            self._cache[key] = (allowed, now)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return allowed

    def _unchecked(self, cached: tuple[bool, float] | None, now: float) -> bool:
        """The control plane cannot answer: the last answer if recent enough, else 503 (not a 401)."""
        if cached is not None and now - cached[1] <= self._stale_limit:
            return cached[0]
        retry = self._breaker.retry_after_s(self._monotonic())
        raise ServiceUnavailable("cannot check the token now: the control plane is unreachable; retry shortly",
                                 details={"retry_after_s": retry})

    async def aclose(self) -> None:
        await self._api.aclose()
