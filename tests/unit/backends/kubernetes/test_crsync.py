"""``CustomResourceSync`` over an in-memory API server and control plane: the decisions acted on, without a
cluster (the same scenarios run against a real API server in tests/integration/kubernetes/cluster)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from modelpier.backends.kubernetes.crplan import Applied, ControlView
from modelpier.backends.kubernetes.crsync import CustomResourceSync
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError
from modelpier.errors import InvalidSpec, NotFound
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus

Manifest = dict[str, Any]
PREFIX = "/apis/modelpier.io/v1alpha1/namespaces/"


class FakeServer(KubeApi):
    """ModelDeployments in memory with generation and resourceVersion as the API server keeps them."""

    def __init__(self) -> None:  # no HTTP client
        self.objects: dict[tuple[str, str], Manifest] = {}
        self.events: list[Manifest] = []
        self.version = 0
        self.watchers: list[asyncio.Queue[Manifest]] = []

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    def _emit(self, kind: str, obj: Manifest) -> None:
        for queue in self.watchers:
            queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})

    def put(self, namespace: str, name: str, spec: Any) -> None:
        """kubectl apply."""
        old = self.objects.get((namespace, name))
        meta = copy.deepcopy(old["metadata"]) if old else {"name": name, "namespace": namespace, "uid": f"u-{name}",
                                                             "generation": 0}
        if old is None or old["spec"] != spec:
            meta["generation"] += 1
        meta["resourceVersion"] = self._bump()
        meta["managedFields"] = [{"manager": "kubectl", "time": "t", "fieldsV1": {"f:spec": {}}}]
        obj = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": meta, "spec": spec,
               "status": old.get("status", {}) if old else {}}
        self.objects[(namespace, name)] = obj
        self._emit("MODIFIED" if old else "ADDED", obj)

    def remove(self, namespace: str, name: str) -> None:
        obj = self.objects.pop((namespace, name))
        self._emit("DELETED", obj)

    async def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                      content_type: str = "application/json") -> Manifest:
        if path.startswith("/api/v1/"):  # events: posted, then their count bumped
            if method == "POST":
                self.events.append(body)
            else:
                event = next(e for e in self.events if path.endswith("/" + e["metadata"]["name"]))
                event.update(body)
            return dict(body)
        if method == "GET" and path == "/apis/modelpier.io/v1alpha1/modeldeployments":  # the cluster-wide list
            return {"metadata": {"resourceVersion": str(self.version)}, "items": list(self.objects.values())}
        rest = path.removeprefix(PREFIX).split("/")
        namespace, name = rest[0], rest[2] if len(rest) > 2 else body["metadata"]["name"]
        old = self.objects.get((namespace, name))
        if method == "POST":
            self.put(namespace, name, body["spec"])
            return self.objects[(namespace, name)]
        if old is None:
            raise KubeApiError(404, "NotFound", "not found")
        if method == "PUT":
            if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise KubeApiError(409, "Conflict", "changed")
            self.put(namespace, name, body["spec"])
            return self.objects[(namespace, name)]
        if method == "PATCH":  # the status subresource
            old["status"] = body["status"]
            old["metadata"]["resourceVersion"] = self._bump()
            self._emit("MODIFIED", old)
            return old
        if method == "DELETE":
            self.remove(namespace, name)
            return {}
        raise AssertionError(f"{method} {path}")

    async def watch(self, path: str, *, resource_version: str, timeout_s: int = 300) -> AsyncIterator[Manifest]:
        queue: asyncio.Queue[Manifest] = asyncio.Queue()
        self.watchers.append(queue)
        while True:
            yield await queue.get()


class FakeControl:
    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], ControlView] = {}
        self.revisions: list[tuple[str, str, int, str]] = []  # (project, name, replicas, user)

    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, user: str) -> Applied:
        if spec.predictors[0].model == "unknown:1":
            raise NotFound("spec.predictors.0.model: unknown:1 does not resolve")
        old = self.deployments.get((project, name))
        if old is not None and old.spec == spec:
            return Applied(old.revision, False)
        number = old.revision + 1 if old else 1
        self.deployments[(project, name)] = ControlView(project, name, spec, number, ModelDeploymentStatus(),
                                                        False, bound=old.bound if old else False)
        self.revisions.append((project, name, spec.predictors[0].replicas, user))
        return Applied(number, True)

    def delete(self, project: str, name: str) -> None:
        view = self.deployments[(project, name)]
        self.deployments[(project, name)] = ControlView(view.project, view.name, view.spec, view.revision,
                                                        view.status, True, view.bound)

    def status(self, project: str, name: str) -> ControlView | None:
        return self.deployments.get((project, name))

    def list(self) -> list[ControlView]:
        return list(self.deployments.values())

    def bind(self, project: str, name: str, resource: str) -> None:
        view = self.deployments[(project, name)]
        self.deployments[(project, name)] = ControlView(view.project, view.name, view.spec, view.revision,
                                                        view.status, view.deleting, True)


def spec(replicas: int = 1, model: str = "iris:1") -> Manifest:
    return {"predictors": [{"model": model, "replicas": replicas}]}


def scenario(body: Callable[[FakeServer, FakeControl, CustomResourceSync], Awaitable[None]]) -> None:
    async def run() -> None:
        server, control = FakeServer(), FakeControl()
        sync = CustomResourceSync(server, control, resync_s=0.05)
        task = asyncio.create_task(sync.run())
        try:
            await asyncio.wait_for(sync.synced.wait(), 5)
            await body(server, control, sync)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert sync.failures == 0

    asyncio.run(run())


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def synced(server: FakeServer, key: tuple[str, str] = ("acme", "iris")) -> bool:
    obj = server.objects.get(key)
    return obj is not None and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def test_a_cr_becomes_a_deployment_and_edits_become_revisions() -> None:
    async def body(server: FakeServer, control: FakeControl, _: CustomResourceSync) -> None:
        server.put("acme", "iris", spec(1))
        await until(lambda: synced(server) and len(control.revisions) == 1)
        server.put("acme", "iris", spec(3))
        await until(lambda: synced(server) and len(control.revisions) == 2)
        assert control.revisions == [("acme", "iris", 1, "kubernetes/kubectl"),
                                     ("acme", "iris", 3, "kubernetes/kubectl")]
        assert [e["reason"] for e in server.events] == ["RevisionCreated", "RevisionCreated"]

    scenario(body)


def test_the_control_plane_wins_when_it_writes_last_and_pier_delete_deletes_the_cr() -> None:
    async def body(server: FakeServer, control: FakeControl, sync: CustomResourceSync) -> None:
        control.apply("acme", "iris", ModelDeploymentSpec.model_validate(spec(2)), "alice")  # pier deploy
        sync.trigger()
        await until(lambda: synced(server))
        assert server.objects[("acme", "iris")]["spec"]["predictors"][0]["replicas"] == 2
        control.apply("acme", "iris", ModelDeploymentSpec.model_validate(spec(5)), "alice")
        sync.trigger()
        await until(lambda: synced(server)
                    and server.objects[("acme", "iris")]["spec"]["predictors"][0]["replicas"] == 5)
        assert len(control.revisions) == 2  # mirroring made no revision
        control.delete("acme", "iris")
        sync.trigger()
        await until(lambda: ("acme", "iris") not in server.objects)

    scenario(body)


def test_deleting_the_cr_deletes_the_deployment() -> None:
    async def body(server: FakeServer, control: FakeControl, _: CustomResourceSync) -> None:
        server.put("acme", "iris", spec())
        await until(lambda: synced(server))
        server.remove("acme", "iris")
        await until(lambda: control.deployments[("acme", "iris")].deleting)

    scenario(body)


def test_invalid_and_unapplicable_specs_are_reported_on_the_cr() -> None:
    async def body(server: FakeServer, control: FakeControl, _: CustomResourceSync) -> None:
        server.put("acme", "iris", {"predictors": [{"model": "iris:1", "weight": 50}]})
        await until(lambda: synced(server))
        degraded = next(c for c in server.objects[("acme", "iris")]["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "InvalidSpec"
        assert "weight must add up to 100" in degraded["message"]
        assert control.deployments == {}
        server.put("acme", "iris", spec(model="unknown:1"))
        await until(lambda: synced(server) and any(e["reason"] == "ApplyFailed" for e in server.events))
        assert [(e["type"], e["reason"]) for e in server.events] == [("Warning", "InvalidSpec"),
                                                                     ("Warning", "ApplyFailed")]

    scenario(body)


def test_invalid_spec_error_of_the_control_plane_is_invalid_spec() -> None:
    """What the control plane refuses with 422 (a backend that cannot honour a field) is InvalidSpec too."""
    async def body(server: FakeServer, control: FakeControl, _: CustomResourceSync) -> None:
        def refuse(*_: Any) -> Applied:
            raise InvalidSpec("spec.predictors.0.isolated: the Kubernetes backend cannot run isolated replicas")
        control.apply = refuse  # type: ignore[method-assign]
        server.put("acme", "iris", spec())
        await until(lambda: synced(server))
        reasons = {c["type"]: c["reason"] for c in server.objects[("acme", "iris")]["status"]["conditions"]}
        assert reasons["Degraded"] == "InvalidSpec"

    scenario(body)
