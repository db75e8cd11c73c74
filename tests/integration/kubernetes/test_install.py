"""The platform install: `kubectl kustomize` of the base and each overlay, validated against the
schemas, with RBAC that covers exactly what the control plane touches and containers whose commands
are real `pier` commands."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpier.auth.access import Action
from modelpier.backends.kubernetes.crd import custom_resource_definition
from modelpier.control.api.policy import RoutePolicy, match_route_policy
from tests.integration.kubernetes.conftest import pier_args_ok
from tests.support import k8s
from tests.unit.backends.kubernetes.specs import FEATURES, replica_pods
from tests.unit.backends.kubernetes.validation import VERSIONS, validate

ROOT = Path(__file__).resolve().parents[3]
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production")
METRICS_ROUTE = "/api/v1/metrics"  # the control plane's (control/api/app.py)
METRICS_SECRET = "modelpier-metrics-token"  # holds a platform admin's token (docs/kubernetes.md, Monitoring)


@cache
def build(path: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize) is needed to build deploy/kubernetes; install kubectl >= 1.27")
    result = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("path", [*KUSTOMIZATIONS, "overlays/e2e"])
def test_every_object_validates(path: str) -> None:
    for version in VERSIONS:
        for obj in build(path):
            validate(obj, version)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_the_platform_parts_are_there(path: str) -> None:
    objects = build(path)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "modelpier-control"), ("Service", "modelpier-control"), ("Deployment", "modelpier-gateway"),
            ("Service", "modelpier-gateway"), ("ClusterRole", "modelpier-control-resources"),
            ("ClusterRoleBinding", "modelpier-control-resources"),
            ("Role", "modelpier-control-leader"), ("ConfigMap", "modelpier-config"),
            ("ConfigMap", "modelpier-grafana-dashboard"),
            ("CustomResourceDefinition", "modeldeployments.modelpier.io")} <= names
    assert find(objects, "CustomResourceDefinition", "modeldeployments.modelpier.io") == custom_resource_definition()
    for obj in objects:
        if obj["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}:
            assert obj["metadata"]["namespace"] == "modelpier-system", obj["metadata"]["name"]


def _verbs(role: dict[str, Any], group: str, resource: str) -> set[str]:
    return {verb for rule in role["rules"] if group in rule["apiGroups"] and resource in rule["resources"]
            for verb in rule["verbs"]}


@pytest.mark.parametrize("path", [*KUSTOMIZATIONS, "overlays/e2e"])
def test_the_gateway_runs_two_replicas_kept_by_a_budget_and_scaled_on_cpu(path: str) -> None:
    objects = build(path)
    assert find(objects, "Deployment", "modelpier-gateway")["spec"]["replicas"] >= 2
    assert find(objects, "PodDisruptionBudget", "modelpier-gateway")["spec"]["minAvailable"] == 1
    hpa = find(objects, "HorizontalPodAutoscaler", "modelpier-gateway")["spec"]
    assert hpa["minReplicas"] == 2
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    namespace = find(objects, "Namespace", "modelpier-system")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_control_planes_rbac_is_least_privilege() -> None:
    """Each rule is one the control plane uses for resources and its Lease (crsync, lease); no wildcards."""
    objects = build("base")
    role = find(objects, "ClusterRole", "modelpier-control-resources")
    assert _verbs(role, "modelpier.io", "modeldeployments") == {"get", "list", "watch", "create", "update", "delete"}
    assert _verbs(role, "modelpier.io", "modeldeployments/status") == {"get", "patch"}
    assert _verbs(role, "", "pods/log") == {"get"}
    assert _verbs(role, "", "events") == {"create", "patch"}
    assert {r for rule in role["rules"] for r in rule["resources"]} == {
        "modeldeployments", "modeldeployments/status", "pods/log", "events"}
    binding = find(objects, "ClusterRoleBinding", "modelpier-control-resources")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelpier-control",
                                    "namespace": "modelpier-system"}]
    leader = find(objects, "Role", "modelpier-control-leader")  # its Lease: its own namespace, by name
    assert _verbs(leader, "coordination.k8s.io", "leases") == {"create", "get", "update"}
    for obj in objects:
        if obj["kind"] in {"ClusterRole", "Role"}:
            assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in obj["rules"])
    edit = find(objects, "ClusterRole", "modelpier-modeldeployments-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert find(objects, "ClusterRole", "modelpier-modeldeployments-view")["metadata"]["labels"][
        "rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_the_pod_monitor_selects_the_pods_the_backend_makes() -> None:
    monitor = find(build("base"), "PodMonitor", "modelpier-replicas")
    for pod in replica_pods(FEATURES["canary"]):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (server,) = pod["spec"]["containers"]
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in server["ports"]}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_the_service_monitor_scrapes_the_control_planes_metrics_with_a_token() -> None:
    """The ServiceMonitor selects the control plane's Service (not the gateway's), on its port, at the
    metrics route, which needs a platform admin's token: sent from the Secret the docs tell operators to
    create in the same namespace (the Prometheus Operator reads Secrets of the ServiceMonitor's)."""
    objects = build("base")
    monitor = find(objects, "ServiceMonitor", "modelpier-control")
    service = find(objects, "Service", "modelpier-control")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert not selector.items() <= find(objects, "Service", "modelpier-gateway")["metadata"]["labels"].items()
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert "namespaceSelector" not in monitor["spec"]  # its own namespace: the Service's, the Secret's
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == METRICS_ROUTE
    assert match_route_policy("GET", METRICS_ROUTE) == RoutePolicy(Action.admin, None)
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": METRICS_SECRET, "key": "token"}}
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"create secret generic {METRICS_SECRET}" in docs


@pytest.mark.parametrize("path", ["overlays/dev", "overlays/e2e"])
def test_clusters_without_the_prometheus_operator_get_no_monitors(path: str) -> None:
    assert not any(o["kind"] in {"PodMonitor", "ServiceMonitor"} for o in build(path))


def test_dev_needs_no_prometheus_operator_and_production_runs_two_of_each() -> None:
    assert not any(o["kind"] == "PodMonitor" for o in build("overlays/dev"))
    production = build("overlays/production")
    for name in ("modelpier-control", "modelpier-gateway"):
        assert find(production, "Deployment", name)["spec"]["replicas"] == 2
    assert find(production, "PodDisruptionBudget", "modelpier-control")["spec"]["maxUnavailable"] == 1
    assert not any(o["metadata"]["name"] == "modelpier-operator" for o in production)  # gone (issue 16)
    settings = find(production, "ConfigMap", "modelpier-config")["data"]
    assert settings["PIER_BLOB_URL"].startswith("s3://")
    control = find(production, "Deployment", "modelpier-control")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "modelpier-secrets", "optional": True}} in control["envFrom"]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_containers_run_non_root_and_real_pier_commands(path: str, tmp_path: Path) -> None:
    for obj in build(path):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["image"].startswith("ghcr.io/modelpier/modelpier:")
            assert pier_args_ok(container["args"], tmp_path) is None, container["args"]


