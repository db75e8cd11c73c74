"""Per-predictor objects: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget.

Pure functions of one ``PredictorSpec`` and the ``RenderOptions``. Two ways to get the model
into the pod:

- model-load (default): an init container runs ``pier models pull REF --remote URL`` into an
  emptyDir that becomes the server's ``PIER_HOME`` (blobs verified against their sha256 digests
  as they arrive), then ``pier serve NAME`` serves the only, hence latest, version there;
- model-in-image: the predictor names an ``image`` that holds its model (``pier build image``):
  nothing is pulled; the image's entrypoint is ``pier serve`` on the model inside, so a model
  predictor's server options (workers, batching, timeout, ports) go to it as ``args``. A bundle's
  image runs as it is.
"""

from __future__ import annotations

from typing import Any

from modelpier.backends.kubernetes.names import (
    ANNOTATION_BUNDLE,
    ANNOTATION_MODEL,
    object_name,
    selector_labels,
    service_name,
)
from modelpier.backends.kubernetes.options import (
    GRPC_PORT,
    HTTP_PORT,
    MODEL_HOME,
    RenderOptions,
    parse_kubernetes_version,
)
from modelpier.backends.kubernetes.quantities import quantity, whole_seconds
from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import ModelDeploymentSpec, PredictorSpec

Manifest = dict[str, Any]
_RUN_AS: int = 10001  # the non-root user of the modelpier image (see Dockerfile)
_TERMINATION_GRACE_S: int = 45  # the server drains for 30 s on SIGTERM; leave room to exit


def min_replicas(predictor: PredictorSpec) -> int:
    """The fewest replicas the predictor runs: ``replicas``, or the autoscaler's floor (HPA needs >= 1)."""
    if predictor.autoscaling is None:
        return predictor.replicas
    return max(1, predictor.autoscaling.min_replicas)


def _server_args(predictor: PredictorSpec, spec: ModelDeploymentSpec, served: str) -> list[str]:
    return ["serve", served, *_server_options(predictor, spec)]


def _server_options(predictor: PredictorSpec, spec: ModelDeploymentSpec) -> list[str]:
    args = ["--host", "0.0.0.0", "--http-port", str(HTTP_PORT),  # noqa: S104  # pods listen on every interface
            "--grpc-port", str(GRPC_PORT), "--workers", str(predictor.worker_count),
            "--timeout-s", f"{spec.timeouts.request_seconds:g}"]
    if predictor.outputs:
        args += ["--outputs", ",".join(predictor.outputs)]
    if not predictor.batching.enabled:
        return [*args, "--no-batching"]
    return [*args, "--batching", "--max-batch-size", str(predictor.batching.max_batch_size),
            "--max-latency-ms", f"{predictor.batching.max_latency_ms:g}"]


def _resources(predictor: PredictorSpec) -> dict[str, dict[str, str]]:
    amounts = {"cpu": predictor.resources.cpu, "memory": predictor.resources.memory}
    if predictor.resources.gpu:
        amounts["nvidia.com/gpu"] = str(predictor.resources.gpu)
    # Requests equal limits: a replica's latency should not depend on its neighbours (Guaranteed QoS).
    return {"limits": dict(amounts), "requests": dict(amounts)}


def _probe(path: str, *, period: int, failures: int) -> Manifest:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": failures}


def _container_security() -> Manifest:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def _env(options: RenderOptions) -> list[Manifest]:
    return [{"name": "PIER_HOME", "value": MODEL_HOME}, {"name": "PIER_LOG_LEVEL", "value": options.log_level}]


def _pull_container(ref: str, options: RenderOptions) -> Manifest:
    return {
        "name": "pull-model",
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["pier"],
        "args": ["models", "pull", ref, "--remote", options.registry_url, "--output", "json"],
        "env": [*_env(options), {"name": "PIER_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": options.registry_token_secret, "key": "token", "optional": True}}}],
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "model-home", "mountPath": MODEL_HOME}, {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108  # a path inside the pod
    }


