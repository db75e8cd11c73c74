"""The CR synchroniser, lease and RBAC tests run on the session's control plane (``kube`` of
``tests/integration/kubernetes/conftest.py``, skipped without ``KUBEBUILDER_ASSETS``) with the
ModelDeployment CRD installed; each test gets a namespace of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.k8s import ControlPlane
from tests.support.procs import wait_until

ROOT = Path(__file__).resolve().parents[4]
CRD = ROOT / "deploy" / "kubernetes" / "base" / "crd.yaml"


@pytest.fixture(scope="session")
def cluster(kube: ControlPlane) -> ControlPlane:
    """The session's control plane, serving ModelDeployments."""
    kube.kubectl("apply", "--server-side", "--field-manager", "tests", "--force-conflicts", "-f", str(CRD))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/modeldeployments.modelpier.io")
    return kube


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    """A namespace of this test alone, once its ``default`` service account exists (deleted afterwards)."""
    name = cluster.new_namespace()
    wait_until(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               timeout=30, what="the namespace's default service account")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
