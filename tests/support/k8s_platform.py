"""The platform installed as pods on a real node: what the e2e tests and the Kubernetes benchmark share.

``start_platform(folder)`` starts the cluster (``tests/support/k8s_node.py``: its machine-wide node
lock is held for as long as it runs), PostgreSQL and S3 (moto) on the host, builds the platform image
without Docker (``tests/support/platform_image.py``) and pushes it to the node's registry, installs
``deploy/kubernetes/overlays/e2e`` with a kustomization written here (image, Secret, blob settings)
into ``modelpier-system`` and waits for its Deployments to roll out. ``Platform`` talks to the pods
by their IPs, as the README of ``../shared/k8s`` allows.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.k8s_node import BRIDGE_ADDRESS, Cluster, host_postgres, host_s3, start_cluster
from tests.support.platform_image import PlatformImage, build_platform_image
from tests.support.procs import ADMIN_TOKEN, run_pier, wait_until

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "e2e"
NAMESPACE = "modelpier-system"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUCKET = "modelpier-e2e"
CONTROL_CLUSTER_IP = "10.96.0.86"  # overlays/e2e pins it: no cluster DNS here
V2_BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


@dataclass(frozen=True)
class Platform:
    cluster: Cluster
    image: PlatformImage
    home: Path  # PIER_HOME of the CLI the tests run on the host
    # Where start-up went, from taking the node lock: cluster (and node), host services, image, install
    # (apply and roll out), total.
    seconds: dict[str, float] = field(default_factory=dict)

    def pod_ips(self, component: str) -> list[str]:
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={component}")["items"]
        return [p["status"]["podIP"] for p in pods if pod_ready(p) and p["metadata"].get("deletionTimestamp") is None]

    @property
    def control_url(self) -> str:
        return f"http://{self.pod_ips('control-plane')[0]}:8600"

    def gateway_urls(self) -> list[str]:
        return [f"http://{ip}:8700" for ip in self.pod_ips("gateway")]

    def pier(self, *args: str, check: bool = True, timeout: float = 120, **env: str
             ) -> subprocess.CompletedProcess[str]:
        return run_pier([*args], self.home, check=check, timeout=timeout, PIER_REMOTE=self.control_url, **env)

    # -- the control plane's API, as the local platform's tests use it ------------------------------
    def deployment(self, name: str, project: str = "default") -> str:
        return f"{self.control_url}/api/v1/projects/{project}/deployments/{name}"

    def apply(self, name: str, predictors: list[dict[str, Any]], project: str = "default", **spec: Any) -> None:
        document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                    "metadata": {"name": name}, "spec": {"predictors": predictors, **spec}}
        response = httpx.put(self.deployment(name, project), json=document, timeout=30, headers=ADMIN)
        assert response.status_code in (200, 201), response.text

    def delete(self, name: str, project: str = "default") -> None:
        httpx.delete(self.deployment(name, project), headers=ADMIN, timeout=30)

    def status(self, name: str, project: str = "default") -> dict[str, Any]:
        return dict(httpx.get(self.deployment(name, project) + "/status", timeout=10, headers=ADMIN).json())

    def wait_ready(self, name: str, replicas: int, *, project: str = "default", revision: int | None = None,
                   timeout: float = 180) -> None:
        def ready() -> bool:
            try:
                s = self.status(name, project)
            except httpx.HTTPError:
                return False  # the control plane's pod is being replaced
            return (s.get("readyReplicas") == replicas and s.get("observedRevision") is not None
                    and (revision is None or s.get("observedRevision") == revision)
                    and s.get("observedRevision") == s.get("desiredRevision")
                    and any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", [])))
        try:
            wait_until(ready, timeout=timeout, what=f"{project}/{name} ready with {replicas} replicas")
        except AssertionError as e:
            pods = self.cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
            logs = self.cluster.kubectl("-n", NAMESPACE, "logs", "deployment/modelpier-control", "--tail=30",
                                        check=False).stdout
            raise AssertionError(f"{e}\n{self.status(name, project)}\n{pods}\n{logs}") from None
        self.wait_routed(name, project)

    def wait_routed(self, name: str, project: str = "default", timeout: float = 30) -> None:
        """Every gateway pod knows the deployment: its table follows the control plane's by one long poll."""
        def known(gateway: str) -> bool:  # the gateway's own 404 names the deployment; a replica's is about a model
            answer = httpx.get(f"{gateway}/{project}/{name}/v2/health/ready", timeout=30)
            return not (answer.status_code == 404 and f"{project}/{name}" in answer.text)

        for gateway in self.gateway_urls():
            try:
                wait_until(lambda g=gateway: known(g), timeout=timeout, what=f"{gateway} routing {project}/{name}")
            except AssertionError as e:
                health = httpx.get(f"{gateway}/healthz", timeout=5).text
                routing = httpx.get(f"{self.control_url}/api/v1/routing", headers=ADMIN, timeout=5).text
                logs = self.cluster.kubectl("-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/component=gateway",
                                            "--tail=20", "--prefix", check=False).stdout
                raise AssertionError(f"{e}\ngateway: {health}\ncontrol plane's table: {routing[:2000]}\n{logs}"
                                     ) from None

    def infer(self, name: str, *, project: str = "default", gateway: str | None = None,
              client: httpx.Client | None = None, headers: dict[str, str] | None = None,
              model: str = "iris", timeout: float = 10) -> httpx.Response:
        url = f"{gateway or self.gateway_urls()[0]}/{project}/{name}/v2/models/{model}/infer"
        return (client or httpx).post(url, json=V2_BODY, timeout=timeout, headers=headers)  # type: ignore[attr-defined]

    def model_pods(self, name: str, project: str = "default") -> list[dict[str, Any]]:
        """The pods of ``project/name`` that are not being deleted (a project is a namespace)."""
        pods = self.cluster.get("pods", "-n", project, "-l", f"app.kubernetes.io/instance={name}")["items"]
        return [p for p in pods if p["metadata"].get("deletionTimestamp") is None
                and p["status"].get("phase") in ("Pending", "Running")]



