"""One replica as one pod: the manifest (strictly valid, PodSecurity ``restricted``) and reading pods back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.kubernetes.backend import refuse_kubernetes
from modelpier.backends.kubernetes.pods import PodOptions, host_port, render_pod, view
from modelpier.backends.local.supervisor import refuse_local
from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import ModelDeploymentSpec
from tests.unit.backends.kubernetes.validation import validate

SPEC = ReplicaSpec(project="team-a", deployment="iris", predictor="main", revision=3, template="abc123",
                   model="iris:7", workers=2, outputs=("predict",), cpu="2", memory="2Gi")
OPTIONS = PodOptions(image="registry.test/modelpier@sha256:" + "a" * 64, registry_url="http://10.0.0.1:8600",
                     service_account="models", image_pull_secrets=("pull",))


def pod(spec: ReplicaSpec = SPEC, generation: int = 0, **kw: Any) -> dict[str, Any]:
    return render_pod(spec, "main-0a1b2c3d", generation, namespace="team-a", options=OPTIONS, **kw)


@pytest.mark.parametrize("version", ["1.25", "1.28", "1.33"])
def test_the_pod_is_valid_for_the_api_server(version: str) -> None:
    validate(pod(), version)
    validate(pod(replace(SPEC, image="registry.test/iris@sha256:" + "b" * 64)), version)


def test_the_pod_meets_pod_security_restricted() -> None:
    spec = pod()["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*spec["containers"], *spec["initContainers"]]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False


def test_the_model_is_pulled_in_its_project_then_served_with_the_replicas_options() -> None:
    spec = pod()["spec"]
    [pull], [server] = spec["initContainers"], spec["containers"]
    assert pull["args"] == ["models", "pull", "iris:7", "--remote", "http://10.0.0.1:8600", "--output", "json"]
    for container in (pull, server):
        assert {"name": "PIER_PROJECT", "value": "team-a"} in container["env"]
    assert server["args"][:2] == ["serve", "iris"]
    args = server["args"]
    assert args[args.index("--workers") + 1] == "2"
    assert args[args.index("--outputs") + 1] == "predict"
    assert args[args.index("--max-batch-size") + 1] == "64"
    assert server["resources"] == {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "2", "memory": "2Gi"}}
    assert spec["restartPolicy"] == "Never"
    assert "livenessProbe" not in server
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert spec["serviceAccountName"] == "models"
    assert spec["imagePullSecrets"] == [{"name": "pull"}]


def test_the_deployments_body_limit_reaches_the_server_of_either_kind_of_pod() -> None:
    [server] = pod()["spec"]["containers"]
    assert server["args"][server["args"].index("--max-body-bytes") + 1] == str(64 * 2**20)  # not the server's own
    [server] = pod(replace(SPEC, image="registry.test/iris:1", max_body_bytes=100 * 2**20))["spec"]["containers"]
    assert server["args"][server["args"].index("--max-body-bytes") + 1] == str(100 * 2**20)


def test_a_model_image_is_run_with_the_server_options_and_nothing_pulled() -> None:
    spec = pod(replace(SPEC, image="registry.test/iris:1", batching=False))["spec"]
    assert "initContainers" not in spec
    [server] = spec["containers"]
    assert server["image"] == "registry.test/iris:1"
    assert "command" not in server
    assert server["args"][0] == "--host"
    assert "--no-batching" in server["args"]


def test_a_pod_reads_back_as_its_replica() -> None:
    manifest = pod(generation=2)
    manifest["metadata"]["uid"] = "u1"
    manifest["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    seen = view(manifest)
    assert seen is not None
    assert (seen.replica_id, seen.generation, seen.spec, seen.phase) == ("main-0a1b2c3d", 2, SPEC, "starting")
    assert manifest["metadata"]["name"] == "iris-main-0a1b2c3d-2"
    assert view({"metadata": {"name": "other", "labels": {}}}) is None


def test_a_replica_id_past_a_label_values_63_characters_is_labelled_short_and_reads_back_whole() -> None:
    long_id = "p" * 60 + "-0a1b2c3d"
    manifest = render_pod(replace(SPEC, predictor="p" * 60), long_id, 0, namespace="team-a", options=OPTIONS)
    label = manifest["metadata"]["labels"]["modelpier.io/replica"]
    assert len(label) <= 63
    assert label != long_id
    other = render_pod(replace(SPEC, predictor="p" * 60), "p" * 60 + "-9f8e7d6c", 0, namespace="team-a",
                       options=OPTIONS)
    assert other["metadata"]["labels"]["modelpier.io/replica"] != label  # the hash keeps slots apart
    seen = view(manifest)
    assert seen is not None
    assert seen.replica_id == long_id


def test_a_pod_made_before_the_replica_id_annotation_reads_its_id_from_the_label() -> None:
    manifest = pod()
    del manifest["metadata"]["annotations"]["modelpier.io/replica-id"]
    seen = view(manifest)
    assert seen is not None
    assert seen.replica_id == "main-0a1b2c3d"


def _with_status(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    manifest = pod()
    manifest["metadata"].update(meta)
    manifest["status"] = status
    return manifest


@pytest.mark.parametrize(("status", "meta", "phase", "exit_code"), [
    ({"phase": "Running", "podIP": "10.1.0.5", "conditions": [{"type": "Ready", "status": "True"}]}, {}, "ready", None),
    ({"phase": "Running", "podIP": "10.1.0.5", "conditions": [{"type": "Ready", "status": "False"}],
      "containerStatuses": [{"name": "server", "ready": False, "state": {"running": {}}}]}, {}, "not-ready", None),
    ({"phase": "Failed", "containerStatuses": [{"name": "server", "state": {"terminated": {"exitCode": 137}}}]},
     {}, "exited", 137),
    ({"phase": "Pending", "initContainerStatuses": [{"name": "pull-model", "state": {"terminated": {"exitCode": 4}}}]},
     {}, "exited", 4),
    ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
     {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "deleting", None),
])
def test_the_phase_of_a_pod(status: dict[str, Any], meta: dict[str, Any], phase: str, exit_code: int | None) -> None:
    seen = view(_with_status(status, **meta))
    assert seen is not None
    assert (seen.phase, seen.exit_code) == (phase, exit_code)


def test_a_waiting_pod_says_why() -> None:
    seen = view(_with_status({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes have 2 CPUs"}]}))
    assert seen is not None
    assert seen.waiting == ("Unschedulable: 0/3 nodes have 2 CPUs",)


def test_ipv6_pod_addresses_are_bracketed() -> None:
    assert host_port("fd00::5", 8081) == "[fd00::5]:8081"
    assert host_port("10.0.0.5", 8081) == "10.0.0.5:8081"


def _deployment(**predictor: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris:1", **predictor}]})


def test_each_backend_refuses_what_it_cannot_run_naming_the_field() -> None:
    with pytest.raises(InvalidSpec) as local:
        refuse_local(_deployment(image="registry.test/iris:1"))
    assert local.value.details["field"] == "spec.predictors.0.image"
    with pytest.raises(InvalidSpec) as pods:
        refuse_kubernetes(_deployment(isolated=True))
    assert pods.value.details["field"] == "spec.predictors.0.isolated"
    refuse_kubernetes(_deployment(image="registry.test/iris:1"))  # model-in-image runs on Kubernetes
    refuse_local(_deployment(isolated=True))  # and an isolated virtualenv locally


@pytest.mark.parametrize(("status", "why"), [
    ({"phase": "Failed", "containerStatuses": [
        {"name": "server", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]},
     "server: OOMKilled (exit code 137)"),
    ({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."},
     "Evicted: The node was low on resource: memory."),
])
def test_an_ended_pod_says_why(status: dict[str, Any], why: str) -> None:
    seen = view(_with_status(status))
    assert seen is not None
    assert (seen.phase, seen.ended_why) == ("exited", why)
