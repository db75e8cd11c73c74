"""Typed settings for every modelpier process.

Loaded once in ``main()`` (or by a test) with ``load_settings()`` and passed down; nothing reads the
environment at import time. Sources, strongest first: explicit keyword arguments, ``PIER_*``
environment variables (nested sections with ``__``, e.g. ``PIER_SERVER__PORT``), the TOML or YAML
config file named by ``PIER_CONFIG`` (default ``$PIER_HOME/config.yaml`` when it exists), then the
defaults below.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from modelpier.errors import InvalidSpec


def default_home() -> Path:
    return Path(os.environ.get("PIER_HOME", "~/.modelpier")).expanduser()


class ControlPlaneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface the API server binds; loopback by default so "
                      "a fresh install is not reachable from the network.")
    port: int = Field(8600, ge=0, le=65535, description="TCP port of the API server (0 picks a free one).")
    max_upload_request_bytes: int = Field(
        64 * 1024**3, ge=1024,
        description="Largest body of one upload request in bytes (64 GiB). Bodies stream to disk, so "
                    "this guards the disk against a runaway client, not the memory.")
    upload_ttl_s: float = Field(
        3600.0, gt=0, le=30 * 86_400,
        description="Seconds an unfinished blob upload may stay untouched (no chunk appended) before it is "
                    "discarded, releasing the disk and the storage quota it holds. An hour lets a client resume "
                    "after a dropped connection; checked every tenth of it (at most every 5 minutes).")
    blob_gc_interval_s: float = Field(
        3600.0, ge=0,
        description="Seconds between passes of the blob collector, which deletes blobs no version references "
                    "(abandoned pushes, deleted versions); 0 turns it off. Hourly keeps a pass's listing of the "
                    "blob store rare.")
    blob_gc_grace_s: float = Field(
        3600.0, ge=0,
        description="Blobs written less than this many seconds ago are never collected: a push uploads its blobs "
                    "before it registers the version that references them, so this must outlast the slowest "
                    "push (an hour).")
    alias_poll_seconds: float = Field(
        5.0, ge=0,
        description="Seconds between checks of the aliases that deployments follow (followAlias); a moved "
                    "alias starts a rollout within about this long. 5 s is quick to notice and costs a few "
                    "small queries per followed alias; 0 turns following off.")


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024,
        description="Bytes per chunk when streaming blobs and pushing; 8 MiB amortises per-request "
                    "overhead while keeping memory flat.")
    cache_dir: Path | None = Field(
        None, description="Where pulled versions are unpacked for loading; default $PIER_HOME/cache.")
    environments_dir: Path | None = Field(
        None, description="Where isolated replicas' virtualenvs are cached, one per lock "
                          "(PIER_REGISTRY__ENVIRONMENTS_DIR); default $PIER_HOME/envs. Several homes may share one.")


class PlatformSettings(BaseModel):
    """The reconciler and its backend, which `pier up` and `pier server` run (`control/platform.py`)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "kubernetes", "none"] = Field(
        "local", description="Where `pier server` runs replicas (PIER_PLATFORM__BACKEND; `pier server --backend` "
                             "overrides): local child processes, Kubernetes pods, or none (the API and registry "
                             "only: desired state is kept, nothing reconciles it). Local, like `pier up`.")
    replica_port_min: int = Field(30000, ge=1024, le=65535, description="Lowest loopback port a local replica "
                                  "may listen on; a range keeps replicas away from other services' ports.")
    replica_port_max: int = Field(30999, ge=1024, le=65535, description="Highest replica port (inclusive); "
                                  "1,000 ports is far more replicas than one machine runs.")
    reconcile_interval_s: float = Field(0.5, gt=0, le=60, description="Seconds between reconcile passes "
                                        "(also run at once after every API write); bounds how fast a crash is seen.")
    probe_timeout_s: float = Field(1.0, gt=0, le=30, description="Seconds a readiness probe may take before the "
                                   "replica counts as not ready.")
    restart_backoff_s: float = Field(1.0, gt=0, le=60, description="Delay before the first restart of a crashed "
                                     "replica in seconds; doubles per consecutive crash.")
    restart_backoff_max_s: float = Field(30.0, gt=0, le=3600, description="Longest delay between restarts (s), "
                                         "so a crash-looping replica is still retried twice a minute.")
    degraded_after_crashes: int = Field(3, ge=1, le=100, description="Consecutive crashes of one replica before "
                                        "the deployment reports Degraded with the replica's last log lines.")
    stop_grace_s: float = Field(30.0, ge=0, le=3600, description="Seconds a stopping replica may drain in-flight "
                                "requests after SIGTERM before SIGKILL; the model server's default drain.")
    liveness_failures: int = Field(10, ge=1, le=1000, description="Consecutive failed readiness probes after which "
                                   "a replica that was ready, and whose process is still alive, is restarted "
                                   "(a hung process never exits by itself). With liveness_period_s, 10 x 1 s: "
                                   "long enough to ride out a GC pause or a burst of slow requests.")
    liveness_period_s: float = Field(1.0, gt=0, le=600, description="Seconds each counted probe stands for: the "
                                     "probes must also span liveness_failures x this long, so a burst of quick "
                                     "passes cannot restart a replica early.")
    deregistration_delay_s: float = Field(1.0, ge=0, le=600, description="Seconds a stopping replica keeps serving "
                                          "before it gets SIGTERM, so every gateway (which polls the routing table "
                                          "every gateway.poll_interval_s) has stopped sending it requests; twice "
                                          "the poll interval.")