def _server_container(predictor: PredictorSpec, spec: ModelDeploymentSpec, options: RenderOptions) -> Manifest:
    container: Manifest = {
        "name": "server",
        "image": predictor.image or options.image,
        "imagePullPolicy": options.image_pull_policy,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                  {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/v2/health/ready", period=5, failures=3),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=6),
        # A large model may take minutes to load: liveness starts counting once the server is up.
        "startupProbe": _probe("/v2/health/live", period=5, failures=60),
        "resources": _resources(predictor),
        "env": _env(options),
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "model-home", "mountPath": MODEL_HOME}, {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108  # a path inside the pod
    }
    if predictor.image is None:
        ref = predictor.model_ref
        assert ref is not None  # checked by render_predictor: bundles need an image
        container["command"] = ["pier"]
        container["args"] = _server_args(predictor, spec, ref.name)
    elif predictor.model is not None:
        # The image's entrypoint is `pier serve NAME=/opt/pier/model`; these replace its default
        # arguments (the image config's Cmd), so the spec's tuning applies in the image too.
        container["args"] = _server_options(predictor, spec)
    return container


def _pod_annotations(predictor: PredictorSpec) -> dict[str, str]:
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                   "prometheus.io/path": "/metrics"}
    if predictor.model is not None:
        annotations[ANNOTATION_MODEL] = predictor.model
    if predictor.bundle is not None:
        annotations[ANNOTATION_BUNDLE] = predictor.bundle
    return annotations


def render_deployment(predictor: PredictorSpec, spec: ModelDeploymentSpec, name: str, labels: dict[str, str],
                      options: RenderOptions) -> Manifest:
    selector = selector_labels(labels["modelpier.io/deployment"], predictor.name)
    pod_spec: Manifest = {
        "containers": [_server_container(predictor, spec, options)],
        "securityContext": {"runAsNonRoot": True, "runAsUser": _RUN_AS, "runAsGroup": _RUN_AS, "fsGroup": _RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": _TERMINATION_GRACE_S,
        "enableServiceLinks": False,
        "volumes": [{"name": "model-home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if predictor.image is None and predictor.model is not None:
        pod_spec["initContainers"] = [_pull_container(predictor.model, options)]
    deployment_spec: Manifest = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": spec.rollout.max_surge, "maxUnavailable": spec.rollout.max_unavailable}},
        "progressDeadlineSeconds": whole_seconds(spec.rollout.ready_timeout_seconds),
        "revisionHistoryLimit": 5,
        "template": {"metadata": {"labels": {**labels, **selector}, "annotations": _pod_annotations(predictor)},
                     "spec": pod_spec},
    }
    if predictor.autoscaling is None:
        # With an autoscaler, leave replicas out: the HPA owns the field and an apply must not reset it.
        deployment_spec["replicas"] = predictor.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": deployment_spec}


def render_service(predictor: PredictorSpec, deployment: str) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(deployment, predictor.name)},
        "spec": {"type": "ClusterIP", "selector": selector_labels(deployment, predictor.name), "ports": [
            {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
            {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
             "appProtocol": "kubernetes.io/h2c"}]},
    }


def render_autoscaler(predictor: PredictorSpec, name: str, options: RenderOptions) -> Manifest | None:
    scaling = predictor.autoscaling
    if scaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas(predictor),
            "maxReplicas": scaling.max_replicas,
            # In-flight requests per pod, as the model server exports them; prometheus-adapter serves
            # the series to the custom metrics API (docs/kubernetes.md#autoscaling).
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": options.hpa_metric},
                "target": {"type": "AverageValue", "averageValue": quantity(scaling.target_in_flight)}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": whole_seconds(
                scaling.stabilization_seconds, minimum=0)}},
        },
    }


def render_disruption_budget(predictor: PredictorSpec, deployment: str, name: str, options: RenderOptions
                             ) -> Manifest | None:
    if min_replicas(predictor) <= 1:
        return None  # a budget on one replica would block node drains forever
    spec: Manifest = {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(deployment, predictor.name)}}
    if parse_kubernetes_version(options.kubernetes_version) >= (1, 27):
        # A replica that never became ready (a crash loop) must not block a node drain (beta in 1.27, on by default).
        spec["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": spec}


def render_predictor(predictor: PredictorSpec, spec: ModelDeploymentSpec, deployment: str, labels: dict[str, str],
                     options: RenderOptions) -> list[Manifest]:
    """The objects of one predictor, each with ``metadata.name`` only (``render`` adds the rest)."""
    if predictor.bundle is not None and predictor.image is None:
        raise InvalidSpec(f"predictor {predictor.name!r}: a bundle runs on Kubernetes from its image; set "
                          f"spec.predictors[*].image",
                          details={"field": "spec.predictors.image", "predictor": predictor.name})
    name = object_name(deployment, predictor.name)
    objects = [render_deployment(predictor, spec, name, labels, options), render_service(predictor, deployment),
               render_autoscaler(predictor, name, options),
               render_disruption_budget(predictor, deployment, name, options)]
    return [o for o in objects if o is not None]
