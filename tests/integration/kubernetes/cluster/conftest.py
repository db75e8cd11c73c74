"""A real Kubernetes v1.28 control plane for the CR synchroniser, lease and RBAC tests (envtest convention).

Reads ``KUBEBUILDER_ASSETS`` (a folder with etcd, kube-apiserver and kube-controller-manager) and
skips with the reason when it is unset, so a fresh clone passes without the binaries. The cluster
is started by the shared recipe ``shared/k8s/test-cluster.sh`` (found beside a parent of the
checkout), once per session, with the ModelDeployment CRD installed; each test gets a namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import wait_until

ROOT = Path(__file__).resolve().parents[4]
CRD = ROOT / "deploy" / "kubernetes" / "base" / "crd.yaml"


def _script() -> Path | None:
    named = os.environ.get("PIER_TEST_CLUSTER_SCRIPT")
    if named:
        return Path(named)
    for parent in ROOT.parents:
        candidate = parent / "shared" / "k8s" / "test-cluster.sh"
        if candidate.exists():
            return candidate
    return None


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                token: str | None = None) -> subprocess.CompletedProcess[str]:
        auth = ["--token", token, "--server", self.server, "--certificate-authority", str(self.ca)] if token else \
            ["--kubeconfig", str(self.kubeconfig)]
        result = subprocess.run(["kubectl", *auth, *args], input=stdin, capture_output=True, text=True,
                                timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    @property
    def server(self) -> str:
        return str(self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout)

    @property
    def ca(self) -> Path:
        return self.kubeconfig.parent / "pki" / "ca.crt"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        pytest.skip("KUBEBUILDER_ASSETS is not set (a folder with etcd, kube-apiserver, kube-controller-manager); "
                    "`make test` sets it from ../shared/k8s when that folder exists")
    script = _script()
    if script is None:
        pytest.skip("shared/k8s/test-cluster.sh not found beside a parent of the checkout "
                    "(set PIER_TEST_CLUSTER_SCRIPT)")
    folder = tmp_path_factory.mktemp("k8s")
    # `stop` also tears down "the node" by its names (bridge, mounts) even where none was started: names
    # of our own, so this control plane's teardown never touches another session's real node.
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, "KUBEBUILDER_ASSETS": assets, "TEST_NODE_BRIDGE": f"kcr{tag}",
           "TEST_NODE_NAME": f"no-node-{tag}"}
    subprocess.run([str(script), "start", str(folder)], env=env, check=True, capture_output=True, timeout=120)
    try:
        found = Cluster(folder / "kubeconfig")
        found.kubectl("apply", "--server-side", "-f", str(CRD))
        found.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                      "crd/modeldeployments.modelpier.io")
        yield found
    finally:
        subprocess.run([str(script), "stop", str(folder)], env=env, check=False, capture_output=True, timeout=120)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    cluster.kubectl("create", "namespace", name)
    wait_until(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               timeout=30, what="the namespace's default service account")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