# Adaptive batching's defaults, in one place for both of their users: a bare `pier serve`
# (serve.max_batch_size, serve.max_latency_ms) and a deployment's predictors (spec/deployment.py's
# `batching`, which imports them), so a replica and a local server batch alike. 64 rows: a 200-tree
# forest costs nearly the same for 1 and 64 rows, so the largest batch a 64-connection load forms is
# the throughput; 5 ms bounds the wait, which the policy rarely uses (docs/serving.md).
DEFAULT_MAX_BATCH_SIZE: Final = 64
DEFAULT_MAX_LATENCY_MS: Final = 5.0
MIN_MAX_BODY_BYTES: Final = 1024  # the smallest body limit a model server takes (serve.max_body_bytes)


class ServeSettings(BaseModel):
    """Defaults of the model server, ``pier serve`` (docs/serving.md); each has a flag of the same name
    that overrides it for one run. Replicas of a deployment get their ports, workers, batching and
    outputs from the spec as flags; the rest (queue, timeouts, body size, ...) from these settings."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface both ports bind (--host); loopback by default so a "
                      "model is not reachable from the network until asked (0.0.0.0 for every interface).")
    http_port: int = Field(8080, ge=0, le=65535, description="TCP port of HTTP (--http-port): V2 REST, KServe V1, "
                           "Seldon, /invocations, /metrics, /docs. 8080 is KServe's and MLServer's port; 0 picks "
                           "a free one.")
    grpc_port: int = Field(8081, ge=0, le=65535, description="TCP port of the V2 gRPC service (--grpc-port), next "
                           "to http_port; 0 picks a free one.")
    grpc: bool = Field(True, description="Start the V2 gRPC service (--grpc/--no-grpc); off saves a thread pool "
                       "and a port when only HTTP is used.")
    workers: int = Field(1, ge=0, description="Server processes sharing the ports with SO_REUSEPORT "
                         "(--workers), each loading every model; 0 = one per CPU core. One by default, so a "
                         "replica's CPU request maps to one process and a model is held in memory once.")
    batching: bool = Field(True, description="Adaptive batching of every model (--batching/--no-batching); a lone "
                           "request is flushed at once, so it costs nothing at one connection (docs/serving.md).")
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, description="Most rows merged into one model call "
                                "(--max-batch-size); a deployment's batching.maxBatchSize defaults to the same 64.")
    max_latency_ms: float = Field(DEFAULT_MAX_LATENCY_MS, ge=0, description="Longest a request waits for others to "
                                  "join its batch, in milliseconds (--max-latency-ms); the batcher waits less when "
                                  "the model is fast or traffic sparse. A deployment's default is the same 5 ms.")
    max_queue: int = Field(1024, ge=1, description="Requests waiting per model before the next gets 503 with "
                           "Retry-After (--max-queue): absorbs a burst while bounding the memory a backlog "
                           "holds; past it a client does better to retry later or elsewhere.")
    outputs: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Default outputs of every model, comma-separated (--outputs): what a request that names "
                        "none gets, and the only ones computed for it (scikit-learn then skips predict_proba). "
                        "Empty: every output.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=MIN_MAX_BODY_BYTES, description="Largest request body in bytes "
                                "(--max-body-bytes; 413 above, gRPC RESOURCE_EXHAUSTED): checked before the body is "
                                "read, so a runaway client cannot fill the memory. 16 MiB is far above tabular and "
                                "single-image requests; raise it for large batches of images.")
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout in seconds, queueing "
                             "included (--timeout-s; 504 after); the same 30 s as a deployment's "
                             "timeouts.requestSeconds and the client's default deadline.")
    inline_predict_us: float = Field(1000.0, ge=0, description="Predictions estimated to take less than this "
                                     "many microseconds run on the event loop, longer ones in a thread "
                                     "(--inline-predict-us): a thread hop costs more than such a call. 0: always a "
                                     "thread.")
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, seconds in-flight requests may "
                                    "take to finish before the server closes (--shutdown-grace-s); the platform's "
                                    "platform.stop_grace_s gives replicas the same 30 s.")
    access_log: bool = Field(False, description="Log every HTTP request (--access-log); off because it costs "
                             "throughput, and the gateway's metrics and prediction log cover most needs.")
    repository_api: bool = Field(
        False, description="Serve the V2 model repository extension (POST /v2/repository/index, "
                           "/v2/repository/models/{m}/load|unload; --repository-api). Off by default: "
                           "it lets any caller that reaches the port take models out of service.")
    isolated: bool = Field(False, description="Run in a virtualenv built with uv from the models' environment "
                           "lock (--isolated), cached under registry.environments_dir; every model served "
                           "together must share one lock. Off: the models run in pier's own environment.")

    @field_validator("outputs", mode="before")
    @classmethod
    def _split_outputs(cls, value: Any) -> Any:
        # PIER_SERVE__OUTPUTS=predict,predict_proba reads as the flag does; a config file may give a list.
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


class BenchSettings(BaseModel):
    """Defaults of ``pier bench`` (docs/bench.md); each has a flag that overrides it for one run."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(8, ge=1, le=10_000, description="Workers, each with one keep-alive connection and one "
                             "request in flight (--concurrency); 8 loads a small deployment without needing a "
                             "large machine to generate the load.")
    duration_s: float = Field(10.0, ge=0.1, description="Seconds measured when --requests is not given "
                              "(--duration): long enough for stable percentiles at a few thousand req/s.")
    warmup_s: float = Field(0.0, ge=0, description="Seconds of load before measuring starts (--warmup), to fill "
                            "connection pools, caches and batchers; none by default, so a cold start shows.")
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout in seconds (--timeout-s); a request over "
                             "it counts as an error. 30 s: the server's own default bound.")


