"""The Kubernetes backend: replicas are pods, driven by the same reconciler as local processes.

Implements ``backends.base.Backend`` (``backends/local/supervisor.py`` is the other one) with one Pod
per replica (``pods.py``): the replica id is a slot, each start or restart of the slot a new pod
(generation in its name); ``restart`` deletes the slot's pod and creates the next one at once.
Why pods and not a Deployment per predictor: the reconciler already owns the rollout, the crash
backoff and which replica goes first, as it does locally; a ReplicaSet would be a second decider
racing it (and it could not restart one chosen replica, or keep a slot's identity).

Observing costs no API request: an ``Informer`` (LIST, then WATCH) keeps every pod labelled
``app.kubernetes.io/managed-by=modelpier`` — of one namespace (``kubernetes.namespace``) or, with a
namespace per project, of the cluster — and ``observe`` reads that cache. Phases:

* ``starting``: no Ready condition yet (scheduling, pulling the model, loading); a waiting reason
  (``ErrImagePull``, ``Unschedulable``) is the observation's ``last_log``, for the rollout's failure;
* ``ready``: the pod's Ready condition (the kubelet's readiness probe of ``/v2/health/ready``);
  ``url`` is ``http://POD_IP:8080``, ``grpc_url`` ``POD_IP:8081``;
* ``unready``: was ready, the condition went False; ``failed_probes`` counts the probe periods since,
  so the planner's liveness policy restarts a hung pod as it restarts a hung process;
* ``exited``: the server (or the model pull) ended, with its exit code and last log lines fetched
  once per pod; ``restartPolicy: Never`` leaves the restart to the reconciler's backoff;
* ``stopping``: from ``stop`` (the deregistration delay: gateways stop routing first), then while the
  pod's ``deletionTimestamp`` is set (SIGTERM, the server drains within its grace period).

Pods are written with server-side apply (field manager ``modelpier``) and owned by their
``ModelDeployment`` custom resource when one of that name exists in the pod's namespace (a second,
optional informer), so deleting the CR collects its pods even with the control plane down.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes.config import ConfigException

from modelpier._lib.clock import Clock, SystemClock
from modelpier._lib.ids import new_id
from modelpier.backends.base import ReplicaObservation, ReplicaPhase, ReplicaSpec
from modelpier.backends.kubernetes.informer import Informer
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError, Manifest, load_configuration
from modelpier.backends.kubernetes.names import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelpier.backends.kubernetes.options import DEFAULT_IMAGE, GRPC_PORT, HTTP_PORT
from modelpier.backends.kubernetes.pods import (
    PULL,
    SELECTOR,
    SERVER,
    PodOptions,
    PodView,
    host_port,
    pod_path,
    render_pod,
    view,
)
from modelpier.errors import (
    Conflict,
    Forbidden,
    InvalidSpec,
    NotFound,
    PierError,
    RemoteError,
    RemoteUnreachable,
    ServiceUnavailable,
    Unauthenticated,
)
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec

log = logging.getLogger("modelpier.backends.kubernetes")

_LOG_TAIL = 20  # lines kept with an exited replica's observation, as locally
_SA_ATTEMPTS = 25  # x 0.2 s: how long a new namespace may lack its service account
_RESTART_GRACE_S = 1  # a restarted pod is hung or dead and not routed to: nothing to drain


@dataclass(slots=True)
class _Track:
    """What the cache cannot say about one pod: when this backend saw it become ready or unready."""

    adopted: bool
    ready_since: float | None = None
    ever_ready: bool = False
    unready_since: float | None = None
    last_log: tuple[str, ...] | None = None  # fetched once, when the pod is first seen exited


FIELD_MANAGER = "modelpier"  # server-side apply's owner of everything the backend writes


_REFUSALS: dict[int, tuple[type[PierError], str]] = {
    0: (RemoteUnreachable, "cannot reach the Kubernetes API server: "),
    401: (Unauthenticated, "the Kubernetes API server rejected the control plane's credentials: "),
    403: (Forbidden, "the Kubernetes API server forbids it: "),
    404: (NotFound, ""),
    409: (Conflict, ""),
    422: (InvalidSpec, "the Kubernetes API server rejected the object: "),
}


def pier_error(exc: KubeApiError) -> PierError:
    """The error of the one tree for an API server's refusal (the reconciler reports these as events)."""
    known = _REFUSALS.get(exc.status)
    if known is None:
        return RemoteError(f"the Kubernetes API server answered {exc.status}: {exc.message}", status=502)
    cls, prefix = known
    return cls(prefix + exc.message)