def test_the_backends_model_server_commands_are_real_pier_commands(tmp_path: Path) -> None:
    for feature in ("batching", "batching-disabled", "outputs", "single", "timeouts"):
        for pod in replica_pods(FEATURES[feature]):
            for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
                assert container["command"] == ["pier"]
                assert pier_args_ok(container["args"], tmp_path) is None, container["args"]


# "long-names": a replica id (the predictor's name plus 9 characters) longer than a label value's 63
# characters: the label is shortened with a hash, the full id is an annotation.
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_the_api_server_admits_the_pods_the_backend_makes(feature: str, kube: k8s.ControlPlane,
                                                          kube_namespace: str) -> None:
    """A server-side dry run in a namespace that enforces PodSecurity ``restricted``: every pod the backend
    would create for the feature passes the API server's validation and admission."""
    for pod in replica_pods(FEATURES[feature]):
        placed = {**pod, "metadata": {**pod["metadata"], "namespace": kube_namespace}}
        kube.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(placed))


def _meta_label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def scrape_job(name: str) -> dict[str, Any]:
    jobs = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus-scrape.yaml").read_text())["scrape_configs"]
    job: dict[str, Any] = next(j for j in jobs if j["job_name"] == name)
    return job


def kept(job: dict[str, Any], meta: dict[str, str]) -> bool:
    """Whether every ``keep`` rule of ``job`` keeps a target with these ``__meta_*`` labels."""
    return all(re.fullmatch(rule["regex"], ";".join(meta.get(s, "") for s in rule["source_labels"]))
               for rule in job["relabel_configs"] if rule.get("action") == "keep")


