"""``CustomResourceSync``: ModelDeployment CRs ↔ the control plane's deployments, by LIST+WATCH.

A CR applied with ``kubectl`` or Argo CD is handed to the control plane through ``ControlPlane``
(the same apply as ``pier deploy``); a deployment written through the API is mirrored into its CR;
the control plane's status is written to the CR's status subresource; problems become Kubernetes
Events on the CR. What to do about each deployment is ``crplan.plan_sync`` (pure); this module
only watches and acts. It works from a cache the watch keeps (one LIST, then a WATCH resumed from
the last ``resourceVersion``), so a steady state costs no API requests beyond the watch stream and
a status write when the status changed.

Work is per deployment key: a watch event queues its key; ``trigger()`` (after a write through the
API, from any thread) and a resync every ``resync_s`` queue every key. One worker handles the
queue, so two writes about one deployment never race inside this process. It runs on the leader
only (``lease.py``): two replicas would write the same CRs. Nothing here adds a finalizer: a CR
is deleted at once, with or without the control plane running, and its pods go with it through
their owner references (``owner_reference``).

Wiring (the composition root): ``leadership = LeaseLeadership(LeaderElector(api, ...))`` is
``build_platform``'s ``leadership`` (it gates the reconciler), and
``while_leading(leadership, sync.run)`` runs this synchroniser, with ``sync =
CustomResourceSync(KubeApi.connect(kubeconfig), DeploymentPort(deployments), namespaces=...)``;
``trigger`` after every API write (the ``NotifyingStore`` callback), and the backend's pods take
``owner_reference(project, name)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from modelpier._lib.clock import Clock, SystemClock
from modelpier.backends.kubernetes.crd import from_custom_resource
from modelpier.backends.kubernetes.crplan import (
    ApplyToControl,
    ControlPlane,
    ControlView,
    CustomResource,
    DeleteDeployment,
    DeleteResource,
    FailureReason,
    MirrorToResource,
    RefreshStatus,
    SyncAction,
    plan_sync,
    resource_body,
    resource_status,
    same_spec,
    status_changed,
    without_legacy_marks,
)
from modelpier.backends.kubernetes.events import EventRecorder
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError
from modelpier.backends.kubernetes.names import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelpier.errors import (
    DeadlineExceeded,
    InvalidInput,
    InvalidSpec,
    NotFound,
    PierError,
    RemoteError,
    ServiceUnavailable,
    StoreBusy,
)
from modelpier.spec.deployment import ModelDeploymentSpec

log = logging.getLogger("modelpier.kubernetes.crsync")
Key = tuple[str, str]  # (namespace = project, name)
Manifest = dict[str, Any]
_WATCH_RETRY_S = 1.0  # after a failed list or watch; doubled up to _WATCH_RETRY_MAX_S while it keeps failing
_WATCH_RETRY_MAX_S = 30.0


def collection_path(namespace: str | None) -> str:
    if namespace is None:
        return f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


def resource_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{name}"


class CustomResourceSync:
    def __init__(self, api: KubeApi, control: ControlPlane, *, namespaces: Iterable[str] = (),
                 resync_s: float = 5.0, events: EventRecorder | None = None, clock: Clock | None = None) -> None:
        self._api, self._control = api, control
        self.namespaces = tuple(namespaces)  # () watches every namespace
        self._resync_s = resync_s
        self._events = events or EventRecorder(api, clock=clock)
        self._clock = clock or SystemClock()
        self._cache: dict[Key, Manifest] = {}
        self._pending: set[Key] = set()
        self._full = True  # the next pass looks at every key (CRs and the control plane's deployments)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listed = 0
        self.synced = asyncio.Event()  # set after the first full pass (tests wait for it)
        self.failures = 0  # actions that raised, for metrics and tests
        self.passes = 0  # passes done, for metrics and tests
        self._unmirrorable: set[Key] = set()  # deployments whose namespace does not exist (warned once)

    # -- what others call -------------------------------------------------------------------------
    def trigger(self) -> None:
        """Look at every deployment soon (after a write through the API). Safe from any thread."""
        if self._loop is None:
            self._full = True
            return
        self._loop.call_soon_threadsafe(self._trigger_now)

    def _trigger_now(self) -> None:
        self._full = True
        self._wake.set()

    def owner_reference(self, project: str, name: str) -> Manifest | None:
        """The owner reference that makes an object a child of the deployment's CR (``None``: no CR yet)."""
        obj = self._cache.get((project, name))
        if obj is None:
            return None
        return {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": obj["metadata"]["uid"],
                "controller": True}

    def watches(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    # -- running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Watch and synchronise until cancelled."""
        self._loop = asyncio.get_running_loop()
        scopes: list[str | None] = list(self.namespaces) or [None]
        watchers = [asyncio.create_task(self._watch(scope)) for scope in scopes]
        try:
            while self._listed < len(scopes):
                await self._wait(self._resync_s)
            while True:
                await self._pass()
                self.synced.set()
                if not self._pending and not self._full:
                    woken = await self._wait(self._resync_s)
                    self._full = self._full or not woken
        finally:
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _wait(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def _watch(self, namespace: str | None) -> None:
        """LIST, then WATCH from the list's version; relist when the version is too old (410)."""
        path, first, retry = collection_path(namespace), True, _WATCH_RETRY_S
        while True:
            try:
                listed = await self._api.request("GET", path)
                version = str(listed["metadata"]["resourceVersion"])
                fresh = {_key(o): o for o in listed.get("items") or []}
                stale = [k for k in self._cache if (namespace is None or k[0] == namespace) and k not in fresh]
                for key in stale:
                    del self._cache[key]
                self._cache.update(fresh)
                self._queue([*fresh, *stale])
                if first:
                    first, self._listed = False, self._listed + 1
                retry = _WATCH_RETRY_S
                while version:
                    version = await self._follow(path, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch never dies: log, wait, list again
                log.warning("watch of %s failed, listing again in %.0fs: %s", path, retry, exc)
                await asyncio.sleep(retry)
                retry = min(retry * 2, _WATCH_RETRY_MAX_S)

    async def _follow(self, path: str, version: str) -> str:
        """Apply one watch stream to the cache; the version to resume from ('' to list again)."""
        async for event in self._api.watch(path, resource_version=version):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                log.info("watch of %s ended: %s", path, obj.get("message"))
                return ""
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            key = _key(obj)
            if kind == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            self._queue([key])
        return version

    def _queue(self, keys: Iterable[Key]) -> None:
        self._pending.update(keys)
        self._wake.set()

    def pending(self) -> bool:
        """Whether keys wait for the next pass."""
        return bool(self._pending) or self._full

    async def _pass(self) -> None:
        self.passes += 1
        full, self._full = self._full, False
        keys, self._pending = self._pending, set()
        views: dict[Key, ControlView] | None = None
        if full:
            try:
                listed = await asyncio.to_thread(self._control.list)
            except Exception:
                log.exception("cannot list the control plane's deployments")
                self._full = True
                return
            views = {(v.project, v.name): v for v in listed if self.watches(v.project)}
            keys |= set(self._cache) | set(views)
        for key in sorted(keys):
            try:
                view = views.get(key) if views is not None else await asyncio.to_thread(self._control.status, *key)
                await self._sync(key, view)
            except Exception:
                self.failures += 1
                log.exception("synchronising ModelDeployment %s/%s failed; retried at the next resync", *key)

    # -- one deployment ---------------------------------------------------------------------------
    async def _sync(self, key: Key, view: ControlView | None) -> None:
        obj = self._cache.get(key)
        if obj is not None:
            cleaned = without_legacy_marks(obj)
            if cleaned is not None:  # an upgrade from the operator: its finalizer would block the delete
                log.info("removing the old operator's finalizer from ModelDeployment %s/%s", *key)
                try:
                    self._cache[key] = obj = await self._api.replace(resource_path(*key), cleaned)
                except KubeApiError as exc:
                    if exc.status in (404, 409):  # deleted or changed meanwhile: the watch brings it back
                        return
                    raise
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                obj = None  # being deleted (another finalizer holds it): gone, as far as the deployment goes
        resource = CustomResource.of(obj) if obj is not None else None
        parsed, problem = _parse(obj) if obj is not None else (None, None)
        action = plan_sync(resource, view, parsed)
        await self._act(action, obj, view, parsed, problem)

    async def _act(self, action: SyncAction, obj: Manifest | None, view: ControlView | None,
                   parsed: ModelDeploymentSpec | None, problem: str | None) -> None:
        if isinstance(action, ApplyToControl):
            assert obj is not None
            await self._apply(action.resource, obj, view, parsed, problem)
        elif isinstance(action, MirrorToResource):
            await self._mirror(action.view, action.resource, obj)
        elif isinstance(action, DeleteDeployment):
            log.info("ModelDeployment %s/%s was deleted: deleting the deployment", action.project, action.name)
            with contextlib.suppress(NotFound):
                await asyncio.to_thread(self._control.delete, action.project, action.name)
        elif isinstance(action, DeleteResource):
            log.info("deployment %s/%s is being deleted: deleting its ModelDeployment", action.resource.namespace,
                     action.resource.name)
            await self._api.delete(resource_path(action.resource.namespace, action.resource.name))
        elif isinstance(action, RefreshStatus):
            assert obj is not None
            failure = _recorded_failure(action.resource)
            await self._write_status(obj, action.view, action.resource.generation, failure)

    async def _apply(self, resource: CustomResource, obj: Manifest, view: ControlView | None,
                     parsed: ModelDeploymentSpec | None, problem: str | None) -> None:
        key = (resource.namespace, resource.name)
        if parsed is None:
            message = problem or "the spec does not validate"
            await self._events.record(obj, "Warning", "InvalidSpec", message)
            await self._write_status(obj, view, resource.generation, ("InvalidSpec", message))
            return
        if view is not None and not view.deleting and same_spec(parsed, view.spec):
            # The control plane runs this spec already (the CR mirrors it, or was re-applied unchanged):
            # applying again would only re-resolve aliases, which a mirror must not do.
            if not view.bound:
                await asyncio.to_thread(self._control.bind, *key, _describe(resource))
            await self._write_status(obj, view, resource.generation, None)
            return
        try:
            applied = await asyncio.to_thread(self._control.apply, resource.namespace, resource.name, parsed,
                                              f"kubernetes/{resource.manager}")
        except (InvalidSpec, InvalidInput) as exc:
            await self._events.record(obj, "Warning", "InvalidSpec", exc.message)
            await self._write_status(obj, view, resource.generation, ("InvalidSpec", exc.message))
            return
        except PierError as exc:
            if isinstance(exc, ServiceUnavailable | StoreBusy | RemoteError | DeadlineExceeded):
                raise  # transient: retried at the next resync
            await self._events.record(obj, "Warning", "ApplyFailed", exc.message)
            await self._write_status(obj, view, resource.generation, ("ApplyFailed", exc.message))
            return
        if view is None or not view.bound:
            await asyncio.to_thread(self._control.bind, *key, _describe(resource))
        if applied.created:
            await self._events.record(obj, "Normal", "RevisionCreated",
                                      f"revision {applied.revision} applied by kubernetes/{resource.manager}")
        fresh = await asyncio.to_thread(self._control.status, *key)
        await self._write_status(obj, fresh, resource.generation, None)

    async def _mirror(self, view: ControlView, resource: CustomResource | None, obj: Manifest | None) -> None:
        """Make the CR's spec the control plane's. A replace checked against ``resourceVersion`` rather
        than server-side apply: apply would leave every field another manager owns (a ``cache`` that
        ``kubectl apply`` set and ``pier deploy`` removed), so the CR would not show what runs; a
        ``kubectl`` edit landing in between makes the replace fail with 409 and is applied next."""
        body = resource_body(view, resource)
        try:
            if resource is None:
                written = await self._api.create(collection_path(view.project), body)
                await asyncio.to_thread(self._control.bind, view.project, view.name,
                                        _describe(CustomResource.of(written)))
            else:
                written = await self._api.replace(resource_path(view.project, view.name), {**(obj or {}), **body,
                                                  "metadata": {**(obj or {}).get("metadata", {}), **body["metadata"]}})
        except KubeApiError as exc:
            if exc.status == 409:  # written meanwhile: the watch brings the new version, and its key back
                return
            if exc.status == 404 and resource is None:  # no such namespace: said once, tried at each resync
                if (view.project, view.name) not in self._unmirrorable:
                    self._unmirrorable.add((view.project, view.name))
                    log.warning("cannot create the ModelDeployment of %s/%s: %s (create the namespace %s)",
                                view.project, view.name, exc.message, view.project)
                return
            raise
        self._unmirrorable.discard((view.project, view.name))
        self._cache[(view.project, view.name)] = written
        await self._events.record(written, "Normal", "SpecFromControlPlane",
                                  f"spec of revision {view.revision} written by the control plane "
                                  "(pier deploy, rollback or canary)")

    async def _write_status(self, obj: Manifest, view: ControlView | None, generation: int,
                            failure: tuple[FailureReason, str] | None) -> None:
        meta = obj["metadata"]
        current = dict(obj.get("status") or {})
        status = resource_status(view, generation=generation, failure=failure, previous=current,
                                 now=self._clock.now())
        if not status_changed(current, status):
            return
        try:
            written = await self._api.merge_patch(f"{resource_path(meta['namespace'], meta['name'])}/status",
                                                  {"status": status})
        except KubeApiError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise
        self._cache[_key(written)] = written


def _key(obj: Manifest) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _describe(resource: CustomResource) -> str:
    return f"ModelDeployment {resource.namespace}/{resource.name} (uid {resource.uid})"


def _parse(obj: Manifest) -> tuple[ModelDeploymentSpec | None, str | None]:
    try:
        return from_custom_resource(obj).spec, None
    except InvalidSpec as exc:
        return None, exc.message


def _recorded_failure(resource: CustomResource) -> tuple[FailureReason, str] | None:
    reason = resource.failure
    if reason is None:
        return None
    message = next((str(c.get("message") or "") for c in resource.status.get("conditions") or []
                    if c.get("type") == "Degraded"), "")
    return reason, message
