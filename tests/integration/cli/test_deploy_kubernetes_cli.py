"""`pier deploy --backend kubernetes` without a reachable cluster fails clearly, never with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.procs import free_port, run_pier

DOCUMENT = """\
apiVersion: modelpier.io/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  predictors:
    - {name: main, model: "iris:1"}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "iris.yaml"
    path.write_text(DOCUMENT)
    return path


def test_missing_kubeconfig_is_an_input_error(tmp_path: Path, spec_file: Path) -> None:
    r = run_pier(["deploy", "-f", str(spec_file), "--backend", "kubernetes"], tmp_path,
                 KUBECONFIG=str(tmp_path / "absent"))
    assert r.returncode == 3
    assert "no usable kubeconfig" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_api_server_is_a_remote_error(tmp_path: Path, spec_file: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n")
    r = run_pier(["deploy", "-f", str(spec_file), "--backend", "kubernetes", "--kubeconfig", str(kubeconfig)],
                 tmp_path)
    assert r.returncode == 9
    assert "cannot reach the Kubernetes API server" in r.stderr
    assert "Traceback" not in r.stderr


def test_wait_is_refused_for_kubernetes_with_a_pointer(tmp_path: Path, spec_file: Path) -> None:
    r = run_pier(["deploy", "-f", str(spec_file), "--backend", "kubernetes", "--wait"], tmp_path)
    assert r.returncode == 3
    assert "kubectl get md iris" in r.stderr
