"""The install's RBAC on a real API server: a namespace's `edit` users may create ModelDeployments (the
aggregated ClusterRoles), and the control plane's service account may do exactly what the CR
synchroniser and the lease need."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.backends.kubernetes.crsync import CustomResourceSync
from modelpier.backends.kubernetes.kubeapi import KubeApi
from modelpier.backends.kubernetes.lease import LeaderElector
from modelpier.control.deployments.custom_resources import DeploymentPort
from modelpier.control.deployments.service import DeploymentService
from modelpier.settings import Settings
from tests.integration.kubernetes.cluster.conftest import CRD
from tests.integration.kubernetes.cluster.test_crsync import document, make_service
from tests.support.k8s import ControlPlane
from tests.support.procs import wait_until

BASE = CRD.parent


@pytest.fixture(scope="module")
def installed_rbac(cluster: ControlPlane) -> None:
    cluster.kubectl("create", "namespace", "modelpier-system", check=False)
    for name in ("rbac-control-plane.yaml", "rbac-aggregate.yaml"):
        cluster.kubectl("apply", "-n", "modelpier-system", "-f", str(BASE / name))
    # The Kubernetes backend's own rules sit beside the control plane's Deployment: its RBAC alone.
    workloads = [d for d in yaml.safe_load_all((BASE / "control-plane.yaml").read_text())
                 if d and d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    cluster.kubectl("apply", "-n", "modelpier-system", "-f", "-", stdin=yaml.safe_dump_all(workloads))


def token_for(cluster: ControlPlane, namespace: str, account: str) -> str:
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace, check=False)
    return cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()


def test_a_namespace_editor_may_create_model_deployments(cluster: ControlPlane, namespace: str,
                                                         installed_rbac: None) -> None:
    token = token_for(cluster, namespace, "alice")
    cluster.kubectl("create", "rolebinding", "alice-edit", "--clusterrole=edit", f"--serviceaccount={namespace}:alice",
                    "-n", namespace)

    def can(verb: str, resource: str, ns: str = namespace, *extra: str) -> bool:
        return cluster.kubectl("auth", "can-i", verb, resource, "-n", ns, *extra, token=token,
                               check=False).stdout.strip() == "yes"

    wait_until(lambda: can("create", "modeldeployments.modelpier.io"), timeout=30,
               what="the edit role aggregating modelpier-modeldeployments-edit")
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document(namespace)), token=token)
    assert cluster.kubectl("get", "md", "iris", "-n", namespace, token=token).returncode == 0
    # The status is the control plane's to write.
    assert not can("patch", "modeldeployments.modelpier.io", namespace, "--subresource=status")
    assert not can("create", "modeldeployments.modelpier.io", "default")  # only where alice may edit
    cluster.kubectl("delete", "md", "iris", "-n", namespace, "--timeout=10s", token=token)


def _api_as(cluster: ControlPlane, token: str) -> KubeApi:
    cfg = client.Configuration()
    cfg.host = cluster.server
    cfg.ssl_ca_cert = str(cluster.ca)
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return KubeApi(cfg)


def test_the_control_planes_account_suffices_for_sync_and_lease(cluster: ControlPlane, namespace: str,
                                                              installed_rbac: None, tmp_path: Path) -> None:
    token = token_for(cluster, "modelpier-system", "modelpier-control")
    service: DeploymentService = make_service(tmp_path)

    async def scenario() -> None:
        api = _api_as(cluster, token)
        elector = LeaderElector(api, namespace="modelpier-system", name="modelpier-control", identity="pod-a",
                                lease_duration_s=3, renew_deadline_s=2, retry_period_s=0.3)
        sync = CustomResourceSync(api, DeploymentPort(service), resync_s=0.3)  # every namespace
        tasks = [asyncio.create_task(elector.run()), asyncio.create_task(sync.run())]
        try:
            await asyncio.wait_for(elector.is_leader.wait(), 10)
            await asyncio.wait_for(sync.synced.wait(), 10)
            service.create_project(namespace)
            service.apply(namespace, document(namespace), "alice")  # mirrored: create, then status
            sync.trigger()
            for _ in range(100):
                got = cluster.get("md", "iris", "-n", namespace) \
                    if cluster.kubectl("get", "md", "iris", "-n", namespace, check=False).returncode == 0 else None
                if got and got.get("status", {}).get("observedGeneration") == got["metadata"]["generation"]:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the CR was not mirrored and synchronised")
            service.delete(namespace, "iris")  # the CR is deleted by the control plane's account
            sync.trigger()
            for _ in range(100):
                if cluster.kubectl("get", "md", "iris", "-n", namespace, check=False).returncode != 0:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the CR was not deleted")
            assert sync.failures == 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await api.close()

    try:
        asyncio.run(scenario())
    finally:
        service.store.close()
        service.registry.close()
    events = cluster.kubectl("get", "events", "-n", namespace).stdout
    assert "SpecFromControlPlane" in events


def test_the_control_planes_account_makes_a_projects_namespace(cluster: ControlPlane, installed_rbac: None,
                                                               tmp_path: Path) -> None:
    """Granted ``get`` and ``create`` on namespaces and nothing more, the backend makes a new project's
    namespace, labelled PodSecurity ``restricted``; a namespace made meanwhile by someone else is no error."""
    token = token_for(cluster, "modelpier-system", "modelpier-control")
    project = f"p-{uuid.uuid4().hex[:8]}"
    taken = f"{project}-taken"
    cluster.kubectl("create", "namespace", taken)

    async def scenario() -> None:
        api = _api_as(cluster, token)
        backend = KubernetesBackend(Settings(home=tmp_path), api=api)
        try:
            await backend._ensure_namespace(project)
            await backend._ensure_namespace(taken)
        finally:
            await api.close()

    try:
        asyncio.run(scenario())
        made = cluster.get("namespace", project)
        assert made["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    finally:
        cluster.kubectl("delete", "namespace", project, taken, "--wait=false", check=False)
