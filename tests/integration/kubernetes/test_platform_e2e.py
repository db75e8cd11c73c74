"""The platform running as pods on a real Kubernetes v1.28 cluster with a real node.

One cluster per module (``tests/support/k8s_node.py``): etcd, kube-apiserver, controller manager,
scheduler, kubelet with containerd and runc, kube-proxy for ClusterIP Services, and the node's
OCI registry. The platform image is built without Docker (``tests/support/platform_image.py``) and
pushed there; PostgreSQL and S3 (moto) run on the host, reached by the pods at the bridge address.
``deploy/kubernetes/overlays/e2e`` installs the platform with a kustomization written here (image,
Secret, blob settings) into ``modelpier-system``, whose namespace enforces PodSecurity
``restricted``. The tests talk to pods by their IPs, as the README of ``../shared/k8s`` allows.

Skipped, saying why, without ``KUBEBUILDER_ASSETS`` or root. Every test here shares one cluster, so
the module runs in one xdist worker (``--dist loadfile`` keeps a file together).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.k8s_node import BRIDGE_ADDRESS, Cluster, host_postgres, host_s3, start_cluster, unavailable
from tests.support.platform_image import ImageUnavailable, PlatformImage, build_platform_image
from tests.support.procs import ADMIN_TOKEN, run_pier, wait_until

ROOT = Path(__file__).resolve().parents[3]
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "e2e"
NAMESPACE = "modelpier-system"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUCKET = "modelpier-e2e"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]

pytestmark = [pytest.mark.xdist_group("kubernetes-node"), pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Platform:
    cluster: Cluster
    image: PlatformImage
    home: Path  # PIER_HOME of the CLI the tests run on the host

    def pod_ips(self, component: str) -> list[str]:
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={component}")["items"]
        return [p["status"]["podIP"] for p in pods if _ready(p) and p["metadata"].get("deletionTimestamp") is None]

    @property
    def control_url(self) -> str:
        return f"http://{self.pod_ips('control-plane')[0]}:8600"

    def gateway_urls(self) -> list[str]:
        return [f"http://{ip}:8700" for ip in self.pod_ips("gateway")]

    def pier(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_pier([*args], self.home, check=check, timeout=timeout, PIER_REMOTE=self.control_url)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def _kustomization(image: PlatformImage, postgres_url: str, s3_port: int, folder: Path) -> Path:
    """The user's layer on top of overlays/e2e: where the image is, the secrets, the blob store."""
    folder.mkdir(parents=True, exist_ok=True)
    name, digest = image.by_digest.split("@")
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAY, folder)],
        "images": [{"name": "ghcr.io/modelpier/modelpier", "newName": name, "digest": digest}],
        "configMapGenerator": [{"name": "modelpier-config", "behavior": "merge", "literals": [
            f"PIER_BLOB_URL=s3://{BUCKET}/models", f"PIER_S3_ENDPOINT_URL=http://{BRIDGE_ADDRESS}:{s3_port}",
            "AWS_DEFAULT_REGION=us-east-1"]}],
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


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("k8s-e2e")
    with ExitStack() as stack:
        started = time.monotonic()
        cluster = stack.enter_context(start_cluster(base / "cluster"))
        postgres = stack.enter_context(host_postgres())
        s3_port = stack.enter_context(host_s3(base / "s3", BUCKET))
        try:
            image = build_platform_image(cluster.registry)
        except ImageUnavailable as e:
            pytest.skip(str(e))
        install = _kustomization(image, postgres.url(BRIDGE_ADDRESS), s3_port, base / "install")
        cluster.kubectl("apply", "-k", str(install), timeout=120)
        for name in ("modelpier-control", "modelpier-gateway"):
            wait_rollout(cluster, name)
        print(f"platform up in {time.monotonic() - started:.1f} s; image {image.seconds}")
        home = base / "cli"
        home.mkdir()
        yield Platform(cluster=cluster, image=image, home=home)


@pytest.fixture(scope="module")
def iris(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """iris:1 pushed from a laptop store to the control plane pod (its files land in S3)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("iris")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), folder / "iris.joblib")
    run_pier(["models", "save", str(folder / "iris.joblib"), "--name", "iris"], platform.home, check=True)
    platform.pier("models", "push", "iris:1", "--remote", platform.control_url)
    return "iris:1"


def test_the_platform_runs_as_restricted_non_root_pods(platform: Platform) -> None:
    namespace = platform.cluster.get("namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = platform.cluster.get("pods", "-n", NAMESPACE)["items"]
    components = sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods)
    assert components == ["control-plane", "gateway", "gateway"]
    for pod in pods:
        assert _ready(pod), pod["metadata"]["name"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["containers"][0]["image"] == platform.image.by_digest
    # The gateway found the control plane through its Service (ClusterIP, no DNS).
    for url in platform.gateway_urls():
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        assert health["routing"]["control"].startswith("http://10.96."), health
    gateway = platform.cluster.get("hpa", "-n", NAMESPACE, "modelpier-gateway")
    assert gateway["spec"]["minReplicas"] == 2
    assert platform.cluster.get("pdb", "-n", NAMESPACE, "modelpier-gateway")["spec"]["minAvailable"] == 1


def test_a_root_pod_is_refused_by_the_namespace(platform: Platform) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": NAMESPACE},
           "spec": {"containers": [{"name": "c", "image": platform.image.by_digest, "args": ["--help"]}]}}
    done = platform.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert done.returncode != 0 and "violates PodSecurity" in done.stderr, done.stderr


def test_the_control_plane_keeps_models_in_postgres_and_s3_across_pod_restarts(platform: Platform, iris: str,
                                                                               tmp_path: Path) -> None:
    old = platform.pod_ips("control-plane")
    platform.cluster.kubectl("-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/component=control-plane",
                             "--wait=true", timeout=90)
    wait_until(lambda: bool(platform.pod_ips("control-plane")) and platform.pod_ips("control-plane") != old,
               timeout=120, what="a new control-plane pod")
    listed = platform.pier("models", "list", "-o", "json").stdout
    assert "iris" in listed
    pulled = run_pier(["models", "pull", iris, "--remote", platform.control_url], tmp_path / "other", check=True)
    assert pulled.returncode == 0
