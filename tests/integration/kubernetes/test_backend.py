"""The Kubernetes backend against a real API server and controller manager (v1.28), the test playing the node.

Each test has its own namespace (labelled PodSecurity ``restricted``, so the API server's admission
checks every pod the backend makes); the node's part — binding, pod IPs, container states, the
Ready condition — is written by ``PlayedNode``, so each phase is the API server's real answer to a
real status. API requests are counted by the backend's client: observing reads the watch's cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.backends.kubernetes.crd import custom_resource_definition
from modelpier.errors import NotFound
from modelpier.settings import Settings, load_settings
from tests.support.k8s import ControlPlane, PlayedNode, token_kubeconfig

SPEC = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t1", model="iris:1",
                   cpu="500m", memory="256Mi")


def settings_for(kube: ControlPlane, namespace: str | None, **platform: Any) -> Settings:
    return load_settings(home=kube.dir / "home", kubernetes={
        "kubeconfig": str(kube.kubeconfig), "namespace": namespace, "image": "registry.test/modelpier:1",
        "registry_url": "http://10.199.0.1:8600"}, platform={"deregistration_delay_s": 0, **platform})


async def until(backend: KubernetesBackend, replica_id: str, check: Callable[[ReplicaObservation | None], bool],
                what: str, polls: int = 200) -> ReplicaObservation | None:
    """Observe every 0.05 s until ``check`` holds for the replica (None: gone)."""
    found: ReplicaObservation | None = None
    for _ in range(polls):
        found = {r.replica_id: r for r in await backend.observe()}.get(replica_id)
        if check(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"replica {replica_id} never {what}; last seen {found}")


def phase(name: str) -> Callable[[ReplicaObservation | None], bool]:
    return lambda r: r is not None and r.phase == name


def pods(kube: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return list(kube.get("pods", "-n", namespace, "--show-managed-fields")["items"])


class Backends:
    """Backends made in a scenario, all closed at its end (passed or failed)."""

    def __init__(self) -> None:
        self.made: list[KubernetesBackend] = []

    def __call__(self, settings: Settings) -> KubernetesBackend:
        self.made.append(KubernetesBackend(settings))
        return self.made[-1]

    async def close(self) -> None:
        for backend in self.made:
            await backend.close()


def run(scenario: Callable[[Backends], Awaitable[None]]) -> None:
    async def main() -> None:
        made = Backends()
        try:
            await scenario(made)
        finally:
            await made.close()

    asyncio.run(main())


def test_a_replica_is_a_restricted_pod_seen_starting_ready_unready_and_its_pod_ip_is_its_url(
        kube: ControlPlane, kube_namespace: str, played_node: PlayedNode) -> None:
    async def scenario(make: Backends) -> None:
        backend = make(settings_for(kube, kube_namespace))
        replica_id = await backend.start(SPEC)
        assert replica_id.startswith("main-")
        starting = (await backend.observe())[0]  # at once: the apply's answer is in the cache
        assert (starting.replica_id, starting.phase, starting.url) == (replica_id, "starting", None)
        assert starting.restarts == 0
        [pod] = pods(kube, kube_namespace)
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["labels"]["modelpier.io/replica"] == replica_id
        assert meta["labels"]["modelpier.io/template"] == "t1"
        assert {f["manager"] for f in meta["managedFields"]} == {"modelpier"}
        assert spec["restartPolicy"] == "Never"
        server = spec["containers"][0]
        assert server["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
        assert server["args"][:2] == ["serve", "iris"]
        pull = spec["initContainers"][0]
        assert pull["args"][:5] == ["models", "pull", "iris:1", "--remote", "http://10.199.0.1:8600"]
        env = {e["name"]: e for e in pull["env"]}
        assert env["PIER_PROJECT"]["value"] == "default"
        assert env["PIER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "modelpier-registry-token"

        played_node.bind(kube_namespace, meta["name"])
        played_node.wait(kube_namespace, meta["name"], "ErrImagePull", "registry.test: no such host")
        waiting = await until(backend, replica_id, lambda r: r is not None and bool(r.last_log), "told why it waits")
        assert waiting is not None
        assert waiting.phase == "starting"
        assert "ErrImagePull" in waiting.last_log[0]

        played_node.run(kube_namespace, meta["name"], "127.0.0.23", ready=True)
        ready = await until(backend, replica_id, phase("ready"), "became ready")
        assert ready is not None
        assert (ready.url, ready.grpc_url) == ("http://127.0.0.23:8080", "127.0.0.23:8081")
        assert ready.ready_since is not None
        assert not ready.adopted

        played_node.run(kube_namespace, meta["name"], "127.0.0.23", ready=False)
        unready = await until(backend, replica_id, phase("unready"), "became unready")
        assert unready is not None
        assert unready.failed_probes >= 3
        assert unready.unready_since is not None

    run(scenario)


def test_observe_reads_the_watch_and_makes_no_api_request(kube: ControlPlane, kube_namespace: str,
                                                          played_node: PlayedNode) -> None:
    async def scenario(make: Backends) -> None:
        backend = make(settings_for(kube, kube_namespace))
        ids = [await backend.start(SPEC) for _ in range(3)]
        before = dict(backend.api_requests)
        assert before.get("GET pods") == 1  # the list
        assert before.get("PATCH pods") == 3  # one server-side apply per pod
        for _ in range(100):
            assert len(await backend.observe()) == 3
        assert dict(backend.api_requests) == before  # 100 passes, 0 requests
        name = next(p["metadata"]["name"] for p in pods(kube, kube_namespace)
                    if p["metadata"]["labels"]["modelpier.io/replica"] == ids[1])
        played_node.bind(kube_namespace, name)
        played_node.run(kube_namespace, name, "127.0.0.24", ready=True)
        await until(backend, ids[1], phase("ready"), "became ready through the watch")
        assert dict(backend.api_requests) == before  # the change arrived on the open watch

    run(scenario)


def test_a_crash_is_exited_with_its_code_and_restart_makes_the_slots_next_pod(
        kube: ControlPlane, kube_namespace: str, played_node: PlayedNode) -> None:
    async def scenario(make: Backends) -> None:
        backend = make(settings_for(kube, kube_namespace))
        replica_id = await backend.start(SPEC)
        [pod] = pods(kube, kube_namespace)
        first = pod["metadata"]["name"]
        played_node.bind(kube_namespace, first)
        played_node.fail(kube_namespace, first, 3, container="pull-model")
        crashed = await until(backend, replica_id, phase("exited"), "exited")
        assert crashed is not None
        assert (crashed.exit_code, crashed.url, crashed.pid) == (3, None, 1)
        assert crashed.last_log
        assert "pull-model" in crashed.last_log[0]

        await backend.restart(replica_id)
        again = (await backend.observe())[0]
        assert (again.replica_id, again.phase, again.restarts, again.pid) == (replica_id, "starting", 1, 2)
        names = {p["metadata"]["name"]: p["metadata"].get("deletionTimestamp") for p in pods(kube, kube_namespace)}
        assert first.endswith("-0")
        assert first not in names
        assert [n for n, deleting in names.items() if deleting is None] == [first[:-1] + "1"]
        with pytest.raises(NotFound):
            await backend.restart("main-nosuchid")

    run(scenario)


def test_stop_is_stopping_while_the_pod_drains_then_gone(kube: ControlPlane, kube_namespace: str,
                                                         played_node: PlayedNode) -> None:
    async def scenario(make: Backends) -> None:
        backend = make(settings_for(kube, kube_namespace, deregistration_delay_s=0.3, stop_grace_s=5))
        replica_id = await backend.start(SPEC)
        [pod] = pods(kube, kube_namespace)
        name = pod["metadata"]["name"]
        assert pod["spec"]["terminationGracePeriodSeconds"] == 20  # stop_grace_s + extra_drain_s
        played_node.bind(kube_namespace, name)
        played_node.run(kube_namespace, name, "127.0.0.25", ready=True)
        await until(backend, replica_id, phase("ready"), "became ready")
        await backend.stop(replica_id, "scaling down")
        assert (await backend.observe())[0].phase == "stopping"  # at once: gateways stop routing to it
        assert pods(kube, kube_namespace)[0]["metadata"].get("deletionTimestamp") is None  # deregistration delay
        await until(backend, replica_id, phase("stopping"), "kept stopping", polls=1)
        for _ in range(100):
            if pods(kube, kube_namespace)[0]["metadata"].get("deletionTimestamp"):
                break
            await asyncio.sleep(0.05)
        assert (await backend.observe())[0].phase == "stopping"  # draining: the kubelet has SIGTERMed it
        played_node.finish_deletion(kube_namespace, name)
        await until(backend, replica_id, lambda r: r is None, "went")

    run(scenario)


def test_a_new_control_plane_adopts_the_pods_with_their_specs(kube: ControlPlane, kube_namespace: str,
                                                              played_node: PlayedNode) -> None:
    async def scenario(make: Backends) -> None:
        first = make(settings_for(kube, kube_namespace))
        spec = ReplicaSpec(project="default", deployment="iris", predictor="canary", revision=4, template="t9",
                           model="iris:2", workers=2, batching=False, outputs=("predict",))
        replica_id = await first.start(spec)
        await first.close()
        second = make(settings_for(kube, kube_namespace))
        [seen] = await second.observe()
        assert (seen.replica_id, seen.spec, seen.adopted) == (replica_id, spec, True)
        assert second.logs("default", "iris") == []  # not scheduled: no log yet
        played_node.bind(kube_namespace, pods(kube, kube_namespace)[0]["metadata"]["name"])
        assert second.logs("default", "iris")[0].startswith(f"[{replica_id}] (no log from pod")  # no kubelet
        assert second.logs("default", "other") == []

    run(scenario)


def test_a_project_gets_its_own_restricted_namespace_and_its_resource_owns_its_pods(kube: ControlPlane) -> None:
    kube.apply(custom_resource_definition())
    kube.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelpier.io", "--timeout=30s")
    project = kube.new_namespace("proj")  # a name that is free again: the backend makes the namespace
    kube.kubectl("delete", "namespace", project)
    kube.kubectl("wait", "--for=delete", f"namespace/{project}", "--timeout=30s", check=False)

    async def scenario(make: Backends) -> None:
        backend = make(settings_for(kube, None))
        spec = ReplicaSpec(project=project, deployment="iris", predictor="main", revision=1, template="t1",
                           model="iris:1")
        replica_id = await backend.start(spec)
        namespace = kube.get("namespace", project)
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        [pod] = pods(kube, project)
        assert {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}["PIER_PROJECT"] == project
        assert "ownerReferences" not in pod["metadata"]  # no ModelDeployment yet

        kube.apply({"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                    "metadata": {"name": "iris", "namespace": project},
                    "spec": {"predictors": [{"name": "main", "model": "iris:1"}]}})
        owners: list[Any] = []
        for _ in range(100):  # the resource informer sees it; the running pod gets it as its owner
            await backend.observe()
            owners = [p["metadata"].get("ownerReferences") for p in pods(kube, project)]
            if owners[0]:
                break
            await asyncio.sleep(0.1)
        assert owners[0][0]["kind"] == "ModelDeployment"
        assert owners[0][0]["name"] == "iris"
        await backend.restart(replica_id)  # and the slot's next pod is owned from its creation
        [new] = [p for p in pods(kube, project) if not p["metadata"].get("deletionTimestamp")]
        assert new["metadata"]["ownerReferences"][0]["uid"] == owners[0][0]["uid"]
        assert backend.api_requests["PATCH pods"] == 3  # two applies, and the owner set once
        kube.kubectl("-n", project, "delete", "modeldeployment", "iris", "--wait=false")
        # The controller manager's garbage collector deletes the owned pod.
        await until(backend, replica_id, lambda r: r is None or r.phase == "stopping", "was collected", polls=400)

    try:
        run(scenario)
    finally:
        kube.kubectl("delete", "namespace", project, "--wait=false", check=False)


def test_the_documented_namespace_role_is_all_the_backend_needs(kube: ControlPlane, kube_namespace: str,
                                                                 played_node: PlayedNode, tmp_path: Path) -> None:
    """docs/kubernetes-backend.md's permissions, as a Role of one namespace for a service account's token."""
    kube.kubectl("-n", kube_namespace, "create", "serviceaccount", "control")
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "replicas", "namespace": kube_namespace}, "rules": [
                    {"apiGroups": [""], "resources": ["pods"],
                     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                    {"apiGroups": ["modelpier.io"], "resources": ["modeldeployments"],
                     "verbs": ["get", "list", "watch"]}]})
    kube.kubectl("-n", kube_namespace, "create", "rolebinding", "replicas", "--role=replicas",
                 f"--serviceaccount={kube_namespace}:control")
    config = token_kubeconfig(kube, kube_namespace, "control", tmp_path / "control.kubeconfig")
    settings = load_settings(home=tmp_path, kubernetes={"kubeconfig": str(config), "namespace": kube_namespace},
                             platform={"deregistration_delay_s": 0})

    async def scenario(make: Backends) -> None:
        backend = make(settings)
        replica_id = await backend.start(SPEC)
        [pod] = pods(kube, kube_namespace)
        played_node.bind(kube_namespace, pod["metadata"]["name"])
        played_node.fail(kube_namespace, pod["metadata"]["name"], 1)
        await until(backend, replica_id, phase("exited"), "exited")  # and its log was asked for
        await backend.restart(replica_id)
        [pod] = [p for p in pods(kube, kube_namespace) if not p["metadata"].get("deletionTimestamp")]
        played_node.bind(kube_namespace, pod["metadata"]["name"])
        [line] = backend.logs("default", "iris")
        assert "forbid" not in line.lower()  # asked, and the API server passed it on (to a node that is not there)
        await backend.stop(replica_id, "done")
        for _ in range(100):  # the delete went through: the pod drains on its node
            if pods(kube, kube_namespace)[0]["metadata"].get("deletionTimestamp"):
                break
            await asyncio.sleep(0.05)
        assert pods(kube, kube_namespace)[0]["metadata"].get("deletionTimestamp")

    run(scenario)


def test_a_watch_the_api_server_ends_is_renewed_from_where_it_was(kube: ControlPlane, kube_namespace: str,
                                                                   played_node: PlayedNode) -> None:
    settings = settings_for(kube, kube_namespace)
    short = settings.kubernetes.model_copy(update={"watch_timeout_s": 10})
    settings = settings.model_copy(update={"kubernetes": short})

    async def scenario(make: Backends) -> None:
        backend = make(settings)
        replica_id = await backend.start(SPEC)
        name = pods(kube, kube_namespace)[0]["metadata"]["name"]
        for _ in range(300):  # the API server ends the watch after 10 s; the informer asks for the next one
            if backend.api_requests["WATCH pods"] >= 2:
                break
            await asyncio.sleep(0.1)
        assert backend.api_requests["WATCH pods"] >= 2
        played_node.bind(kube_namespace, name)
        played_node.run(kube_namespace, name, "127.0.0.26", ready=True)
        await until(backend, replica_id, phase("ready"), "became ready through the renewed watch")
        assert backend.api_requests["GET pods"] == 1  # renewed from its resourceVersion, not relisted

    run(scenario)
