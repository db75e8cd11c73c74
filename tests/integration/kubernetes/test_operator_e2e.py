"""The operator against a real Kubernetes API server, when ``KUBECONFIG`` reaches one.

Installs the CRD, runs ``pier operator`` for one namespace, applies a ModelDeployment with
``apply_deployment`` and waits for the rendered objects and the status; then deletes the CR. Pods
need the modelpier image to become ready, so readiness is not awaited: objects and status are.
Skipped with the reason when no cluster is reachable; the unit tests cover every feature offline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelpier.backends.kubernetes.crd import custom_resource_definition
from modelpier.spec.deployment import parse_deployment
from tests.support.procs import BIN, pier_env, wait_until


def _cluster() -> Any:
    """A Kubernetes ApiClient, or a skip saying why there is none."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(kubeconfig).is_file():
        pytest.skip("no Kubernetes cluster: set KUBECONFIG to a kubeconfig file to run the operator end to end")
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:  # any failure means "not reachable": the reason is shown
        pytest.skip(f"KUBECONFIG={kubeconfig} does not reach an API server: {exc}")
    return api


@pytest.fixture
def namespace() -> Iterator[tuple[Any, str]]:
    api = _cluster()
    from kubernetes import client, dynamic

    crds = dynamic.DynamicClient(api).resources.get(api_version="apiextensions.k8s.io/v1",
                                                    kind="CustomResourceDefinition")
    crds.server_side_apply(body=custom_resource_definition(), field_manager="modelpier-e2e", force_conflicts=True)
    name = f"pier-e2e-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield api, name
    finally:
        core.delete_namespace(name)


def test_operator_reconciles_a_model_deployment(namespace: tuple[Any, str], tmp_path: Path) -> None:
    from kubernetes import dynamic

    from modelpier.backends.kubernetes.apply import apply_deployment

    api, ns = namespace
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen([str(BIN / "pier"), "operator", "--namespace", ns, "--health-port", "0",
                             "--status-interval-s", "2"], env=pier_env(tmp_path / "home"),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        document = parse_deployment({"metadata": {"name": "iris", "project": ns}, "spec": {"predictors": [
            {"name": "main", "model": "iris:1", "replicas": 2, "weight": 90},
            {"name": "canary", "model": "iris:2", "weight": 10}]}})
        applied = apply_deployment(document, os.environ["KUBECONFIG"])
        assert applied["metadata"]["namespace"] == ns
        client = dynamic.DynamicClient(api)
        deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
        resources = client.resources.get(api_version="modelpier.io/v1alpha1", kind="ModelDeployment")

        def reconciled() -> bool:
            names = {d.metadata.name for d in deployments.get(namespace=ns).items}
            status = resources.get(name="iris", namespace=ns).to_dict().get("status") or {}
            return names == {"iris-main", "iris-canary"} and status.get("observedGeneration") == 1

        wait_until(reconciled, timeout=120, what="the operator to render and report iris")
        owner = deployments.get(name="iris-main", namespace=ns).metadata.ownerReferences[0]
        assert (owner.kind, owner.name) == ("ModelDeployment", "iris")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