class ClientSettings(BaseModel):
    """Defaults of ``modelpier.Client`` and ``pier predict`` (docs/client.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="Base URL the client calls (PIER_CLIENT__URL): a gateway "
                          "(http://host:8700, deployments under /{project}/{name}/) or one `pier serve` "
                          "(http://host:8080). Unset: the local gateway, "
                          "http://{gateway.host}:{gateway.port}.")
    grpc_url: str | None = Field(
        None, description="host:port of the V2 gRPC service the client calls with grpc=True "
                          "(PIER_CLIENT__GRPC_URL). Unset: the local gateway's gateway.grpc_port.")
    timeout_s: float = Field(
        30.0, gt=0, description="Default deadline of one call in seconds, sent to the server "
                                "(x-pier-timeout-ms / the gRPC deadline) so it stops working on an answer nobody "
                                "waits for; 30 s is the server's own default bound.")
    retries: int = Field(
        3, ge=0, le=20, description="Retries of a call that certainly did not reach the model (connection "
                                    "refused, 503 with Retry-After), with exponential backoff.")
    binary_threshold_bytes: int = Field(
        64 * 1024, ge=0, description="Inputs at least this large (bytes of numeric data) go as binary tensors "
                                     "instead of JSON; below it JSON is as fast and readable in logs.")


class GatewaySettings(BaseModel):
    """The gateway: where it listens, its prediction cache and async jobs (docs/gateway-patterns.md)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface the gateway binds (PIER_GATEWAY__HOST); loopback by "
                      "default, like the control plane.")
    port: int = Field(8700, ge=0, le=65535, description="TCP port of the gateway (PIER_GATEWAY__PORT), where every "
                      "deployment answers under /{project}/{deployment}/ (0 picks a free one).")
    grpc_port: int = Field(8701, ge=0, le=65535, description="TCP port of the gateway's V2 gRPC service "
                           "(PIER_GATEWAY__GRPC_PORT), where the deployment is named by the x-pier-deployment "
                           "metadata; next to port so the pair is easy to remember. 0 turns gRPC off.")
    poll_interval_s: float = Field(0.5, gt=0, le=60, description="Seconds between the gateway's polls of the control "
                                   "plane's routing table (an unchanged table costs a 304); bounds how late a "
                                   "gateway sees a new or stopping replica.")
    redis_url: SecretStr | None = Field(
        None, description="redis://[user:password@]host:port/db of a Redis that holds the prediction cache and the "
                          "async job queue (PIER_GATEWAY__REDIS_URL), shared by every gateway that names it. Unset: "
                          "an in-memory cache per gateway and jobs in SQLite at $PIER_HOME/gateway/jobs.db.")
    cache_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024 * 1024,
        description="Bytes of answers the in-memory cache keeps across all deployments (256 MiB), on top of "
                    "each deployment's cache.maxEntries; bounds the gateway's memory whatever the specs say.")
    job_concurrency: int = Field(
        4, ge=1, le=1024, description="Async jobs one gateway runs at once. Each job is one request to a "
                                      "replica, so a few keep replicas busy without starving live traffic.")
    job_lease_s: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds a gateway holds a running job before another may take it over; renewed every "
                    "third of it while the job runs, so it bounds how long a job waits after its gateway died.")
    job_retention_s: float = Field(
        7 * 86_400, gt=0,
        description="Seconds a finished job (and its result) stays available to GET before it is purged; "
                    "a week leaves room for callers that poll rarely.")
    token_stale_limit_s: float = Field(
        300.0, ge=0, le=86_400,
        description="While the control plane cannot be reached, a token the gateway checked within this many "
                    "seconds keeps its answer (valid tokens keep working through a control-plane restart); "
                    "others get 503 with Retry-After. It is also how long a token revoked during an outage may "
                    "still be admitted: 5 minutes covers a restart or a short failover. 0: only the usual "
                    "10 s cache of answers (docs/security.md).")
    batch_scheduling: bool = Field(
        True, description="Run the gateway under Linux's SCHED_BATCH policy: when it wakes on a core where a replica "
                          "is predicting, it waits for the replica's time slice instead of preempting it, and then "
                          "forwards everything that arrived meanwhile at once. On a shared core this costs far less "
                          "than interrupting the model per request (docs/benchmarks.md); idle cores still pick the "
                          "gateway up at once. No effect on other systems.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that Prometheus must send to scrape the gateway's /metrics "
                          "(PIER_GATEWAY__METRICS_TOKEN; 401 without it). Unset: /metrics is public to whoever reaches "
                          "the gateway's port, and it names every project's deployments and their traffic: set it "
                          "when the gateway is reachable beyond the operators (docs/security.md).")


