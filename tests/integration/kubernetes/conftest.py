"""Fixtures for the Kubernetes assets: a small sklearn model, a control plane holding it, and a real
Kubernetes control plane (one per session; skipped without ``KUBEBUILDER_ASSETS``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import k8s
from tests.support.procs import control_plane, run_pier


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real control plane (`pier server`) whose registry holds iris:1 (pushed from a laptop store)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    base = tmp_path_factory.mktemp("k8s-registry")
    x, y = load_iris(return_X_y=True)
    model = base / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model)
    laptop = base / "laptop"
    run_pier(["models", "save", str(model), "--name", "iris"], laptop, check=True)
    with control_plane(base / "control") as url:
        run_pier(["models", "push", "iris:1", "--remote", url], laptop, check=True)
        yield url


def pier_args_ok(args: list[str], home: Path) -> str | None:
    """``None`` when ``pier ARGS --help`` parses (every option exists), else the error output."""
    result = run_pier([*args, "--help"], home)
    return None if result.returncode == 0 else result.stderr + result.stdout


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> k8s.ControlPlane:
    """A real Kubernetes v1.28 API server with its controller manager (no node), for the whole session
    (shared with every file this worker runs, the parity table's kubernetes column included)."""
    why = k8s.unavailable()
    if why is not None:
        pytest.skip(f"no Kubernetes control plane: {why}")
    return k8s.shared_control_plane(request)


@pytest.fixture
def kube_namespace(kube: k8s.ControlPlane) -> Iterator[str]:
    """A namespace of this test alone, labelled for PodSecurity ``restricted`` (deleted afterwards)."""
    name = kube.new_namespace()
    kube.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def played_node(kube: k8s.ControlPlane) -> k8s.PlayedNode:
    return k8s.PlayedNode(kube)
