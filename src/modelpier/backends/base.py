"""The ``Backend`` protocol: how the reconciler starts, observes and stops replicas.

Two implementations: ``local/supervisor.py`` (child processes on loopback ports) and
``kubernetes/backend.py`` (one pod per replica, observed through a watch). A backend is a dumb
actuator. It does what it is told and reports what it sees; every decision (how many, which to
restart when, when a rollout is done) belongs to the reconciler's pure planner. A replica keeps
its id across restarts: the id names a slot, the pid a process (a pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from modelpier.settings import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS
from modelpier.spec.deployment import DEFAULT_MAX_BODY_BYTES, ModelDeploymentSpec

# starting: process up, not ready yet (loading); ready: readiness probe answers 200;
# unready: was ready, probe now fails; exited: the process is gone (crashed or killed), its slot kept
# until the reconciler restarts or stops it; stopping: draining after a stop, never routed to.
ReplicaPhase = Literal["starting", "ready", "unready", "exited", "stopping"]


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """What one replica runs. ``template`` identifies the runtime-relevant content (model version,
    batching, workers): two revisions with the same template can share replicas."""

    project: str
    deployment: str
    predictor: str
    revision: int
    template: str
    model: str  # a resolved registry reference, "iris:3"
    workers: int = 1
    batching: bool = True
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS
    outputs: tuple[str, ...] = ()  # the model's default outputs (``--outputs``); () = every output
    isolated: bool = False  # run in a virtualenv built from the version's lock (pier serve --isolated)
    image: str | None = None  # model-in-image: the image that holds the model (Kubernetes; the local backend refuses)
    cpu: str = "1"  # resources.cpu, a Kubernetes quantity (a pod's request and limit; locally: the workers)
    memory: str = "1Gi"  # resources.memory (a pod's request and limit)
    gpu: int = 0  # resources.gpu (nvidia.com/gpu on a pod)
    # limits.maxBodyBytes (at least the server's minimum): the replica accepts what the gateway lets through
    # (--max-body-bytes), whatever serve.max_body_bytes says.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class ReplicaObservation:
    replica_id: str
    spec: ReplicaSpec
    phase: ReplicaPhase
    url: str | None  # base URL while the process lives
    pid: int | None  # the process; on Kubernetes the slot's pod generation (a crash is counted once per pod)
    started_at: float  # epoch seconds the current process started
    ready_since: float | None = None  # epoch seconds of the first ready probe of the current process
    exit_code: int | None = None  # when exited and known (an adopted process's code is not)
    last_log: tuple[str, ...] = ()  # the tail of the replica's log, filled when exited
    restarts: int = 0
    adopted: bool = False  # found running at start-up (a previous control plane started it)
    failed_probes: int = 0  # consecutive failed readiness probes since the process was last ready
    unready_since: float | None = None  # epoch seconds of the first of those failed probes
    grpc_url: str | None = None  # host:port of the replica's V2 gRPC service while the process lives, if any


class Backend(Protocol):
    def refuse(self, spec: ModelDeploymentSpec) -> None:
        """``InvalidSpec`` naming the field (``details["field"]``) when this backend cannot honour ``spec``;
        called when a deployment is applied, so nothing is silently dropped. Pure: no I/O."""

    async def observe(self) -> list[ReplicaObservation]:
        """Every replica the backend knows, probed now."""

    async def start(self, spec: ReplicaSpec) -> str:
        """Start a replica; its id. ``ServiceUnavailable`` when it cannot (no free port...)."""

    async def restart(self, replica_id: str) -> None:
        """Start the replica's process again, in the same slot; a process still alive (hung) is killed
        first."""

    async def stop(self, replica_id: str, reason: str) -> None:
        """Begin draining and stopping a replica; it is observed as ``stopping`` until gone."""

    def logs(self, project: str, deployment: str, *, predictor: str | None = None, tail: int = 100) -> list[str]:
        """The last ``tail`` lines of each replica's log, each prefixed with ``[replica-id]`` (the control
        plane's ``LogSource`` shape, so a backend's ``logs`` is handed to it as is)."""

    async def close(self) -> None:
        """Release the backend's own resources. Replicas keep running (a restart adopts them)."""
