"""Per-predictor objects: model pull, image, probes, resources, HPA, PDB, rollout strategy."""

from __future__ import annotations

from typing import Any

import pytest

from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.render import render
from tests.unit.backends.kubernetes.specs import FEATURES


def objects(feature: str, **options: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(FEATURES[feature], RenderOptions(**options))}


def pod(feature: str, name: str = "iris-main", **options: Any) -> dict[str, Any]:
    spec: dict[str, Any] = objects(feature, **options)[("Deployment", name)]["spec"]["template"]["spec"]
    return spec


def test_the_model_is_pulled_digest_verified_into_an_empty_dir_before_serving() -> None:
    spec = pod("single", image="img:1", registry_url="http://control:8600")
    (init,) = spec["initContainers"]
    assert init["command"] == ["pier"]
    assert init["args"][:5] == ["models", "pull", "iris:production", "--remote", "http://control:8600"]
    assert {"name": "PIER_HOME", "value": "/var/lib/modelpier"} in init["env"]
    server = spec["containers"][0]
    assert server["args"][:2] == ["serve", "iris"]  # the only version in the fresh store is the latest
    assert {"name": "PIER_HOME", "value": "/var/lib/modelpier"} in server["env"]
    home = {"name": "model-home", "mountPath": "/var/lib/modelpier"}
    assert home in init["volumeMounts"]
    assert home in server["volumeMounts"]
    assert {"name": "model-home", "emptyDir": {}} in spec["volumes"]
    assert init["image"] == server["image"] == "img:1"


@pytest.mark.parametrize(("feature", "name", "image"), [
    ("bundle-image", "iris-svc", "registry.example.com/fraud:3"),
    ("model-image", "iris-main", "registry.example.com/iris:3")])
def test_an_image_holds_the_model_so_nothing_is_pulled(feature: str, name: str, image: str) -> None:
    spec = pod(feature, name)
    assert "initContainers" not in spec
    (server,) = spec["containers"]
    assert server["image"] == image
    assert "command" not in server


def test_a_bundle_image_runs_as_it_is() -> None:
    assert "args" not in pod("bundle-image", "iris-svc")["containers"][0]


def test_a_model_image_gets_the_server_options_as_arguments_to_its_pier_serve() -> None:
    # `pier build image` sets the entrypoint to `pier serve NAME=/opt/pier/model`; args replace its Cmd.
    server = pod("model-image")["containers"][0]
    args = server["args"]
    assert args[:6] == ["--host", "0.0.0.0", "--http-port", "8080", "--grpc-port", "8081"]  # noqa: S104  # a pod's address
    assert "serve" not in args
    assert "--workers" in args
    assert "--timeout-s" in args


def test_probes_use_the_v2_health_endpoints() -> None:
    server = pod("single")["containers"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"http": 8080, "grpc": 8081}


@pytest.mark.parametrize(("feature", "expected"), [
    ("single", {"cpu": "1", "memory": "1Gi"}),
    ("gpu", {"cpu": "500m", "memory": "2Gi", "nvidia.com/gpu": "2"}),
])
def test_resources_are_requested_and_limited(feature: str, expected: dict[str, str]) -> None:
    resources = pod(feature)["containers"][0]["resources"]
    assert resources == {"requests": expected, "limits": expected}


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    spec = pod("single")
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in [*spec["containers"], *spec["initContainers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(("feature", "flags"), [
    ("single", ["--batching", "--max-batch-size", "64", "--max-latency-ms", "5"]),  # on by default
    ("batching-disabled", ["--no-batching"]),
    ("batching", ["--batching", "--max-batch-size", "64", "--max-latency-ms", "2.5"]),
])
def test_batching_becomes_server_flags(feature: str, flags: list[str]) -> None:
    args = pod(feature)["containers"][0]["args"]
    assert args[-len(flags):] == flags


def test_default_outputs_become_a_server_flag() -> None:
    assert "--outputs predict" in " ".join(pod("outputs")["containers"][0]["args"])
    assert "--outputs" not in pod("single")["containers"][0]["args"]


def test_workers_and_timeouts_become_server_flags() -> None:
    assert "--workers 4" in " ".join(pod("batching")["containers"][0]["args"])
    assert "--workers 2" in " ".join(pod("cores")["containers"][0]["args"])  # one per core of resources.cpu
    assert "--workers 1" in " ".join(pod("single")["containers"][0]["args"])
    assert "--timeout-s 2.5" in " ".join(pod("timeouts")["containers"][0]["args"])


def test_autoscaling_renders_an_hpa_and_leaves_replicas_to_it() -> None:
    found = objects("autoscaling")
    assert "replicas" not in found[("Deployment", "iris-main")]["spec"]
    hpa = found[("HorizontalPodAutoscaler", "iris-main")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-main"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": "modelpier_requests_in_flight"}, "target": {"type": "AverageValue", "averageValue": "4"}}}]
    assert hpa["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 90}}


def test_scale_to_zero_is_clamped_to_one_for_the_hpa() -> None:
    hpa = objects("scale-to-zero")[("HorizontalPodAutoscaler", "iris-main")]["spec"]
    assert hpa["minReplicas"] == 1
    assert hpa["metrics"][0]["pods"]["target"]["averageValue"] == "2500m"


@pytest.mark.parametrize(("feature", "budget"), [("single", False), ("zero-replicas", False), ("replicas", True),
                                                 ("autoscaling", True), ("scale-to-zero", False)])
def test_a_disruption_budget_only_above_one_replica(feature: str, budget: bool) -> None:
    assert (("PodDisruptionBudget", "iris-main") in objects(feature)) is budget


@pytest.mark.parametrize(("version", "policy"), [("1.25", None), ("1.27", "AlwaysAllow"), ("1.30", "AlwaysAllow")])
def test_the_budget_lets_unhealthy_pods_go_where_the_version_allows(version: str, policy: str | None) -> None:
    spec = objects("replicas", kubernetes_version=version)[("PodDisruptionBudget", "iris-main")]["spec"]
    assert spec.get("unhealthyPodEvictionPolicy") == policy
    assert spec["maxUnavailable"] == 1


def test_replicas_and_rollout_strategy() -> None:
    spec = objects("rollout")[("Deployment", "iris-main")]["spec"]
    assert spec["replicas"] == 4
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 1}
    assert spec["progressDeadlineSeconds"] == 601


def test_the_service_selects_the_predictors_pods() -> None:
    found = objects("single")
    service = found[("Service", "iris-main")]["spec"]
    template = found[("Deployment", "iris-main")]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= template.items()
    assert [p["port"] for p in service["ports"]] == [8080, 8081]


@pytest.mark.parametrize(("feature", "deployment", "service"), [
    ("long-names", None, None), ("digit-names", "9lives-1st", "md-9lives-1st")])
def test_names_fit_kubernetes_limits(feature: str, deployment: str | None, service: str | None) -> None:
    found = render(FEATURES[feature], RenderOptions())
    names = {o["kind"]: o["metadata"]["name"] for o in found}
    assert all(len(n) <= 63 for n in names.values())
    assert names["Service"][0].isalpha()
    if deployment is not None:
        assert (names["Deployment"], names["Service"]) == (deployment, service)


def test_the_model_reference_is_an_annotation_not_a_label() -> None:
    template = objects("single")[("Deployment", "iris-main")]["spec"]["template"]["metadata"]
    assert template["annotations"]["modelpier.io/model"] == "iris:production"
    assert template["annotations"]["prometheus.io/port"] == "8080"