def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def kustomization(image: PlatformImage, postgres_url: str, s3_port: int, folder: Path) -> Path:
    """The user's layer on top of overlays/e2e: where the image is, the secrets, the blob store, and
    what model pods run and pull from."""
    folder.mkdir(parents=True, exist_ok=True)
    name, digest = image.by_digest.split("@")
    # The base installs `pier server --backend kubernetes`; this layer pins what model pods run and,
    # without cluster DNS, where they pull from.
    backend = [f"PIER_KUBERNETES__IMAGE={image.by_digest}",
               f"PIER_KUBERNETES__REGISTRY_URL=http://{CONTROL_CLUSTER_IP}:8600"]
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAY, folder)],
        "images": [{"name": "ghcr.io/modelpier/modelpier", "newName": name, "digest": digest}],
        "configMapGenerator": [{"name": "modelpier-config", "behavior": "merge", "literals": [
            f"PIER_BLOB_URL=s3://{BUCKET}/models", f"PIER_S3_ENDPOINT_URL=http://{BRIDGE_ADDRESS}:{s3_port}",
            "AWS_DEFAULT_REGION=us-east-1", *backend]}],
        "secretGenerator": [{"name": "modelpier-secrets", "namespace": NAMESPACE, "literals": [
            f"PIER_DATABASE_URL={postgres_url}", f"PIER_ADMIN_TOKEN={ADMIN_TOKEN}", "PIER_AUTH__SECRET=e2e-secret",
            "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"]}],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def wait_rollout(cluster: Cluster, name: str, timeout: float = 180) -> None:
    done = cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{name}", f"--timeout={timeout:.0f}s",
                           check=False, timeout=timeout + 10)
    if done.returncode != 0:
        pods = cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        logs = cluster.kubectl("-n", NAMESPACE, "logs", f"deployment/{name}", "--tail=40", check=False).stdout
        raise AssertionError(f"{name} not rolled out:\n{done.stderr}\n{pods}\n{events[-3000:]}\n{logs}")


@contextmanager
def start_platform(folder: Path, *, lock_timeout: float = 600) -> Iterator[Platform]:
    """The cluster, its host services and the platform installed on it, in ``folder``; all stopped
    on exit. Raises ``ImageUnavailable`` when the image cannot be made here. ``lock_timeout``: how
    long to wait for another session's node."""
    with ExitStack() as stack:
        cluster = stack.enter_context(start_cluster(folder / "cluster", lock_timeout=lock_timeout))
        marks = [cluster.locked_at, time.monotonic()]  # waiting for another session's node is not start-up
        postgres = stack.enter_context(host_postgres())
        s3_port = stack.enter_context(host_s3(folder / "s3", BUCKET))
        marks.append(time.monotonic())
        image = build_platform_image(cluster.registry)
        marks.append(time.monotonic())
        install = kustomization(image, postgres.url(BRIDGE_ADDRESS), s3_port, folder / "install")
        cluster.kubectl("apply", "-k", str(install), timeout=120)
        for name in ("modelpier-control", "modelpier-gateway"):
            wait_rollout(cluster, name)
        marks.append(time.monotonic())
        seconds = {part: round(marks[i + 1] - marks[i], 1)
                   for i, part in enumerate(("cluster", "host services", "image", "install"))}
        seconds["total"] = round(marks[-1] - marks[0], 1)
        home = folder / "cli"
        home.mkdir()
        yield Platform(cluster=cluster, image=image, home=home, seconds=seconds)
