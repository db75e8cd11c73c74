"""One replica as one Pod: the manifest from a ``ReplicaSpec``, and what a pod object says back. Pure.

A replica id names a slot (``main-3fa9c2d1``); each start or restart of the slot is a new pod whose
name adds the slot's generation (``iris-main-3fa9c2d1-0``, ``-1``...), so a restart never waits for
the old pod's name to be released. The ``ReplicaSpec`` rides along as an annotation, so a control
plane that restarts rebuilds its replicas from the pods alone (as the local backend adopts its
children from its state file).

The model gets into the pod by an init container ``pier models pull REF
--remote URL`` into an emptyDir that is the server's ``PIER_HOME`` (``PIER_PROJECT`` set, so a
project's own models pull), or, with the predictor's ``image`` (model-in-image), nothing is pulled and
the image's entrypoint gets the server options. ``restartPolicy: Never``: a crash is the pod's end,
and the reconciler decides when the slot starts again (its crash backoff, as locally). Pods meet
PodSecurity ``restricted``: non-root, no privilege escalation, seccomp ``RuntimeDefault``, no
capabilities, a read-only root filesystem.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final, Literal

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.kubernetes.names import LABEL_DEPLOYMENT, LABEL_PREDICTOR, LABEL_PROJECT, object_name
from modelpier.backends.kubernetes.options import GRPC_PORT, HTTP_PORT, MODEL_HOME
from modelpier.spec.names import ModelRef

Manifest = dict[str, Any]

MANAGED_BY: Final = "modelpier"  # the control plane's backend (the kopf operator is "modelpier-operator")
COMPONENT: Final = "replica"
SELECTOR: Final = f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/component={COMPONENT}"
LABEL_REPLICA: Final = "modelpier.io/replica"
LABEL_GENERATION: Final = "modelpier.io/generation"
LABEL_REVISION: Final = "modelpier.io/revision"
LABEL_TEMPLATE: Final = "modelpier.io/template"
ANNOTATION_SPEC: Final = "modelpier.io/replica-spec"
# The slot's full id: the label holds it too, shortened with a hash past a label value's 63 characters.
ANNOTATION_REPLICA: Final = "modelpier.io/replica-id"
ANNOTATION_MODEL: Final = "modelpier.io/model"
SERVER: Final = "server"
PULL: Final = "pull-model"
RUN_AS: Final = 10001  # the non-root user of the platform image and of `pier build image`'s images


@dataclass(frozen=True, slots=True)
class PodOptions:
    """What a pod needs besides its ``ReplicaSpec`` (from ``KubernetesSettings`` and ``PlatformSettings``)."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    registry_url: str = "http://modelpier-control.modelpier-system.svc:8600"
    registry_token_secret: str = "modelpier-registry-token"  # noqa: S105  # a Secret's name
    service_account: str | None = None
    probe_period_s: int = 2
    probe_failures: int = 3
    probe_timeout_s: float = 1.0
    stop_grace_s: float = 30.0
    extra_drain_s: float = 15.0
    log_level: str = "info"


def pod_name(spec: ReplicaSpec, replica_id: str, generation: int) -> str:
    return object_name(spec.deployment, replica_id, str(generation))


def pod_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/pods"
    return base if name is None else f"{base}/{name}"


def _server_options(spec: ReplicaSpec, grace_s: float) -> list[str]:
    """As ``local.supervisor.serve_argv``: what the spec decides is always a flag, so ``serve.*`` settings an
    image's environment may carry tune a replica but never contradict its spec."""
    args = ["--host", "0.0.0.0", "--http-port", str(HTTP_PORT), "--grpc", "--grpc-port", str(GRPC_PORT),  # noqa: S104  # a pod listens on its own IP
            "--workers", str(spec.workers)]
    if spec.batching:
        args += ["--batching", "--max-batch-size", str(spec.max_batch_size), "--max-latency-ms",
                 f"{spec.max_latency_ms:g}"]
    else:
        args.append("--no-batching")
    args += ["--outputs", ",".join(spec.outputs)]  # "": every output
    args += ["--max-body-bytes", str(spec.max_body_bytes)]  # limits.maxBodyBytes: what the gateway lets through
    return [*args, "--shutdown-grace-s", f"{grace_s:g}", "--no-isolated"]


