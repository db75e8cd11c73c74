"""The one composition root of a control plane: ``build_platform(settings, backend)``.

``pier up`` and ``pier server`` both call it; they differ only in the backend they pass and the
daemons they start beside it (``pier up``: the local backend and a detached gateway). It wires the
metadata store, registry, auth, traffic store, replica history, canary driver, autoscaler, routing
feed, the reconciler and the API (``control/api/app.py``). The reconciler reads the plain store; the API
gets the same store wrapped to wake the reconciler after each write, and serves the routing table the
reconciler publishes at ``GET /api/v1/routing`` (what a separately started ``pier gateway`` polls).
Without a backend (``platform.backend = "none"``) the API keeps desired state and nothing reconciles
it: the routing route then serves an empty table.

The reconciler runs only while this process leads (``Leadership``; by default it always does). Each
term of leadership gets a fresh reconciler, which starts from fresh observations; losing leadership
stops it, so two control planes never act on one backend at once. ``serve_platform`` runs the API
under uvicorn with the shutdown order the gateways need: release held routing polls, stop
reconciling, stop serving, close the backend. Replicas outlive the process (a restart adopts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI

from modelpier._lib.clock import Clock, SystemClock
from modelpier._lib.leadership import AlwaysLeader, Leadership, while_leading
from modelpier.auth.quota import Limits
from modelpier.auth.secret import load_or_create_secret
from modelpier.auth.service import AuthService
from modelpier.auth.sql import SqlAuthStore
from modelpier.backends.base import Backend
from modelpier.backends.factory import build_backend_parts
from modelpier.backends.kubernetes.crplan import ControlPlane
from modelpier.backends.local.supervisor import refuse_local
from modelpier.control.api.app import ControlParts, build_control_plane
from modelpier.control.api.routes.routing import RoutingFeed
from modelpier.control.canary.driver import CanaryDriver
from modelpier.control.deployments.custom_resources import DeploymentPort
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.deployments.state import DeploymentStore
from modelpier.control.reconciler.actions import PlanPolicy
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.reconciler.loop import Reconciler
from modelpier.control.reconciler.notify import NotifyingStore
from modelpier.control.reconciler.plan import DeploymentTarget
from modelpier.control.reconciler.status import build_routing_table
from modelpier.control.store import SqlCanaryStore, SqlDeploymentStore
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import TrafficStore
from modelpier.errors import ServiceUnavailable
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.settings import Settings
from modelpier.spec.routing import RoutingTable

log = logging.getLogger("modelpier.platform")

RECONCILER_STOP_S = 10.0  # a pass in flight may finish its actions before the next term or the exit
STANDBY_LOOK_S = 1.0  # at least this between a standby's looks at the backend and the store
RESTART_S = 1.0  # pause before a new term when a reconciler ended by itself


class BackendParts(Protocol):
    """What a backend runs beside the reconciler (``backends/factory.py::build_backend_parts``; the Kubernetes
    backend's are ``backends/kubernetes/platform.py``): a ``leadership`` gate shared by every part that acts,
    a synchroniser bound to the API's deployments (``bind``), woken after each API write (``wake``), run
    while leading (``run``, until cancelled), and closed last (``close``)."""

    @property
    def leadership(self) -> Leadership: ...

    def bind(self, control: ControlPlane) -> None: ...

    def wake(self) -> None: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


class _Terms:
    """Runs a fresh reconciler for each term of leadership; ``trigger`` wakes the current one, if any.

    Between terms (a standby control plane), ``follow`` keeps the routing table this process serves
    current without acting: it observes the backend (the Kubernetes backend reads its informer's cache)
    and publishes the table of the desired state's ready replicas, so gateways polling any control-plane
    replica through its Service get a useful table. Replicas the leader is draining stay in a standby's
    table until their pod is deleted (the leader's deregistration delay is the leader's alone).
    """

    def __init__(self, new_reconciler: Callable[[], Reconciler], leadership: Leadership,
                 follow: Callable[[], Awaitable[None]] | None = None) -> None:
        self._new, self._leadership, self._follow = new_reconciler, leadership, follow
        self.current: Reconciler | None = None

    def trigger(self) -> None:
        reconciler = self.current
        if reconciler is not None:
            reconciler.trigger()

    async def _acquire(self) -> None:
        if self._follow is None:
            await self._leadership.acquire()
            return
        following: asyncio.Future[None] = asyncio.ensure_future(self._follow())
        try:
            await self._leadership.acquire()
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    async def run(self) -> None:
        while True:
            await self._acquire()
            reconciler = self.current = self._new()
            running = asyncio.create_task(reconciler.run(), name="reconciler")
            lost = asyncio.create_task(self._leadership.lost(), name="leadership")
            ended_by_itself = False
            try:
                await asyncio.wait({running, lost}, return_when=asyncio.FIRST_COMPLETED)
                ended_by_itself = not lost.done()
                if not ended_by_itself:
                    log.warning("this control plane no longer leads: reconciling stops until it leads again")
            finally:
                lost.cancel()
                reconciler.stop()
                try:
                    await asyncio.wait_for(running, RECONCILER_STOP_S)
                except Exception:
                    log.exception("the reconciler did not stop cleanly")
                self.current = None
            if ended_by_itself:  # which a reconciler should never do: start the next term, not in a tight loop
                await asyncio.sleep(RESTART_S)


class Platform:
    """A built control plane: the API ``app`` and what runs beside it, with its lifecycle.

    ``store`` is the plain deployment store the reconciler reads; ``deployments`` the API's use cases,
    whose writes wake the reconciler; ``feed`` the routing table gateways poll. ``start`` begins
    reconciling (while leading), ``stop`` stops it and releases held routing polls, ``close`` releases
    the backend and the store (the app's lifespan closes what the API holds).
    """

    def __init__(self, app: FastAPI, *, store: DeploymentStore, deployments: DeploymentService,
                 registry: Registry, feed: RoutingFeed, backend: Backend | None, terms: _Terms | None,
                 leadership: Leadership, parts: BackendParts | None = None) -> None:
        self.app, self.store, self.deployments, self.registry = app, store, deployments, registry
        self.feed, self.backend, self.parts = feed, backend, parts
        self._terms, self._leadership = terms, leadership
        self._task: asyncio.Task[None] | None = None
        self._parts_task: asyncio.Task[None] | None = None

    @property
    def reconciler(self) -> Reconciler | None:
        """The reconciler of the current term of leadership; None without a backend or while not leading."""
        return self._terms.current if self._terms is not None else None

    async def start(self) -> None:
        if self._terms is not None and self._task is None:
            self._task = asyncio.create_task(self._terms.run(), name="leadership terms")
        if self.parts is not None and self._parts_task is None:
            self._parts_task = asyncio.create_task(self.parts.run(), name="backend parts")

    async def stop(self) -> None:
        self.feed.close()  # releases the gateways' held routing polls, so the server need not wait on them
        tasks = [t for t in (self._task, self._parts_task) if t is not None]
        self._task = self._parts_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            with contextlib.suppress(Exception):
                await self._leadership.release()

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()
        if self.parts is not None:
            await self.parts.close()
        self.store.close()


def _announce_admin_token(token: str) -> None:
    # Printed, not logged: the one place a token is shown, to the operator's terminal, never a log file.
    print(f"modelpier: created the platform admin; its API token (shown once):\n  {token}\n"
          "Store it with `pier login --token ...`, or set PIER_ADMIN_TOKEN before the first start.",
          file=sys.stderr, flush=True)


def build_auth(settings: Settings) -> AuthService:
    """The auth service over the metadata database."""
    secret = settings.auth.secret.get_secret_value() if settings.auth.secret else None
    store = SqlAuthStore.open(settings.resolved_database_url)
    return AuthService(store, load_or_create_secret(settings.home, secret))


def plan_policy(settings: Settings) -> PlanPolicy:
    cfg = settings.platform
    return PlanPolicy(backoff_initial_s=cfg.restart_backoff_s, backoff_max_s=cfg.restart_backoff_max_s,
                      degraded_after=cfg.degraded_after_crashes, liveness_failures=cfg.liveness_failures,
                      liveness_period_s=cfg.liveness_period_s)


def build_platform(settings: Settings, backend: Backend | None, *, registry: Registry | None = None,
                   endpoint_base: str | None = None, leadership: Leadership | None = None,
                   clock: Clock | None = None, backend_parts: BackendParts | None = None,
                   announce_admin_token: Callable[[str], None] = _announce_admin_token) -> Platform:
    """Wire one control plane over ``backend`` (None: the API alone, nothing reconciled).

    ``endpoint_base`` is the gateway's URL written into each deployment's ``status.url`` (default: the
    gateway of these settings, ``http://{gateway.host}:{gateway.port}``). ``backend_parts``: what the backend runs
    beside the reconciler (default: ``build_backend_parts``; the Kubernetes backend's Lease and CR
    synchroniser). ``leadership`` gates the reconciler (default: the parts', else always leads). On the
    first start (no admin yet, no ``PIER_ADMIN_TOKEN``) an admin token is minted and
    ``announce_admin_token`` shows it once.
    """
    registry = registry or build_registry(settings)
    clock = clock or SystemClock()
    extra = backend_parts if backend_parts is not None else build_backend_parts(settings, backend)
    leadership = leadership or (extra.leadership if extra is not None else AlwaysLeader())
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    auth = build_auth(settings)
    feed = RoutingFeed(auth.epoch)  # the table carries the auth epoch: gateways flush token checks on it

    def project_limits(project: str) -> Limits:
        return Limits(**auth.store.limits(project))

    # The gateways' traffic reports feed the autoscaler: one store, shared by the API and the reconciler.
    traffic = TrafficStore(clock)
    replicas = ReplicaHistory(clock)  # the charts' ready/desired replicas over time, from each pass's status
    autoscaler: Autoscaler | None = None
    terms: _Terms | None = None
    api_store: DeploymentStore = store
    if backend is not None:
        autoscaler = Autoscaler(traffic, project_limits)
        base = endpoint_base or f"http://{settings.gateway.host}:{settings.gateway.port}"

        def new_reconciler() -> Reconciler:
            return Reconciler(store, backend, clock, endpoint_base=base, publish=feed.publish,
                              policy=plan_policy(settings), interval_s=settings.platform.reconcile_interval_s,
                              autoscaler=autoscaler, on_status=replicas.record_status)

        async def follow() -> None:
            await _follow_routing(store, backend, feed, max(settings.platform.reconcile_interval_s, STANDBY_LOOK_S))

        # A process that always leads never stands by; one that campaigns (a Lease) follows between terms.
        terms = _Terms(new_reconciler, leadership, None if isinstance(leadership, AlwaysLeader) else follow)
        api_store = NotifyingStore(store, _wake_all(terms, extra))
    else:
        feed.publish(RoutingTable())  # nothing runs here, and that is known: not "no table yet" (503)
    # The backend's refusal of what it cannot run, on every apply (no backend: the local one's, as before).
    deployments = DeploymentService(api_store, registry, log_source=backend.logs if backend else None,
                                    limits=project_limits, refuse=backend.refuse if backend else refuse_local)
    if extra is not None:
        extra.bind(DeploymentPort(deployments))
    minted = auth.bootstrap_admin(settings.admin_token.get_secret_value() if settings.admin_token else None)
    if minted is not None:
        announce_admin_token(minted)
    canaries = CanaryDriver(deployments, traffic, clock, SqlCanaryStore.open(settings.resolved_database_url))
    parts = ControlParts(registry=registry, store=api_store, auth=auth, deployments=deployments,
                         stager=UploadStager(settings.home / "uploads"), traffic=traffic, canaries=canaries,
                         feed=feed, replica_history=replicas, autoscaler=autoscaler,
                         on_traffic_waiting=terms.trigger if terms is not None else None,
                         while_leading=None if isinstance(leadership, AlwaysLeader)
                         else functools.partial(while_leading, leadership))
    app = build_control_plane(settings, parts)
    return Platform(app, store=store, deployments=deployments, registry=registry, feed=feed, backend=backend,
                    terms=terms, leadership=leadership, parts=extra)


def _read_targets(store: DeploymentStore) -> list[DeploymentTarget]:
    targets = []
    for record in store.list_deployments():
        desired = store.revision(record.project, record.name, record.latest_revision)
        serving = (store.revision(record.project, record.name, record.serving_revision)
                   if record.serving_revision is not None else None)
        targets.append(DeploymentTarget(desired, serving, record.deleting))
    return targets


async def _follow_routing(store: DeploymentStore, backend: Backend, feed: RoutingFeed, interval_s: float) -> None:
    """A standby's routing table: observe, read desired state, publish; never act. Until cancelled."""
    while True:
        try:
            observed = await backend.observe()
            targets = await asyncio.to_thread(_read_targets, store)
            feed.publish(build_routing_table(targets, observed))
        except Exception:
            log.exception("a standby could not refresh its routing table; the next look retries")
        await asyncio.sleep(interval_s)


def _wake_all(terms: _Terms, parts: BackendParts | None) -> Callable[[], None]:
    """After an API write: wake the reconciler, and the backend's synchroniser (CRs mirror the write)."""
    if parts is None:
        return terms.trigger

    def wake() -> None:
        terms.trigger()
        parts.wake()

    return wake


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``serve_platform``, which stops things in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_platform(platform: Platform, *, host: str, port: int, log_level: str,
                         started: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve the API on ``host:port`` and reconcile until SIGINT/SIGTERM or the server ends.

    ``started`` runs once the API listens (``pier up`` starts its gateway there). ``ServiceUnavailable``
    when the port cannot be bound. Then, in order: held routing polls are released and reconciling stops,
    the server stops, the backend and store close.
    """
    server = _Server(uvicorn.Config(platform.app, host=host, port=port, log_level=log_level, access_log=False))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await platform.start()
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    signalled = asyncio.create_task(stopping.wait(), name="signals")
    try:
        while not server.started:
            if serving.done():
                raise ServiceUnavailable(f"could not start the control plane: is port {port} (API) already in use?")
            if stopping.is_set():
                return
            await asyncio.sleep(0.05)
        if started is not None:
            starting: asyncio.Future[None] = asyncio.ensure_future(started())
            racing: set[asyncio.Future[Any]] = {starting, serving, signalled}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # its failure stops the platform
            else:  # stopped while starting
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await platform.stop()
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await platform.close()
