"""A replica pod as the Kubernetes backend makes it (``pods.render_pod`` of the reconciler's
``ReplicaSpec``), run outside a container: the init container's command pulls the model from a real
control plane (digest-verified), the server container's command serves it, the readiness probe's
path answers, and every metric the Grafana dashboard queries is exported: by the replica or by the
control plane (``GET /api/v1/metrics``, which the ServiceMonitor scrapes)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpier.backends.kubernetes.options import DEFAULT_IMAGE
from modelpier.backends.kubernetes.pods import PodOptions
from modelpier.spec.deployment import parse_deployment
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, BIN, free_port, http_ok, pier_env, wait_until
from tests.unit.backends.kubernetes.specs import replica_pods

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
# What the replicas panel reads from the control plane (issue 16: it read a HorizontalPodAutoscaler's
# kube-state-metrics series, and the backend makes no HPA: the control plane scales its pods itself).
CONTROL_PLANE_REPLICAS = {"modelpier_deployment_desired_replicas", "modelpier_autoscaler_max_replicas"}
BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                    "data": [6.7, 3.0, 5.2, 2.3, 5.1, 3.5, 1.4, 0.2]}]}


def pod_spec(registry_url: str) -> dict[str, Any]:
    # Project "default": the pod pulls with PIER_PROJECT set, and the fixture's registry holds iris:1 there.
    document = parse_deployment({"metadata": {"name": "iris", "project": "default"}, "spec": {"predictors": [
        {"model": "iris:1", "batching": {"maxBatchSize": 16, "maxLatencyMs": 2}}]}})
    (pod,) = replica_pods(document, PodOptions(image=DEFAULT_IMAGE, registry_url=registry_url))
    spec: dict[str, Any] = pod["spec"]
    return spec


def local_args(args: list[str], ports: dict[str, int]) -> list[str]:
    """The container's args with loopback and free ports instead of the pod's 0.0.0.0:8080/8081."""
    swap = {"0.0.0.0": "127.0.0.1", "8080": str(ports["http"]), "8081": str(ports["grpc"])}  # noqa: S104
    return [swap.get(a, a) for a in args]


# The Secrets of the pod's namespace: the registry token the operator's docs tell users to create.
SECRETS = {("modelpier-registry-token", "token"): ADMIN_TOKEN}


def container_env(container: dict[str, Any], pod_home: Path) -> dict[str, str]:
    """The container's environment as the kubelet builds it (values and optional secret keys)."""
    values: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            values[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            secret = SECRETS.get((ref["name"], ref["key"]))
            assert secret is not None or ref.get("optional"), ref
            if secret is not None:
                values[entry["name"]] = secret
    assert values.pop("PIER_HOME") == "/var/lib/modelpier"  # the emptyDir; here a temporary folder
    return {**values, "PIER_HOME": str(pod_home)}


def process_env(container: dict[str, Any], pod_home: Path, tmp_path: Path) -> dict[str, str]:
    # Only what the pod declares may authenticate: the tests' own PIER_TOKEN is dropped.
    env = {k: v for k, v in pier_env(tmp_path / "unused").items() if k != "PIER_TOKEN"}
    return {**env, **container_env(container, pod_home)}


@contextmanager
def running_pod(registry_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = pod_spec(registry_url)
    pod_home = tmp_path / "empty-dir"
    (init,) = spec["initContainers"]
    home = process_env(init, pod_home, tmp_path)
    pulled = subprocess.run([str(BIN / init["command"][0]), *init["args"]], env=home, capture_output=True,
                            text=True, timeout=120, check=False)
    assert pulled.returncode == 0, pulled.stderr
    (server,) = spec["containers"]
    ports = {"http": free_port(), "grpc": free_port()}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / server["command"][0]), *local_args(server["args"], ports)],
                            env=process_env(server, pod_home, tmp_path),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['http']}"
    try:
        ready = http_ok(url + server["readinessProbe"]["httpGet"]["path"])
        wait_until(lambda: proc.poll() is not None or ready(), timeout=60, what="the model server's readiness")
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield url, server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def pod(registry_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    with running_pod(registry_url, tmp_path_factory.mktemp("pod")) as running:
        yield running


def test_the_pod_pulls_and_serves_the_model(pod: tuple[str, dict[str, Any]]) -> None:
    url, server = pod
    assert "livenessProbe" not in server  # the reconciler's liveness policy decides when a replica is hung
    assert httpx.get(url + server["readinessProbe"]["httpGet"]["path"]).status_code == 200
    answer = httpx.post(f"{url}/v2/models/iris/infer", json=BODY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [2, 0]


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    names = {name for expr in exprs for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr)}
    names |= {name for expr in exprs for name in re.findall(r"label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)", expr)}
    return names


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def exported_names(text: str) -> set[str]:
    """The series names a Prometheus exposition declares: its samples', and those of its families'
    declared types even without samples yet (a control plane with no deployment has none)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name, *(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))}
        names |= {s.name for s in family.samples}
    return names


def test_every_metric_the_dashboard_queries_is_exported(pod: tuple[str, dict[str, Any]], registry_url: str) -> None:
    url, _ = pod
    for _ in range(3):
        assert httpx.post(f"{url}/v2/models/iris/infer", json=BODY).status_code == 200
    assert httpx.post(f"{url}/v2/models/iris/infer", json={"inputs": []}).status_code == 400  # an error series
    replica = {s.name for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
               for s in family.samples}
    scrape = httpx.get(f"{registry_url}/api/v1/metrics", headers=ADMIN_HEADERS)  # `pier server`, as the monitor
    assert scrape.status_code == 200, scrape.text
    control_plane = exported_names(scrape.text)
    queried = dashboard_metrics()
    assert {"modelpier_requests_total", "modelpier_request_duration_seconds_bucket",
            "modelpier_batch_size_bucket", "modelpier_requests_in_flight", *CONTROL_PLANE_REPLICAS} <= queried
    assert not any(name.startswith("kube_") for name in queried)  # no kube-state-metrics: nothing to install
    assert queried - replica - control_plane == set(), f"replica: {sorted(replica)}; control plane: " \
                                                       f"{sorted(control_plane)}"
    assert not replica & control_plane  # each name has one source, so no query mixes the two by accident


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for topic in ("requests", "errors", "latency", "rows per model call", "replicas", "autoscaling", "queue"):
        assert topic in titles, topic
