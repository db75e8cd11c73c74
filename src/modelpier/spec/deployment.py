"""The ``ModelDeployment`` schema: desired state of one endpoint, and its observed status.

One set of pydantic models is the API body, the YAML ``pier deploy -f`` applies, the reconciler's
input and (later) the Kubernetes CRD's schema. Field names are camelCase on the wire (as in
Kubernetes objects) and snake_case in Python. ``*Spec`` is desired state, ``*Status`` observed;
they are never mixed. Validation errors name the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from modelpier.errors import InvalidSpec, PierError
from modelpier.settings import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS
from modelpier.spec.names import ModelRef, validate_name

API_VERSION: Final = "modelpier.io/v1alpha1"
KIND: Final = "ModelDeployment"
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024  # limits.maxBodyBytes

_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_OUTPUT = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")


def _valid_name(value: str, what: str) -> str:
    try:
        return validate_name(value, what=what)
    except PierError as exc:
        raise ValueError(exc.message) from None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class Resources(_Spec):
    cpu: str = Field("1", description="CPU per replica, Kubernetes quantity: '1', '0.5' or '500m'.")
    memory: str = Field("1Gi", description="Memory per replica, Kubernetes quantity: '512Mi', '1Gi'.")
    gpu: int = Field(0, ge=0, le=16, description="GPUs per replica (nvidia.com/gpu on Kubernetes).")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        if not _CPU.match(value):
            raise ValueError(f"cpu {value!r} is not a quantity like '1', '0.5' or '500m'")
        return value

    @property
    def whole_cpus(self) -> int:
        """Whole cores in ``cpu`` (``2.5`` -> 2, ``500m`` -> 0)."""
        if self.cpu.endswith("m"):
            return int(self.cpu[:-1]) // 1000
        return int(float(self.cpu))

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError(f"memory {value!r} is not a quantity like '512Mi' or '1Gi'")
        return value


# Its defaults are a bare `pier serve`'s (settings.py says why those values), so replicas batch alike.
class Batching(_Spec):
    """Adaptive batching. On by default: a lone request is flushed at once (measured: no cost at one
    connection, see docs/benchmarks.md), and concurrent ones share a model call. Turn it off for a model
    whose answer for one row depends on the other rows of the call."""

    enabled: bool = Field(True, description="Merge concurrent requests into one predict call.")
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, le=4096, description="Most rows in one merged batch.")
    max_latency_ms: float = Field(DEFAULT_MAX_LATENCY_MS, ge=0, le=10_000,
                                  description="Longest a request waits for others to join its batch (ms).")


class Autoscaling(_Spec):
    min_replicas: int = Field(1, ge=0, le=100, description="0 allows scale-to-zero.")
    max_replicas: int = Field(4, ge=1, le=100)
    target_in_flight: float = Field(8, gt=0, description="Wanted in-flight requests per replica.")
    stabilization_seconds: float = Field(30, ge=0, le=3600,
                                         description="Scale down only after this long below target.")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})")
        return self


class PredictorSpec(_Spec):
    name: str = Field("main", description="Predictor name, unique in the deployment (DNS-1123 label).")
    model: str | None = Field(None, description="Model reference: name, name:3 or name:alias.")
    bundle: str | None = Field(None, description="Reserved for bundles of custom code (issue 18); no "
                                "backend deploys one yet, so applying a predictor with `bundle` is refused (422).")
    follow_alias: bool = Field(False, description="When `model` names an alias, roll out whenever the alias "
                                                  "moves to another version.")
    image: str | None = Field(
        None, min_length=1, max_length=512, pattern=r"^[^\s]+$",
        description="Kubernetes only: a container image that already holds the model or bundle (model-in-image), "
                    "best by digest as `pier build image` prints it (REGISTRY/REPO@sha256:...); its entrypoint "
                    "serves V2 on port 8080 and, for a model, takes `pier serve` options as arguments. Without "
                    "it, the modelpier server image pulls `model` from the registry when the pod starts.")
    replicas: int = Field(1, ge=0, le=100, description="Replica count; ignored when autoscaling is set.")
    resources: Resources = Field(default_factory=Resources)
    batching: Batching = Field(default_factory=Batching,
                               description="Adaptive batching; on unless `enabled: false`.")
    autoscaling: Autoscaling | None = None
    weight: int = Field(100, ge=0, le=100, description="Share of traffic in percent.")
    workers: int | None = Field(
        None, ge=1, le=64,
        description="Server processes per replica, sharing its port. Absent: one per whole core of "
                    "resources.cpu (at least 1), so a replica given 4 CPUs uses them.")
    outputs: tuple[str, ...] | None = Field(
        None, min_length=1, max_length=64,
        description="Outputs a request that names none gets, and the only ones computed for it (e.g. "
                    "[predict]: a scikit-learn classifier then skips predict_proba). A request may still "
                    "name any output of the model. Absent: every output.")
    isolated: bool = Field(
        False, description="Run replicas in a virtualenv built with uv from the model version's environment lock "
                           "(cached by lock and shared by every replica needing it), instead of the platform's "
                           "own environment. A lock that cannot be installed fails the rollout.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name(value, "predictor name")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ModelRef.parse(value)
            except PierError as exc:
                raise ValueError(exc.message) from None  # pydantic attaches the field's location
        return value

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for name in value:
            if not _OUTPUT.match(name):
                raise ValueError(f"output name {name!r} is not a tensor name (1-128 letters, digits, '_.:/-')")
        if len(set(value)) != len(value):
            raise ValueError(f"outputs {list(value)} name an output twice")
        return value

    @model_validator(mode="after")
    def _source(self) -> PredictorSpec:
        if (self.model is None) == (self.bundle is None):
            raise ValueError(f"predictor {self.name!r}: set exactly one of model or bundle")
        if self.follow_alias and (self.model is None or ModelRef.parse(self.model).alias is None):
            raise ValueError(f"predictor {self.name!r}: followAlias needs a model reference with an alias, "
                             f"like iris:production")
        return self

    @property
    def worker_count(self) -> int:
        """``workers``, or one process per whole core the replica is given (why this rather than more
        replicas: docs/deployments.md, "More than one core")."""
        if self.workers is not None:
            return self.workers
        return max(1, min(64, self.resources.whole_cpus))

    @property
    def model_ref(self) -> ModelRef | None:
        return ModelRef.parse(self.model) if self.model else None


class RouteMatch(_Spec):
    headers: dict[str, str] = Field(default_factory=dict, description="Header name → exact value; all must match.")


class Route(_Spec):
    match: RouteMatch
    predictor: str


class Shadow(_Spec):
    predictor: str
    percent: int = Field(100, ge=0, le=100, description="Share of requests mirrored to the shadow.")
    log: bool = Field(False, description="Also write each primary/shadow pair to the prediction log "
                                         "(needs predictionLog).")


class Sticky(_Spec):
    header: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$",
                        description="Request header whose value keeps a caller on one predictor (e.g. x-user-id): "
                                    "the same value picks the same predictor while the weights stay the same.")


class Cache(_Spec):
    ttl_seconds: float = Field(60, gt=0, le=86_400, description="How long an answer is reused (s).")
    max_entries: int = Field(10_000, ge=1, le=10_000_000, description="Most answers kept (least recently used go).")


class Limits(_Spec):
    max_in_flight: int | None = Field(
        None, ge=1, le=100_000, description="Most requests the gateway forwards to this deployment at once; more "
                                            "are refused with 503 and Retry-After (circuit breaking) rather than "
                                            "queued. Unlimited when absent.")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, le=2**31, description="Largest request body (413 above).")


class PredictionLog(_Spec):
    sample_rate: float = Field(1.0, ge=0, le=1, description="Share of requests logged, 0..1.")
    sink: Literal["jsonl", "sqlite"] = Field("jsonl", description="A JSON-lines file or an SQLite database under "
                                                                 "the gateway's PIER_HOME/predictions.")


class CanaryAnalysis(_Spec):
    """Thresholds of ``pier rollout canary``: each step compares the canary with the stable predictor."""

    max_error_rate_increase: float = Field(
        0.01, ge=0, le=1, description="Canary error rate may exceed the stable one by at most this (0.01 = 1 point).")
    max_latency_ratio: float = Field(1.5, ge=1, le=100, description="Canary p99 may be at most this times the "
                                                                     "stable p99.")
    min_requests: int = Field(20, ge=1, le=1_000_000, description="Fewer canary requests in an interval than "
                                                                  "this: the step is judged inconclusive and held.")


class Timeouts(_Spec):
    request_seconds: float = Field(30, gt=0, le=3600, description="Per-request timeout at the gateway (504).")


class Auth(_Spec):
    mode: Literal["public", "token"] = "public"


class RolloutStrategy(_Spec):
    max_surge: int = Field(1, ge=0, le=100, description="Replicas above the desired count during a rollout.")
    max_unavailable: int = Field(0, ge=0, le=100, description="Replicas below the desired count during a rollout.")
    ready_timeout_seconds: float = Field(
        120, gt=0, description="A new revision not ready by then is rolled back automatically.")

    @model_validator(mode="after")
    def _progress(self) -> RolloutStrategy:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("maxSurge and maxUnavailable cannot both be 0: the rollout could never progress")
        return self


class ModelDeploymentSpec(_Spec):
    predictors: list[PredictorSpec] = Field(min_length=1, max_length=16)
    routes: list[Route] = Field(default_factory=list, description="Checked in order before weights.")
    shadow: Shadow | None = None
    sticky: Sticky | None = Field(None, description="Keep each caller on one predictor, by a header value.")
    cache: Cache | None = Field(None, description="Prediction cache at the gateway; off when absent.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    prediction_log: PredictionLog | None = Field(None, description="Log sampled requests and answers; off when absent.")
    canary: CanaryAnalysis = Field(default_factory=CanaryAnalysis)
    auth: Auth = Field(default_factory=Auth)
    rollout: RolloutStrategy = Field(default_factory=RolloutStrategy)

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeploymentSpec:
        names = [p.name for p in self.predictors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"predictors[*].name must be unique, repeated: {dupes}")
        if self.shadow is not None and self.shadow.predictor not in names:
            raise ValueError(f"shadow.predictor {self.shadow.predictor!r} is not one of the predictors {names}")
        if self.shadow is not None and self.shadow.log and self.prediction_log is None:
            raise ValueError("shadow.log needs predictionLog: set predictionLog (e.g. {sampleRate: 1}) to say where")
        for i, route in enumerate(self.routes):
            if route.predictor not in names:
                raise ValueError(f"routes[{i}].predictor {route.predictor!r} is not one of the predictors {names}")
        serving = [p for p in self.predictors if self.shadow is None or p.name != self.shadow.predictor]
        if not serving:
            raise ValueError("predictors: every predictor is the shadow; at least one must serve traffic")
        # The shadow only receives copies, so its weight is not part of the split.
        if sum(p.weight for p in serving) != 100:
            weights = ", ".join(f"{p.name}={p.weight}" for p in serving)
            raise ValueError(f"predictors[*].weight must add up to 100, got {weights}")
        return self

    def predictor(self, name: str) -> PredictorSpec:
        return next(p for p in self.predictors if p.name == name)


class ObjectMeta(_Spec):
    name: str = Field(description="Deployment name, unique in its project (DNS-1123 label); part of the URL.")
    project: str | None = Field(
        None, description="The project (tenant) the deployment belongs to. When absent, the project it is "
                          "applied to (the URL, `pier deploy --project`, else `default`).")
    namespace: str | None = Field(
        None, description="The Kubernetes spelling of `project` (on Kubernetes the namespace is the project), so "
                          "one file serves `kubectl apply` and `pier deploy`. Read into `project`: always None "
                          "after parsing.")

    @model_validator(mode="before")
    @classmethod
    def _namespace_is_project(cls, data: Any) -> Any:
        """``namespace`` and ``project`` are one thing: both may be given only when they agree."""
        if not isinstance(data, dict) or data.get("namespace") is None:
            return data
        data = dict(data)
        namespace = data.pop("namespace")
        project = data.get("project")
        if project is not None and project != namespace:
            raise ValueError(f"metadata.namespace {namespace!r} and metadata.project {project!r} differ; they are "
                             "the same thing (the namespace is the project): give one, or the same value")
        data["project"] = namespace
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name(value, "deployment name")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        return None if value is None else _valid_name(value, "project name")


class ModelDeployment(_Spec):
    """The document users write (``pier deploy -f iris.yaml``)."""

    api_version: Literal["modelpier.io/v1alpha1"] = API_VERSION
    kind: Literal["ModelDeployment"] = KIND
    metadata: ObjectMeta
    spec: ModelDeploymentSpec


# -- observed state -------------------------------------------------------------------------------

ConditionType = Literal["Ready", "Progressing", "Degraded"]


class Condition(_Spec):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase machine-readable reason, e.g. ReplicasReady, RolloutFailed.")
    message: str = ""
    last_transition_time: datetime


class PredictorStatus(_Spec):
    name: str
    model_version: str | None = Field(None, description="The version serving, e.g. iris:3.")
    ready_replicas: int = 0
    desired_replicas: int = 0
    weight: int = 0


class ModelDeploymentStatus(_Spec):
    observed_revision: int | None = Field(None, description="Revision the backend serves.")
    desired_revision: int | None = Field(None, description="Newest revision of the spec.")
    conditions: list[Condition] = Field(default_factory=list)
    ready_replicas: int = 0
    desired_replicas: int = 0
    url: str | None = None
    predictors: list[PredictorStatus] = Field(default_factory=list)

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


def deployment_json_schema() -> dict[str, Any]:
    """The JSON schema of the document users write, by wire (camelCase) names."""
    return ModelDeployment.model_json_schema(by_alias=True, mode="validation")


def format_validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """``[{"field": "spec.predictors.0.model", "message": ...}]``: each problem with its wire path."""
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "(document)"
        message = str(err.get("msg", "invalid"))
        # pydantic prefixes our validators' messages; the field path already says where it is.
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append({"field": field, "message": message})
    return problems


def invalid_spec(exc: ValidationError, what: str) -> InvalidSpec:
    """An ``InvalidSpec`` whose message lists every problem as ``field.path: message``."""
    problems = format_validation_errors(exc)
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidSpec(f"invalid {what}: {listed}", details={"errors": problems})


def parse_deployment(data: Any) -> ModelDeployment:
    """Validate a decoded document (JSON or YAML) as a ``ModelDeployment``; ``InvalidSpec`` names each field."""
    if not isinstance(data, dict):
        raise InvalidSpec(f"a ModelDeployment document must be a mapping, not {type(data).__name__}")
    try:
        return ModelDeployment.model_validate(data)
    except ValidationError as exc:
        raise invalid_spec(exc, "ModelDeployment") from None


def parse_deployment_spec(data: Any) -> ModelDeploymentSpec:
    """Validate a decoded ``spec`` mapping; ``InvalidSpec`` names each field."""
    try:
        return ModelDeploymentSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid_spec(exc, "ModelDeployment spec") from None