class LimitSettings(BaseModel):
    """The limits that bound a single request on the gateway and on every model server (docs/security.md).
    Body sizes are set where they vary: per deployment (``limits.maxBodyBytes``) and ``pier serve
    --max-body-bytes``."""

    model_config = ConfigDict(extra="forbid")

    max_request_elements: int = Field(
        16 * 1024 * 1024, ge=1, le=2**40,
        description="Most tensor elements one inference request may declare, all inputs together "
                    "(PIER_LIMITS__MAX_REQUEST_ELEMENTS); checked against the declared shapes before anything is "
                    "allocated, 413 above. 16 Mi: a batch of 64 images of 3x224x224 is 9.6 Mi, and the largest "
                    "tensor then costs 128 MiB as FP64.")
    max_headers: int = Field(
        100, ge=8, le=10_000,
        description="Most header lines in one request (431 above), on the gateway and model servers. Clients send "
                    "10 to 20; 100 is what most HTTP servers allow.")
    head_timeout_s: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds a client has to send a request's line and headers once it began (408 and close "
                    "after), however slowly it trickles them in.")
    body_timeout_s: float = Field(
        300.0, gt=0, le=86_400,
        description="Seconds a client has to send a whole request body once its headers are in (408 and close "
                    "after). 5 minutes carries 64 MiB at under 2 Mbit/s.")


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: SecretStr | None = Field(
        None, description="Key of the HMAC-SHA256 that stores API tokens (PIER_AUTH__SECRET). Unset: a random "
                          "one is generated once into $PIER_HOME/secret (mode 0600). Set it when several "
                          "control-plane replicas share one database; changing it invalidates every token.")


