"""Leader election with a ``coordination.k8s.io/v1`` Lease, so two control-plane replicas can run.

``decide_lease`` is the pure decision (client-go's ``leaderelection`` rules): create a missing
Lease, renew our own, take over one that is released (no holder) or expired, else wait. Expiry is
judged by *our* clock from when we last saw the Lease change (``observed_at``), never by comparing
its ``renewTime`` with our clock, so clock skew between replicas cannot make two leaders.
``LeaderElector`` acts on it: every write carries the ``resourceVersion`` it read, so of two
candidates racing for one Lease exactly one wins (the other gets 409 and reads again).

Guarantee: a leader that cannot renew within ``renew_deadline_s`` (less than the lease duration)
stops leading (``is_leader`` cleared, ``on_lost`` called) before any other replica may take over,
which happens only after ``lease_duration_s`` without a change. The composition root gates the
reconciler and the CR synchroniser on it; ``run`` releases the Lease when cancelled, so a rolling
update hands over at once instead of after the lease duration.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from modelpier._lib.clock import Clock, SystemClock
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError

log = logging.getLogger("modelpier.lease")
Manifest = dict[str, Any]
LeaseAction = Literal["create", "renew", "take_over", "wait"]


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The fields of a Lease's spec that matter, plus the version a write must match."""

    holder: str | None
    duration_s: int
    renew_time: datetime | None
    acquire_time: datetime | None
    transitions: int
    resource_version: str


@dataclass(frozen=True, slots=True)
class LeaseDecision:
    action: LeaseAction
    retry_in_s: float  # when to look again