def _connect(kubeconfig: str | None) -> KubeApi:
    try:
        return KubeApi(load_configuration(kubeconfig))
    except (ConfigException, OSError) as exc:
        raise ServiceUnavailable(f"no usable Kubernetes credentials ({exc}): set kubernetes.kubeconfig "
                                 "(PIER_KUBERNETES__KUBECONFIG) or run in a cluster") from None


def refuse_kubernetes(spec: ModelDeploymentSpec) -> None:
    """What the Kubernetes backend cannot run: ``isolated`` (a pod's environment is its image; build one with
    the model's own environment with ``pier build image`` and name it in ``image``)."""
    for i, predictor in enumerate(spec.predictors):
        if predictor.isolated:
            raise InvalidSpec(
                f"spec.predictors.{i}.isolated: predictor {predictor.name!r} asks for an isolated virtualenv, which "
                f"the Kubernetes backend does not build in pods; the pod's environment is its image: build one "
                f"holding the model and its environment (`pier build image`) and set `image` instead",
                details={"field": f"spec.predictors.{i}.isolated", "predictor": predictor.name})


class KubernetesBackend:
    """Replicas as pods on a cluster (implements ``backends.base.Backend``). ``api``: an API client already
    made (tests count its requests); by default one from ``settings.kubernetes``' credentials."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None, api: KubeApi | None = None,
                 id_factory: Callable[[], str] = lambda: new_id(4)) -> None:
        k8s, platform = settings.kubernetes, settings.platform
        self._api = api or _connect(str(k8s.kubeconfig) if k8s.kubeconfig else None)
        self._clock = clock or SystemClock()
        self._ids = id_factory
        self._namespace = k8s.namespace
        self._create_namespaces = k8s.create_namespaces
        self._sync_timeout = k8s.startup_sync_timeout_s
        self._watch_timeout = k8s.watch_timeout_s
        self._deregistration_delay = platform.deregistration_delay_s
        self._options = PodOptions(
            image=k8s.image or DEFAULT_IMAGE, image_pull_policy=k8s.image_pull_policy,
            image_pull_secrets=tuple(k8s.image_pull_secrets), registry_url=k8s.registry_url,
            registry_token_secret=k8s.registry_token_secret, service_account=k8s.service_account,
            probe_period_s=k8s.ready_probe_period_s, probe_failures=k8s.ready_probe_failures,
            probe_timeout_s=platform.probe_timeout_s, stop_grace_s=platform.stop_grace_s,
            extra_drain_s=k8s.extra_drain_s, log_level=k8s.log_level)
        self._pods: Informer | None = None
        self._owners: Informer | None = None
        self._tracks: dict[str, _Track] = {}  # by pod uid
        self._views: dict[tuple[str, str], PodView | None] = {}  # by pod uid and resourceVersion
        self._stopping: set[str] = set()  # replica ids in their deregistration delay or being deleted
        self._owned: set[str] = set()  # pod uids whose owner is settled (set, or being set)
        self._namespaces: set[str] = set()  # known to exist
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_sync = True
        self._closed = False

    @property
    def api_requests(self) -> Counter[str]:
        """API requests made so far by verb and resource (``LIST pods``, ``WATCH pods``, ``APPLY pods``...)."""
        return self._api.requests

    # -- the cache --------------------------------------------------------------------------------
    async def _synced(self) -> Informer:
        if self._pods is None:
            scope = "/api/v1" if self._namespace is None else f"/api/v1/namespaces/{self._namespace}"
            crs = f"/apis/{GROUP}/{VERSION}" + ("" if self._namespace is None else f"/namespaces/{self._namespace}")
            self._pods = Informer(self._api, f"{scope}/pods", "pods", params={"labelSelector": SELECTOR},
                                  watch_timeout_s=self._watch_timeout)
            self._owners = Informer(self._api, f"{crs}/{PLURAL}", PLURAL, watch_timeout_s=self._watch_timeout,
                                    optional=True)
            self._pods.start()
            self._owners.start()
        if not self._pods.synced.is_set():
            try:
                await asyncio.wait_for(self._pods.synced.wait(), self._sync_timeout)
            except TimeoutError:
                raise ServiceUnavailable(f"the Kubernetes API server did not list the replica pods within "
                                         f"{self._sync_timeout:g}s") from None
        if self._first_sync:  # pods found by the first list were started by an earlier control plane
            self._first_sync = False
            for pod in self._pods.objects.values():
                uid = pod["metadata"].get("uid", "")
                self._tracks.setdefault(uid, _Track(adopted=True))
        return self._pods

    async def _slots(self) -> dict[str, list[PodView]]:
        """Each replica's pods, newest generation first."""
        pods = await self._synced()
        slots: dict[str, list[PodView]] = defaultdict(list)
        views: dict[tuple[str, str], PodView | None] = {}
        for pod in list(pods.objects.values()):
            meta = pod.get("metadata") or {}
            key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
            # Reading a pod parses its spec annotation and timestamps: once per version of the pod.
            seen = views[key] = self._views[key] if key in self._views else view(pod)
            if seen is not None:
                slots[seen.replica_id].append(seen)
        self._views = views
        for slot in slots.values():
            slot.sort(key=lambda v: -v.generation)
        return slots

    async def _slot(self, replica_id: str) -> list[PodView]:
        views = (await self._slots()).get(replica_id)
        if not views:
            raise NotFound(f"no replica {replica_id}")
        return views

    # -- the Backend protocol ---------------------------------------------------------------------
    def refuse(self, spec: ModelDeploymentSpec) -> None:
        refuse_kubernetes(spec)

    async def start(self, spec: ReplicaSpec) -> str:
        await self._synced()
        replica_id = f"{spec.predictor}-{self._ids()}"
        await self._create(spec, replica_id, 0)
        return replica_id

    async def restart(self, replica_id: str) -> None:
        views = await self._slot(replica_id)
        newest = views[0]
        for old in views:
            if old.phase != "deleting":
                log.info("deleting pod %s/%s to restart replica %s", old.namespace, old.name, replica_id)
                await self._delete(old, grace_s=_RESTART_GRACE_S)
        await self._create(newest.spec, replica_id, newest.generation + 1)

    async def stop(self, replica_id: str, reason: str) -> None:
        await self._slot(replica_id)
        if replica_id in self._stopping:
            return
        self._stopping.add(replica_id)
        log.info("stopping replica %s: %s", replica_id, reason)
        task = asyncio.create_task(self._drain(replica_id), name=f"stop {replica_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def observe(self) -> list[ReplicaObservation]:
        slots = await self._slots()
        uids = {v.uid for views in slots.values() for v in views}
        self._tracks = {u: t for u, t in self._tracks.items() if u in uids}
        self._stopping &= set(slots)
        self._owned &= uids
        self._own_late([v for views in slots.values() for v in views])
        # Concurrently: a pass that first sees many crashes asks for their logs at once, not in a row.
        return list(await asyncio.gather(*(self._observe(views[0]) for _, views in sorted(slots.items()))))

    def logs(self, project: str, deployment: str, *, predictor: str | None = None, tail: int = 100) -> list[str]:
        pods = self._pods
        if pods is None:
            return []
        newest: dict[str, PodView] = {}
        for pod in list(pods.objects.values()):
            v = view(pod)
            if v is None or (v.spec.project, v.spec.deployment) != (project, deployment) or \
                    predictor not in (None, v.spec.predictor):
                continue
            if v.replica_id not in newest or v.generation > newest[v.replica_id].generation:
                newest[v.replica_id] = v
        lines: list[str] = []
        for replica_id, v in sorted(newest.items()):
            container = v.ended_container or (PULL if v.phase == "starting" and v.spec.image is None else SERVER)
            try:
                text = self._api.text_sync(f"{pod_path(v.namespace, v.name)}/log",
                                           {"container": container, "tailLines": tail})
            except KubeApiError as exc:
                text = f"(no log from pod {v.name}: {pier_error(exc).message})"
            lines += [f"[{replica_id}] {line}" for line in text.splitlines()[-tail:]]
        return lines

    async def close(self) -> None:
        """Finish the drains already begun (bounded); stop watching. Pods keep running (a restart adopts them)."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._deregistration_delay + 10)
        for informer in (self._pods, self._owners):
            if informer is not None:
                await informer.stop()
        await self._api.close()

    # -- internals --------------------------------------------------------------------------------
    def _namespace_of(self, spec: ReplicaSpec) -> str:
        return self._namespace or spec.project

    async def _ensure_namespace(self, namespace: str) -> None:
        if self._namespace is not None or not self._create_namespaces or namespace in self._namespaces:
            return
        path = f"/api/v1/namespaces/{namespace}"
        try:
            if await self._api.get(path) is None:
                log.info("creating namespace %s for project %s (PodSecurity restricted)", namespace, namespace)
                # A plain create, not server-side apply: the Role grants `create` on namespaces, never
                # `patch` (apply is a PATCH), so the control plane cannot change a namespace it did not make.
                await self._api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                                  "app.kubernetes.io/managed-by": "modelpier"}}})
        except KubeApiError as exc:
            if exc.status != 409:  # 409: made meanwhile (another replica, a user), which is what we wanted
                raise pier_error(exc) from None
        self._namespaces.add(namespace)

    def _owner(self, namespace: str, spec: ReplicaSpec) -> Manifest | None:
        """The deployment's ModelDeployment CR as an ownerReference, when it lives beside the pod."""
        owners = self._owners
        if owners is None or namespace != spec.project:  # a CR's namespace is its project
            return None
        cr = owners.objects.get((namespace, spec.deployment))
        if cr is None:
            return None
        return {"apiVersion": API_VERSION, "kind": KIND, "name": spec.deployment, "uid": cr["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": False}

    def _own_late(self, views: list[PodView]) -> None:
        """Pods started before their ModelDeployment resource existed (a deployment made through the API, then
        mirrored as a resource) get it as their owner, once each, in the background."""
        pods = self._pods
        for v in views:
            if v.uid in self._owned or v.phase == "deleting" or pods is None:
                continue
            owner = self._owner(v.namespace, v.spec)
            if owner is None:
                continue
            self._owned.add(v.uid)
            refs = ((pods.objects.get((v.namespace, v.name)) or {}).get("metadata") or {}).get("ownerReferences")
            if not any(r.get("uid") == owner["uid"] for r in refs or []):
                task = asyncio.create_task(self._set_owner(v, owner), name=f"own {v.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _set_owner(self, v: PodView, owner: Manifest) -> None:
        try:
            patched = await self._api.merge_patch(pod_path(v.namespace, v.name), {"metadata": {
                "ownerReferences": [owner], "uid": v.uid}})
        except KubeApiError as exc:
            log.warning("could not make %s the owner of pod %s: %s", owner["name"], v.name, exc)
            self._owned.discard(v.uid)  # the next pass tries again
            return
        if self._pods is not None:
            self._pods.put(patched)

    async def _create(self, spec: ReplicaSpec, replica_id: str, generation: int) -> None:
        namespace = self._namespace_of(spec)
        await self._ensure_namespace(namespace)
        pod = render_pod(spec, replica_id, generation, namespace=namespace, options=self._options,
                         owner=self._owner(namespace, spec))
        name = pod["metadata"]["name"]
        for attempt in range(_SA_ATTEMPTS):
            try:
                stored = await self._api.apply(pod_path(namespace, name), pod, field_manager=FIELD_MANAGER)
                break
            except KubeApiError as exc:
                if exc.status == 404:
                    raise ServiceUnavailable(f"cannot create pod {name} in namespace {namespace}: {exc.message} "
                                             f"(create the namespace, or set kubernetes.namespace)") from None
                # A namespace made a moment ago has no default service account until the controller manager
                # adds it, and admission refuses pods meanwhile: worth a few short waits, not a failed start.
                if exc.status != 403 or "serviceaccount" not in exc.message or attempt == _SA_ATTEMPTS - 1:
                    raise pier_error(exc) from None
                await asyncio.sleep(0.2)
        assert self._pods is not None
        self._tracks.setdefault(stored["metadata"]["uid"], _Track(adopted=False))
        self._pods.put(stored)
        log.info("created pod %s/%s for replica %s (%s, generation %d)", namespace, name, replica_id, spec.model,
                 generation)

    async def _delete(self, v: PodView, *, grace_s: int | None = None) -> None:
        grace = grace_s if grace_s is not None else math.ceil(self._options.stop_grace_s + self._options.extra_drain_s)
        try:
            left = await self._api.delete(pod_path(v.namespace, v.name), grace_s=grace, uid=v.uid)
        except KubeApiError as exc:
            raise pier_error(exc) from None
        if left is not None and self._pods is not None:
            self._pods.put(left)

    async def _drain(self, replica_id: str) -> None:
        try:
            if self._deregistration_delay > 0:
                await asyncio.sleep(self._deregistration_delay)  # gateways stop routing to it first
            for v in (await self._slots()).get(replica_id, []):
                if v.phase != "deleting":
                    await self._delete(v)
        except PierError as exc:
            # Not stopping after all: the next pass sees it live and stops it again.
            log.warning("stopping replica %s failed: %s", replica_id, exc.message)
            self._stopping.discard(replica_id)

    async def _observe(self, v: PodView) -> ReplicaObservation:
        track = self._tracks.setdefault(v.uid, _Track(adopted=True))
        now = self._clock.now().timestamp()
        phase: ReplicaPhase
        last_log: tuple[str, ...] = ()
        failed = 0
        if v.replica_id in self._stopping or v.phase == "deleting":
            phase = "stopping"
        elif v.phase == "exited":
            phase = "exited"
            track.ready_since = None
            if track.last_log is None:
                why = (f"(pod {v.name} ended: {v.ended_why})",) if v.ended_why else ()
                track.last_log = (await self._last_log(v) if v.ended_container else ()) + why
            last_log = track.last_log
        elif v.phase == "ready":
            phase = "ready"
            if track.ready_since is None:
                track.ready_since = now
            track.ever_ready, track.unready_since = True, None
        elif track.ever_ready:
            phase = "unready"
            track.ready_since = None
            if track.unready_since is None:
                track.unready_since = now
            # The kubelet counted probe_failures failures to take the condition away, then one per period.
            failed = self._options.probe_failures + int((now - track.unready_since) / self._options.probe_period_s)
        else:
            phase = "starting"
            last_log = v.waiting
        live = phase != "exited" and v.ip is not None
        return ReplicaObservation(
            replica_id=v.replica_id, spec=v.spec, phase=phase,
            url=f"http://{host_port(v.ip, HTTP_PORT)}" if live and v.ip else None,
            grpc_url=host_port(v.ip, GRPC_PORT) if live and v.ip else None,
            pid=v.generation + 1, started_at=v.started_at, ready_since=track.ready_since,
            exit_code=v.exit_code if phase == "exited" else None, last_log=last_log, restarts=v.generation,
            adopted=track.adopted, failed_probes=failed,
            unready_since=track.unready_since if phase == "unready" else None)

    async def _last_log(self, v: PodView) -> tuple[str, ...]:
        container = v.ended_container or SERVER
        try:
            text = await self._api.text(f"{pod_path(v.namespace, v.name)}/log",
                                        {"container": container, "tailLines": _LOG_TAIL})
        except KubeApiError as exc:
            return (f"(no log from container {container} of pod {v.name}: {pier_error(exc).message})",)
        return tuple(text.splitlines()[-_LOG_TAIL:])