def test_the_plain_prometheus_job_keeps_the_pods_the_backend_makes() -> None:
    """``prometheus-scrape.yaml`` (Prometheus without the operator): every ``keep`` rule matches the pods."""
    job = scrape_job("modelpier-predictors")
    for pod in replica_pods(FEATURES["canary"]):
        meta = {f"__meta_kubernetes_pod_label_{_meta_label(k)}": v for k, v in pod["metadata"]["labels"].items()}
        meta |= {f"__meta_kubernetes_pod_annotation_{_meta_label(k)}": v
                 for k, v in pod["metadata"]["annotations"].items()}
        for rule in job["relabel_configs"]:
            if rule.get("action") == "keep":
                value = ";".join(meta.get(s, "") for s in rule["source_labels"])
                assert re.fullmatch(rule["regex"], value), (rule, value)


def test_the_plain_prometheus_control_plane_job_keeps_only_the_control_planes_endpoints() -> None:
    """The job for Prometheus without the operator: the control plane Service's ``http`` endpoints (not the
    gateway's, not another port), at the metrics route, with the token from the mounted Secret."""
    job = scrape_job("modelpier-control")
    objects = build("base")

    def endpoint_meta(service: dict[str, Any], port: str) -> dict[str, str]:
        labels = service["metadata"]["labels"]
        return {**{f"__meta_kubernetes_service_label_{_meta_label(k)}": v for k, v in labels.items()},
                "__meta_kubernetes_endpoint_port_name": port}

    control, gateway = find(objects, "Service", "modelpier-control"), find(objects, "Service", "modelpier-gateway")
    (port,) = control["spec"]["ports"]
    assert kept(job, endpoint_meta(control, port["name"]))
    assert not kept(job, endpoint_meta(gateway, port["name"]))
    assert not kept(job, endpoint_meta(control, "grpc"))
    assert job["kubernetes_sd_configs"] == [{"role": "endpoints", "namespaces": {"names": ["modelpier-system"]}}]
    assert job["metrics_path"] == METRICS_ROUTE
    assert job["authorization"]["credentials_file"].endswith(f"/{METRICS_SECRET}/token")


def test_both_ways_of_scraping_replicas_attach_the_labels_the_dashboard_filters_on() -> None:
    """The PodMonitor's ``podTargetLabels`` and the plain job's relabelling give replica series the same
    ``modelpier_io_*`` labels, and those are the ones the dashboard's queries use."""
    monitor = find(build("base"), "PodMonitor", "modelpier-replicas")
    from_monitor = {_meta_label(label) for label in monitor["spec"]["podTargetLabels"]}
    from_job = {rule["target_label"] for rule in scrape_job("modelpier-predictors")["relabel_configs"]
                if rule.get("target_label", "").startswith("modelpier_io_")}
    dashboard = (ROOT / "deploy" / "monitoring" / "grafana-dashboard.json").read_text()
    used = set(re.findall(r"modelpier_io_[a-z_]+", dashboard))
    assert from_monitor == from_job
    assert used <= from_monitor, used - from_monitor