class KubernetesSettings(BaseModel):
    """The Kubernetes backend (``backends/kubernetes/backend.py``): replicas as pods on a cluster."""

    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(
        None, description="Kubeconfig file the control plane talks to the cluster with "
                          "(PIER_KUBERNETES__KUBECONFIG). Unset: the pod's service account when running in a "
                          "cluster, else KUBECONFIG or ~/.kube/config, as kubectl does.")
    namespace: str | None = Field(
        None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace every replica pod goes to, watched alone (least privilege: a Role, not a "
                          "ClusterRole). Unset: each project's pods go to the namespace named after the project "
                          "(a project is a namespace), watched cluster-wide.")
    create_namespaces: bool = Field(
        True, description="With per-project namespaces, create a project's namespace (labelled for PodSecurity "
                          "`restricted`) before its first pod when it does not exist; off when an administrator "
                          "makes namespaces (the control plane then needs no cluster-wide write).")
    image: str | None = Field(
        None, description="The platform image model pods run (`pier models pull` in the init container, `pier serve` "
                          "in the server) unless a predictor names its own `image`. Unset: this release's, "
                          "ghcr.io/modelpier/modelpier:VERSION, so pods run the control plane's own version; pin "
                          "it by digest in production.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of model pods; IfNotPresent suits images pinned by digest.")
    image_pull_secrets: tuple[str, ...] = Field(
        (), description="Secrets (in the pods' namespace) holding credentials of private "
                                          "image registries, as a pod's imagePullSecrets.")
    registry_url: str = Field(
        "http://modelpier-control.modelpier-system.svc:8600",
        description="The control-plane URL model pods pull models from (`pier models pull --remote`); the "
                    "in-cluster Service of the platform install by default. Pods have no cluster DNS on some "
                    "test clusters: give an address there.")
    registry_token_secret: str = Field(
        "modelpier-registry-token",  # the name of a Secret, not a secret
        description="Secret (in the pods' namespace) whose `token` key the pull sends as PIER_TOKEN; optional, so "
                    "a registry without authentication needs none.")
    service_account: str | None = Field(
        None, description="Service account model pods run as; unset: the namespace's default. Its token is "
                          "never mounted (a model server does not call the Kubernetes API).")
    ready_probe_period_s: int = Field(
        2, ge=1, le=300, description="Seconds between the kubelet's readiness probes of /v2/health/ready; with "
                                     "the watch, bounds how late a pod is seen ready or unready. 2 s is quick "
                                     "and costs a model server one cheap request.")
    ready_probe_failures: int = Field(
        3, ge=1, le=100, description="Failed readiness probes in a row before a pod leaves the routing table "
                                     "(rides out one slow answer).")
    extra_drain_s: float = Field(
        15.0, ge=0, le=3600, description="Seconds added to platform.stop_grace_s for a pod's "
                                         "terminationGracePeriodSeconds, so the server finishes its drain and "
                                         "exits before the kubelet's SIGKILL.")
    startup_sync_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Seconds the first observe waits for the initial list of pods; past it "
                                        "observing fails (and the reconcile pass is retried).")
    watch_timeout_s: int = Field(
        300, ge=10, le=3600, description="Seconds one watch request lasts before it is renewed from its "
                                         "resourceVersion (the API server ends watches anyway; 5 minutes is "
                                         "client-go's order of magnitude).")
    log_level: str = Field("info", description="PIER_LOG_LEVEL of model pods.")