def decide_lease(record: LeaseRecord | None, identity: str, *, now: float, observed_at: float,
                 lease_duration_s: float, retry_period_s: float) -> LeaseDecision:
    """What ``identity`` does about the Lease it just read.

    ``now`` and ``observed_at`` are our monotonic seconds: ``observed_at`` is when the record last
    changed as we saw it. A held Lease expires ``duration`` seconds after that (its own
    ``leaseDurationSeconds``, else ours).
    """
    if record is None:
        return LeaseDecision("create", retry_period_s)
    if record.holder == identity:
        return LeaseDecision("renew", retry_period_s)
    if not record.holder:
        return LeaseDecision("take_over", retry_period_s)
    duration = record.duration_s or lease_duration_s
    left = observed_at + duration - now
    if left <= 0:
        return LeaseDecision("take_over", retry_period_s)
    return LeaseDecision("wait", min(retry_period_s, left))


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _micro(value: datetime) -> str:
    """A ``MicroTime`` as the API server writes it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_lease(obj: Manifest) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(holder=spec.get("holderIdentity") or None, duration_s=int(spec.get("leaseDurationSeconds") or 0),
                       renew_time=_time(spec.get("renewTime")), acquire_time=_time(spec.get("acquireTime")),
                       transitions=int(spec.get("leaseTransitions") or 0),
                       resource_version=str((obj.get("metadata") or {}).get("resourceVersion", "")))


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def candidate_identity() -> str:
    """A holder identity unique to this process (client-go's shape: host name, then a random suffix), so a
    restarted pod with the same name never mistakes its predecessor's Lease for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def own_namespace(default: str = "modelpier-system") -> str:
    """The namespace this pod runs in (its service account's), else ``default`` outside a cluster."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or default
    except OSError:
        return default


class LeaderElector:
    """Campaign for one Lease until cancelled; ``is_leader`` is set while this replica leads."""

    def __init__(self, api: KubeApi, *, namespace: str, name: str, identity: str, lease_duration_s: float = 15.0,
                 renew_deadline_s: float = 10.0, retry_period_s: float = 2.0, clock: Clock | None = None) -> None:
        if not retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need retry_period_s < renew_deadline_s < lease_duration_s")
        self._api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self._duration, self._deadline, self._retry = lease_duration_s, renew_deadline_s, retry_period_s
        self._clock = clock or SystemClock()
        self.is_leader = asyncio.Event()
        self.not_leader = asyncio.Event()  # the inverse, so both can be awaited
        self.not_leader.set()
        self._seen: tuple[str, float] | None = None  # (resourceVersion, when we first saw it)
        self._renewed_at = 0.0
        self.transitions = 0  # times this elector became leader (for tests and metrics)

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    async def run(self, on_elected: Callable[[], Awaitable[None]] | None = None,
                  on_lost: Callable[[], Awaitable[None]] | None = None) -> None:
        """Campaign forever; calls ``on_elected`` on becoming leader and ``on_lost`` on losing it. When
        cancelled, a leader releases the Lease so another replica takes over at once."""
        try:
            while True:
                delay = await self._step(on_elected, on_lost)
                await asyncio.sleep(delay)
        finally:
            if self.is_leader.is_set():
                self.is_leader.clear()
                self.not_leader.set()
                await asyncio.shield(self._release())
                if on_lost is not None:
                    await on_lost()

    async def _step(self, on_elected: Callable[[], Awaitable[None]] | None,
                    on_lost: Callable[[], Awaitable[None]] | None) -> float:
        now = self._clock.monotonic()
        try:
            won, delay = await self._try(now)
        except Exception as exc:  # the campaign never dies: an unreachable API server is a failed renewal
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            won, delay = None, self._retry
        if won is None and self.is_leader.is_set():
            won = now - self._renewed_at < self._deadline  # keep leading until the renew deadline passes
        if won and not self.is_leader.is_set():
            self.transitions += 1
            self.is_leader.set()
            self.not_leader.clear()
            log.info("lease %s/%s: %s is the leader", self.namespace, self.name, self.identity)
            if on_elected is not None:
                await on_elected()
        elif won is False and self.is_leader.is_set():
            self.is_leader.clear()
            self.not_leader.set()
            log.warning("lease %s/%s: %s lost the lease", self.namespace, self.name, self.identity)
            if on_lost is not None:
                await on_lost()
        return delay

    async def _try(self, now: float) -> tuple[bool | None, float]:
        """``(True, _)`` leading, ``(False, _)`` following, ``(None, _)`` undecided (a write raced)."""
        obj = await self._api.get(self._path)
        record = parse_lease(obj) if obj is not None else None
        if record is not None and (self._seen is None or self._seen[0] != record.resource_version):
            self._seen = (record.resource_version, now)
        observed_at = self._seen[1] if self._seen is not None else now
        decision = decide_lease(record, self.identity, now=now, observed_at=observed_at,
                                lease_duration_s=self._duration, retry_period_s=self._retry)
        if decision.action == "wait":
            return False, decision.retry_in_s
        wall = self._clock.now()
        spec: Manifest = {"holderIdentity": self.identity, "leaseDurationSeconds": round(self._duration),
                          "renewTime": _micro(wall)}
        try:
            if decision.action == "create" or obj is None:
                spec |= {"acquireTime": _micro(wall), "leaseTransitions": 0}
                await self._api.create(self._path.rsplit("/", 1)[0], {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec})
            else:
                assert record is not None
                if decision.action == "take_over":
                    spec |= {"acquireTime": _micro(wall), "leaseTransitions": record.transitions + 1}
                else:
                    spec |= {"acquireTime": _micro(record.acquire_time or wall),
                             "leaseTransitions": record.transitions}
                await self._api.replace(self._path, {**obj, "spec": {**(obj.get("spec") or {}), **spec}})
        except KubeApiError as exc:
            if exc.status == 409:  # another candidate wrote first (create or resourceVersion): read again
                return None, self._retry
            raise
        self._renewed_at = now
        return True, decision.retry_in_s

    async def _release(self) -> None:
        """Give the Lease up (no holder, duration 1 s), so a follower takes over at its next look."""
        try:
            obj = await self._api.get(self._path)
            if obj is None or (obj.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**(obj.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1,
                    "renewTime": _micro(self._clock.now())}
            await self._api.replace(self._path, {**obj, "spec": spec})
        except Exception as exc:
            log.warning("lease %s/%s: release failed (another replica takes over after the lease expires): %s",
                        self.namespace, self.name, exc)


class LeaseLeadership:
    """The composition root's ``Leadership`` (``control/platform.py``) over a ``LeaderElector``.

    ``acquire`` starts the campaign on first use and returns once this replica leads; ``lost``
    returns when it no longer does; ``release`` (at shutdown) ends the campaign for good and gives
    the Lease up, so a standby takes over at once. Several holders (the reconciler, the CR synchroniser) may share one:
    there is one campaign per process.
    """

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self._campaign: asyncio.Task[None] | None = None
        self._released = False  # at shutdown: never campaign again

    async def acquire(self) -> None:
        if self._released:
            await asyncio.Event().wait()  # this process is shutting down: it does not lead again
        if self._campaign is None or self._campaign.done():
            self._campaign = asyncio.create_task(self.elector.run(), name="lease campaign")
        await self.elector.is_leader.wait()

    async def lost(self) -> None:
        await self.elector.not_leader.wait()

    async def release(self) -> None:
        self._released = True
        campaign, self._campaign = self._campaign, None
        if campaign is not None:
            campaign.cancel()
            await asyncio.gather(campaign, return_exceptions=True)
