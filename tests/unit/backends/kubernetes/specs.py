"""ModelDeployment documents, one per spec feature (all real spec objects), and the pods the backend makes of them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelpier.backends.kubernetes.crd import DEFAULT_NAMESPACE
from modelpier.backends.kubernetes.options import DEFAULT_IMAGE
from modelpier.backends.kubernetes.pods import PodOptions, render_pod
from modelpier.control.deployments.state import Revision
from modelpier.control.reconciler.plan import replica_template
from modelpier.spec.deployment import ModelDeployment, parse_deployment
from modelpier.spec.revision import RevisionKind


def document(predictors: list[dict[str, Any]], *, name: str = "iris", project: str | None = "acme",
             **spec: Any) -> ModelDeployment:
    metadata: dict[str, Any] = {"name": name}
    if project is not None:
        metadata["project"] = project
    return parse_deployment({"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                             "metadata": metadata, "spec": {"predictors": predictors, **spec}})


CANARY = [{"name": "main", "model": "iris:3", "weight": 90}, {"name": "canary", "model": "iris:4", "weight": 10}]

FEATURES: dict[str, ModelDeployment] = {
    "single": document([{"model": "iris:production"}]),
    "no-project": document([{"model": "iris:1"}], project=None),
    "replicas": document([{"model": "iris:1", "replicas": 3}]),
    "zero-replicas": document([{"model": "iris:1", "replicas": 0}]),
    "autoscaling": document([{"model": "iris:1", "autoscaling": {
        "minReplicas": 2, "maxReplicas": 8, "targetInFlight": 4, "stabilizationSeconds": 90}}]),
    "scale-to-zero": document([{"model": "iris:1", "autoscaling": {"minReplicas": 0, "maxReplicas": 3,
                                                                   "targetInFlight": 2.5}}]),
    "gpu": document([{"model": "iris:1", "resources": {"cpu": "500m", "memory": "2Gi", "gpu": 2}}]),
    "batching": document([{"model": "iris:1", "batching": {"maxBatchSize": 64, "maxLatencyMs": 2.5},
                           "workers": 4}]),
    "batching-disabled": document([{"model": "iris:1", "batching": {"enabled": False}}]),
    "outputs": document([{"model": "iris:1", "outputs": ["predict"]}]),
    "cores": document([{"model": "iris:1", "resources": {"cpu": "2"}}]),
    "canary": document(CANARY),
    "header-route": document(CANARY, routes=[{"match": {"headers": {"x-segment": "beta", "x-tier": "gold"}},
                                              "predictor": "canary"}]),
    "shadow": document([{"name": "main", "model": "iris:3"}, {"name": "next", "model": "iris:4", "weight": 0}],
                       shadow={"predictor": "next"}),
    "shadow-partial": document([*CANARY, {"name": "shadow", "model": "iris:5", "weight": 0}],
                               shadow={"predictor": "shadow", "percent": 25},
                               routes=[{"match": {"headers": {"x-user": "qa"}}, "predictor": "canary"}]),
    "bundle-image": document([{"name": "svc", "bundle": "fraud:3", "image": "registry.example.com/fraud:3"}]),
    "model-image": document([{"model": "iris:3", "image": "registry.example.com/iris:3"}]),
    "timeouts": document([{"model": "iris:1"}], timeouts={"requestSeconds": 2.5}),
    "rollout": document([{"model": "iris:1", "replicas": 4}],
                        rollout={"maxSurge": 2, "maxUnavailable": 1, "readyTimeoutSeconds": 600.5}),
    "long-names": document([{"name": "p" * 60, "model": "iris:1"}], name="d" * 60),
    "digit-names": document([{"name": "1st", "model": "iris:1"}], name="9lives"),
}


def replica_pods(deployment: ModelDeployment, options: PodOptions | None = None) -> list[dict[str, Any]]:
    """The pods the Kubernetes backend creates for ``deployment``'s first revision: the first replica of
    each predictor a backend can run, as the reconciler's template (``replica_template``) and the
    backend's ``render_pod`` make it (model references are pulled as written: nothing resolves them)."""
    project = deployment.metadata.project or DEFAULT_NAMESPACE
    revision = Revision(project, deployment.metadata.name, 1, deployment.spec, {}, datetime(2026, 1, 1, tzinfo=UTC),
                        "test", RevisionKind.APPLIED, "applied")
    templates = [(p.name, replica_template(revision, p)) for p in deployment.spec.predictors]
    return [render_pod(t, f"{name}-0a1b2c3d", 0, namespace=project, options=options or PodOptions(image=DEFAULT_IMAGE))
            for name, t in templates if t is not None]