class Settings(BaseSettings):
    """All settings. ``home`` anchors the embedded defaults (SQLite file, blob folder, cache)."""

    model_config = SettingsConfigDict(
        env_prefix="PIER_", env_nested_delimiter="__", extra="forbid", validate_default=True,
        # `PIER_TOKEN= pier ...` means "no token from the environment", not "an empty token".
        env_ignore_empty=True)

    home: Path = Field(default_factory=default_home,
                       description="Root folder for embedded state (PIER_HOME, default ~/.modelpier).")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata database; default sqlite:///$PIER_HOME/pier.db. "
                          "Use postgresql+psycopg://user@host:port/db for PostgreSQL.")
    blob_url: str | None = Field(
        None, description="Where artifacts live: a folder path/file:// URL (default $PIER_HOME/blobs) or "
                          "s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible server (MinIO, moto); unset: AWS's own.")
    remote: str | None = Field(None, description="Default remote control-plane URL for push/pull.")
    user: str = Field(default_factory=lambda: os.environ.get("USER", "unknown"),
                      description="Who is recorded in lineage when saving a model.")
    log_level: str = Field("info", description="Log level of every process (debug, info, warning or error); "
                           "info logs start-ups, rollouts and failures, not every request.")
    token: SecretStr | None = Field(
        None, description="API token the CLI sends to the control plane (PIER_TOKEN); `pier login` and "
                          "`pier up` store it in the config file.")
    project: str | None = Field(
        None, description="Project whose registry the CLI's remote model commands use (PIER_PROJECT); "
                          "unset: the default project, /api/v1/models.")
    admin_token: SecretStr | None = Field(
        None, description="Token of the platform admin (PIER_ADMIN_TOKEN), accepted by the control plane "
                          "from its first start; unset, the first start mints one and prints it once.")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    control: ControlPlaneSettings = Field(default_factory=ControlPlaneSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    bench: BenchSettings = Field(default_factory=BenchSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'pier.db'}"

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or str(self.home / "blobs")

    @property
    def resolved_cache_dir(self) -> Path:
        return self.registry.cache_dir or self.home / "cache"

    @property
    def resolved_environments_dir(self) -> Path:
        return self.registry.environments_dir or self.home / "envs"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))


@dataclass(frozen=True, slots=True)
class SettingField:
    """One leaf of the settings tree: ``serve.workers``, read from ``PIER_SERVE__WORKERS``."""

    path: str
    env_var: str
    info: FieldInfo


def setting_fields(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[SettingField]:
    """Every leaf setting, depth first in declaration order: what `pier config show` lists and
    docs/configuration.md tabulates (``make generate``)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            yield from setting_fields(section, f"{path}.")
        else:
            yield SettingField(path, "PIER_" + path.upper().replace(".", "__"), info)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the optional config file (YAML or TOML)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file_path()
        if path is None:
            return {}
        return read_config_file(path)


def config_file_path() -> Path | None:
    explicit = os.environ.get("PIER_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InvalidSpec(f"config file {path} (from PIER_CONFIG) does not exist")
        return path
    path = default_home() / "config.yaml"
    return path if path.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InvalidSpec(f"config file {path} is not valid: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidSpec(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; validation errors become ``InvalidSpec`` naming the field."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise InvalidSpec(f"invalid settings: {problems}") from exc
