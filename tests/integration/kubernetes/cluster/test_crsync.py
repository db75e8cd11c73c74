"""The CR synchroniser against a real API server and a real control plane (``DeploymentService`` over
SQLite, in process): kubectl and ``pier deploy`` are two doors to one deployment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpier.backends.kubernetes.crsync import CustomResourceSync
from modelpier.backends.kubernetes.kubeapi import KubeApi
from modelpier.control.deployments.custom_resources import DeploymentPort
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.store import SqlDeploymentStore
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings
from modelpier.spec.deployment import ModelDeploymentStatus
from tests.support.k8s import ControlPlane
from tests.support.procs import run_pier, wait_until


def make_service(home: Path) -> DeploymentService:
    settings = load_settings(home=home)
    registry = build_registry(settings)
    for version in (1, 2):
        folder = home / f"artifact-{version}"
        folder.mkdir()
        (folder / "model.bin").write_bytes(f"weights {version}".encode())
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    return DeploymentService(SqlDeploymentStore.open(settings.resolved_database_url), registry)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DeploymentService]:
    found = make_service(tmp_path / "control")
    yield found
    found.store.close()
    found.registry.close()


class Running:
    """A synchroniser on an event loop of its own thread, as the control plane runs it."""

    def __init__(self, cluster: ControlPlane, service: DeploymentService, namespace: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.api = KubeApi.connect(str(cluster.kubeconfig))
        self.sync = CustomResourceSync(self.api, DeploymentPort(service), namespaces=[namespace], resync_s=0.5)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        await self.sync.run()

    def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            self._task.result(timeout=10)
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def running(cluster: ControlPlane, service: DeploymentService, namespace: str) -> Iterator[Running]:
    found = Running(cluster, service, namespace)
    try:
        yield found
    finally:
        found.stop()
    assert found.sync.failures == 0


def document(namespace: str, replicas: int = 1, model: str = "iris:1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {"predictors": [{"model": model, "replicas": replicas}], **spec}}


def kubectl_apply(cluster: ControlPlane, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))


def cr(cluster: ControlPlane, namespace: str, name: str = "iris") -> dict[str, Any] | None:
    result = cluster.kubectl("get", "md", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def synced(cluster: ControlPlane, namespace: str) -> bool:
    obj = cr(cluster, namespace)
    return obj is not None and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def history(service: DeploymentService, project: str) -> list[tuple[int, Any, dict[str, str], str]]:
    return [(r.number, r.spec, r.resolved, r.cause) for r in service.revisions(project, "iris")]


def test_kubectl_apply_gives_the_revision_history_of_pier_deploy(cluster: ControlPlane, namespace: str,
                                                                  service: DeploymentService, tmp_path: Path) -> None:
    edits = [document(namespace), document(namespace, replicas=3), document(namespace, replicas=3, model="iris:2")]
    with running(cluster, service, namespace):
        for i, doc in enumerate(edits, start=1):
            kubectl_apply(cluster, doc)
            wait_until(lambda i=i: synced(cluster, namespace) and len(service.revisions(namespace, "iris")) == i,
                       timeout=20, what=f"revision {i} from the CR")
        kubectl_apply(cluster, edits[-1])  # unchanged: no new generation, no new revision
    assert [r.created_by for r in service.revisions(namespace, "iris")] == ["kubernetes/kubectl-client-side-apply"] * 3

    by_pier = make_service(tmp_path / "pier")  # `pier deploy` of the same files, to another control plane
    try:
        for doc in edits:
            by_pier.create_project(namespace) if namespace not in by_pier.list_projects() else None
            by_pier.apply(namespace, doc, "alice")
        assert history(service, namespace) == history(by_pier, namespace)
    finally:
        by_pier.store.close()
        by_pier.registry.close()


def test_status_and_printer_columns_follow_the_control_plane(cluster: ControlPlane, namespace: str,
                                                             service: DeploymentService) -> None:
    with running(cluster, service, namespace) as run:
        kubectl_apply(cluster, document(namespace, replicas=2))
        wait_until(lambda: synced(cluster, namespace), timeout=20, what="the CR's status")
        status = ModelDeploymentStatus.model_validate({
            "desiredRevision": 1, "observedRevision": 1, "readyReplicas": 2, "desiredReplicas": 2,
            "url": "http://gateway.example/default/iris",
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReplicasReady",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
        service.store.set_status(namespace, "iris", status, serving_revision=1)  # what the reconciler writes
        run.sync.trigger()
        wait_until(lambda: ((cr(cluster, namespace) or {}).get("status") or {}).get("readyReplicas") == 2,
                   timeout=20, what="ready replicas on the CR")
        table = cluster.kubectl("get", "md", "iris", "-n", namespace).stdout
        assert table.split("\n")[1].split()[:3] == ["iris", "True", "2"], table
        assert "http://gateway.example/default/iris" in table


def test_pier_deploy_writes_the_cr_and_the_last_writer_wins(cluster: ControlPlane, namespace: str,
                                                           service: DeploymentService) -> None:
    service.create_project(namespace)
    with running(cluster, service, namespace) as run:
        service.apply(namespace, document(namespace, replicas=2), "alice")  # pier deploy
        run.sync.trigger()
        wait_until(lambda: synced(cluster, namespace), timeout=20, what="the CR mirrored from pier deploy")
        assert cr(cluster, namespace)["spec"]["predictors"][0]["replicas"] == 2  # type: ignore[index]

        kubectl_apply(cluster, document(namespace, replicas=4))  # then kubectl: it wins
        wait_until(lambda: service.get(namespace, "iris").revision.spec.predictors[0].replicas == 4,
                   timeout=20, what="the kubectl edit in the control plane")

        service.apply(namespace, document(namespace, replicas=5), "alice")  # then pier again: it wins
        run.sync.trigger()
        wait_until(lambda: (cr(cluster, namespace) or {})["spec"]["predictors"][0]["replicas"] == 5
                   and synced(cluster, namespace), timeout=20, what="the CR mirroring pier deploy")
        wait_until(run.sync.synced.is_set, timeout=5)
    assert [r.spec.predictors[0].replicas for r in service.revisions(namespace, "iris")] == [2, 4, 5]
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "SpecFromControlPlane" in events
    assert "RevisionCreated" in events


def test_an_invalid_cr_gets_invalid_spec_and_an_event(cluster: ControlPlane, namespace: str,
                                                      service: DeploymentService) -> None:
    bad = document(namespace)
    bad["spec"]["predictors"].append({"name": "b", "model": "iris:2"})  # weights 100 + 100
    with running(cluster, service, namespace):
        kubectl_apply(cluster, bad)
        wait_until(lambda: synced(cluster, namespace), timeout=20, what="the InvalidSpec status")
        conditions = {c["type"]: c for c in cr(cluster, namespace)["status"]["conditions"]}  # type: ignore[index]
        assert conditions["Degraded"]["reason"] == "InvalidSpec"
        assert "weight must add up to 100" in conditions["Degraded"]["message"]
        assert service.list_deployments() == []
        wait_until(lambda: "InvalidSpec" in cluster.kubectl("get", "events", "-n", namespace,
                                                           "--field-selector", "type=Warning").stdout,
                   timeout=10, what="the Warning event")

        unknown = document(namespace, model="nosuchmodel:1")  # valid, but the registry has no such model
        kubectl_apply(cluster, unknown)
        wait_until(lambda: synced(cluster, namespace)
                   and "nosuchmodel" in json.dumps(cr(cluster, namespace)["status"]),  # type: ignore[index]
                   timeout=20, what="the ApplyFailed status")
        conditions = {c["type"]: c for c in cr(cluster, namespace)["status"]["conditions"]}  # type: ignore[index]
        assert conditions["Degraded"]["reason"] == "ApplyFailed"

        kubectl_apply(cluster, document(namespace))  # fixed: applied, condition gone
        wait_until(lambda: synced(cluster, namespace) and service.list_deployments() != [], timeout=20,
                   what="the fixed CR applied")


def test_delete_needs_no_finalizer_and_no_running_control_plane(cluster: ControlPlane, namespace: str,
                                                                service: DeploymentService) -> None:
    with running(cluster, service, namespace) as run:
        kubectl_apply(cluster, document(namespace))
        wait_until(lambda: synced(cluster, namespace), timeout=20, what="the CR synchronised")
        owner = run.sync.owner_reference(namespace, "iris")
    assert not cr(cluster, namespace)["metadata"].get("finalizers")  # type: ignore[index]
    replica = {"apiVersion": "v1", "kind": "Pod",  # what the backend creates: owned by the CR
               "metadata": {"name": "iris-main-0", "namespace": namespace, "ownerReferences": [owner]},
               "spec": {"containers": [{"name": "server", "image": "registry.invalid/modelpier"}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(replica))
    # The control plane is down: kubectl delete returns at once (nothing waits on a finalizer), and
    # Kubernetes' garbage collector removes the replicas.
    cluster.kubectl("delete", "md", "iris", "-n", namespace, "--timeout=10s")
    assert cr(cluster, namespace) is None
    wait_until(lambda: cluster.kubectl("get", "pod", "iris-main-0", "-n", namespace, check=False).returncode != 0,
               timeout=60, what="the replica collected with its CR")
    assert not service.get(namespace, "iris").record.deleting
    with running(cluster, service, namespace) as run:  # back up: the deployment whose CR is gone goes too
        wait_until(run.sync.synced.is_set, timeout=20)
        wait_until(lambda: service.get(namespace, "iris").record.deleting, timeout=20, what="deletion requested")
        assert cr(cluster, namespace) is None  # not resurrected by the mirror


def test_pier_delete_deletes_the_cr(cluster: ControlPlane, namespace: str, service: DeploymentService) -> None:
    with running(cluster, service, namespace) as run:
        kubectl_apply(cluster, document(namespace))
        wait_until(lambda: synced(cluster, namespace), timeout=20, what="the CR synchronised")
        service.delete(namespace, "iris")  # pier delete
        run.sync.trigger()
        wait_until(lambda: cr(cluster, namespace) is None, timeout=20, what="the CR deleted")


def test_a_pier_file_with_metadata_project_applies_with_kubectl_after_render(cluster: ControlPlane, namespace: str,
                                                                             tmp_path: Path) -> None:
    """kubectl refuses metadata.project (not a field of Kubernetes' ObjectMeta); `pier render` turns it into
    the namespace, and kubectl's own spelling (metadata.namespace) is read by pier as the project."""
    pier_file = tmp_path / "iris.yaml"
    pier_file.write_text(yaml.safe_dump({"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                                         "metadata": {"name": "iris", "project": namespace},
                                         "spec": {"predictors": [{"model": "iris:1"}]}}))
    refused = cluster.kubectl("apply", "-f", str(pier_file), check=False)
    assert refused.returncode != 0
    assert "project" in refused.stderr
    rendered = run_pier(["render", "-f", str(pier_file)], tmp_path, check=True).stdout
    cluster.kubectl("apply", "-f", "-", stdin=rendered)
    assert cr(cluster, namespace)["spec"]["predictors"][0]["model"] == "iris:1"  # type: ignore[index]


def test_a_steady_state_costs_no_api_requests(cluster: ControlPlane, namespace: str,
                                              service: DeploymentService) -> None:
    """Work comes from the watch: once every CR is in step, resync passes read the control plane only
    (the kopf operator polled each CR every 15 s: ~43 requests a minute per CR)."""
    count = 20
    docs = []
    for i in range(count):
        doc = document(namespace)
        doc["metadata"]["name"] = f"iris-{i}"
        docs.append(yaml.safe_dump(doc))
    with running(cluster, service, namespace) as run:
        cluster.kubectl("apply", "-f", "-", stdin="---\n".join(docs))

        def all_synced() -> bool:
            items = cluster.get("md", "-n", namespace)["items"]
            return len(items) == count and all((o.get("status") or {}).get("observedGeneration")
                                               == o["metadata"]["generation"] for o in items)

        wait_until(all_synced, timeout=60, what=f"{count} CRs synchronised")
        wait_until(lambda: not run.sync.pending(), timeout=10)
        spent = sum(run.api.requests.values())
        before = run.sync.passes
        wait_until(lambda: run.sync.passes >= before + 4, timeout=20, what="four resync passes")
        assert sum(run.api.requests.values()) == spent, run.api.requests
    assert len(service.list_deployments()) == count
    # To reach the steady state, per CR: one status write and one event (one list and one watch in all).
    assert spent <= count * 2 + 2, run.api.requests


def test_an_upgrade_from_the_operator_removes_its_finalizer(cluster: ControlPlane, namespace: str,
                                                           service: DeploymentService) -> None:
    """CRs the kopf operator handled carry its finalizer, which nothing would remove: deletes would hang."""
    legacy = document(namespace)
    legacy["metadata"]["finalizers"] = ["modelpier.io/finalizer"]
    legacy["metadata"]["annotations"] = {"modelpier.io/last-handled-configuration": "{}"}
    kubectl_apply(cluster, legacy)
    with running(cluster, service, namespace):
        wait_until(lambda: synced(cluster, namespace) and not cr(cluster, namespace)["metadata"].get("finalizers"),
                   timeout=20, what="the finalizer removed and the CR applied")
        assert "annotations" not in cr(cluster, namespace)["metadata"] or \
            "modelpier.io/last-handled-configuration" not in cr(cluster, namespace)["metadata"]["annotations"]
        assert service.get(namespace, "iris").revision.number == 1
    cluster.kubectl("delete", "md", "iris", "-n", namespace, "--timeout=10s")