def _security() -> Manifest:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


_MOUNTS: Final = [{"name": "model-home", "mountPath": MODEL_HOME}, {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108  # inside the pod


def _env(spec: ReplicaSpec, options: PodOptions) -> list[Manifest]:
    # PIER_PROJECT: the pull asks the project's registry (then the shared catalog), and the server
    # resolves the model in the same project of its local store, as a local replica does.
    return [{"name": "PIER_HOME", "value": MODEL_HOME}, {"name": "PIER_LOG_LEVEL", "value": options.log_level},
            {"name": "PIER_PROJECT", "value": spec.project}]


def _resources(spec: ReplicaSpec) -> Manifest:
    amounts = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpu:
        amounts["nvidia.com/gpu"] = str(spec.gpu)
    return {"limits": dict(amounts), "requests": dict(amounts)}  # Guaranteed QoS: requests = limits


def render_pod(spec: ReplicaSpec, replica_id: str, generation: int, *, namespace: str, options: PodOptions,
               owner: Manifest | None = None) -> Manifest:
    """The pod of generation ``generation`` of slot ``replica_id``; ``owner`` an ownerReference (the CR)."""
    server: Manifest = {
        "name": SERVER, "image": spec.image or options.image, "imagePullPolicy": options.image_pull_policy,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                  {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        # No liveness probe: the reconciler decides when an unready replica is hung (its liveness
        # policy, as locally) from the failed readiness probes this one reports.
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"},
                           "periodSeconds": options.probe_period_s, "failureThreshold": options.probe_failures,
                           "timeoutSeconds": max(1, math.ceil(options.probe_timeout_s))},
        "resources": _resources(spec), "env": _env(spec, options), "securityContext": _security(),
        "volumeMounts": _MOUNTS,
    }
    options_args = _server_options(spec, options.stop_grace_s)
    init: list[Manifest] = []
    if spec.image is None:
        server["command"] = ["pier"]
        server["args"] = ["serve", ModelRef.parse(spec.model).name, *options_args]  # the only version pulled
        init.append({
            "name": PULL, "image": options.image, "imagePullPolicy": options.image_pull_policy,
            "command": ["pier"], "args": ["models", "pull", spec.model, "--remote", options.registry_url,
                                          "--output", "json"],
            "env": [*_env(spec, options), {"name": "PIER_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": options.registry_token_secret, "key": "token", "optional": True}}}],
            "securityContext": _security(), "volumeMounts": _MOUNTS,
        })
    else:
        server["args"] = options_args  # the image's entrypoint is `pier serve NAME=/opt/pier/model`
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "containers": [server],
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": math.ceil(options.stop_grace_s + options.extra_drain_s),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "volumes": [{"name": "model-home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if init:
        pod_spec["initContainers"] = init
    if options.service_account:
        pod_spec["serviceAccountName"] = options.service_account
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in options.image_pull_secrets]
    metadata: Manifest = {
        "name": pod_name(spec, replica_id, generation), "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": "modelpier", "app.kubernetes.io/instance": spec.deployment,
            "app.kubernetes.io/component": COMPONENT, "app.kubernetes.io/part-of": "modelpier",
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_PROJECT: spec.project, LABEL_DEPLOYMENT: spec.deployment, LABEL_PREDICTOR: spec.predictor,
            LABEL_REVISION: str(spec.revision), LABEL_TEMPLATE: spec.template,
            LABEL_REPLICA: object_name(replica_id), LABEL_GENERATION: str(generation)},
        "annotations": {ANNOTATION_SPEC: json.dumps(asdict(spec), separators=(",", ":")),
                        ANNOTATION_REPLICA: replica_id, ANNOTATION_MODEL: spec.model, "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HTTP_PORT), "prometheus.io/path": "/metrics"},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


# -- reading pods back -------------------------------------------------------------------------------

PodPhase = Literal["starting", "ready", "not-ready", "exited", "deleting"]


@dataclass(frozen=True, slots=True)
class PodView:
    """What one pod object says, as the backend needs it."""

    namespace: str
    name: str
    uid: str
    replica_id: str
    generation: int
    spec: ReplicaSpec
    phase: PodPhase
    ip: str | None
    started_at: float  # epoch seconds: the pod's start (or creation) time
    exit_code: int | None  # of the container that ended the pod
    ended_container: str | None  # which container's log explains the end
    waiting: tuple[str, ...]  # why a starting pod is not running yet (image pulls, scheduling)
    ended_why: str | None = None  # "server: OOMKilled (exit code 137)", "Evicted: the node was low on memory"


def replica_spec(annotation: str) -> ReplicaSpec:
    fields = json.loads(annotation)
    # JSON has no tuples; the spec is frozen and compared, so its sequences must be tuples again.
    fields["outputs"] = tuple(fields.get("outputs") or ())
    known = set(ReplicaSpec.__dataclass_fields__)
    return ReplicaSpec(**{k: v for k, v in fields.items() if k in known})


def _epoch(stamp: str | None) -> float | None:
    return None if not stamp else datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _terminated(statuses: list[Manifest], name: str | None = None) -> Manifest | None:
    for status in statuses:
        if name is None or status.get("name") == name:
            ended = (status.get("state") or {}).get("terminated")
            if ended:
                return {**ended, "container": status.get("name")}
    return None


def view(pod: Manifest) -> PodView | None:
    """The pod as a replica; None when it is not one of ours (no readable spec annotation)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    try:
        spec = replica_spec(annotations[ANNOTATION_SPEC])
        replica_id = annotations.get(ANNOTATION_REPLICA) or labels[LABEL_REPLICA]
        generation = int(labels[LABEL_GENERATION])
    except (KeyError, ValueError, TypeError):
        return None
    containers = status.get("containerStatuses") or []
    inits = status.get("initContainerStatuses") or []
    ended = _terminated(containers, SERVER)
    failed_init = next((s for s in (_terminated([i]) for i in inits) if s and s.get("exitCode")), None)
    pod_phase = status.get("phase")
    phase: PodPhase
    ended_by = ended or failed_init
    if meta.get("deletionTimestamp"):
        phase = "deleting"
    elif pod_phase in ("Failed", "Succeeded") or ended is not None or failed_init is not None:
        phase = "exited"
        ended_by = ended_by or _terminated([*containers, *inits])
    elif any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
        phase = "ready"
    elif any(c.get("ready") for c in containers) or any("running" in (c.get("state") or {}) for c in containers):
        phase = "not-ready"  # the server runs; readiness is the kubelet's probe
    else:
        phase = "starting"
    waiting = []
    for c in [*inits, *containers]:
        why = (c.get("state") or {}).get("waiting") or {}
        if why.get("reason") and why["reason"] not in ("PodInitializing", "ContainerCreating"):
            waiting.append(f"{c.get('name')}: {why['reason']}: {why.get('message', '')}".rstrip(": "))
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("message"):
            waiting.append(f"{c.get('reason', 'Unschedulable')}: {c['message']}")
    started = _epoch(status.get("startTime")) or _epoch(meta.get("creationTimestamp")) or 0.0
    return PodView(
        namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
        replica_id=replica_id, generation=generation, spec=spec, phase=phase,
        ip=status.get("podIP") or None, started_at=started,
        exit_code=None if ended_by is None else ended_by.get("exitCode"),
        ended_container=None if ended_by is None else ended_by.get("container"), waiting=tuple(waiting),
        ended_why=_ended_why(status, ended_by) if phase == "exited" else None)


def _ended_why(status: Manifest, ended_by: Manifest | None) -> str | None:
    """What the kubelet says of a pod's end: the container's reason (OOMKilled, Error), else the pod's (Evicted)."""
    if ended_by is not None and ended_by.get("reason"):
        return f"{ended_by.get('container')}: {ended_by['reason']} (exit code {ended_by.get('exitCode')})"
    if status.get("reason"):
        return f"{status['reason']}: {status.get('message', '')}".rstrip(": ")
    return None


def host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
