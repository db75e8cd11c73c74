"""``ServerConfig``: everything one ``pier serve`` process needs, built from CLI options.

Plain frozen dataclasses (no I/O, no environment): the CLI builds one, ``build_server`` consumes it,
tests construct it directly. Per-model options override the server-wide defaults by model name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from modelpier.errors import InvalidSpec
from modelpier.spec.deployment import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS

DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Adaptive batching of one model.

    ``max_latency_ms`` bounds how long a request may wait for others to join its batch; the batcher
    usually waits far less (see ``batching/policy.py``). ``max_batch_size`` counts rows (the sum of
    the requests' first dimensions), not requests.
    """

    enabled: bool = True
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise InvalidSpec(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_latency_ms < 0:
            raise InvalidSpec(f"max_latency_ms must be >= 0, got {self.max_latency_ms}")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Serving options of one model (the server's defaults where not overridden)."""

    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_queue: int = 1024
    # The outputs a request that names none gets, and the only ones computed for it (sklearn then
    # skips predict_proba); () = every output. A request may still ask for any output by name.
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_queue < 1:
            raise InvalidSpec(f"max_queue must be >= 1, got {self.max_queue}")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model to serve: a registry reference (``iris:3``) or a plain path, and its served name."""

    ref: str
    name: str | None = None  # None: the registry model's name, or the file's stem

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        """``REF`` or ``NAME=REF``."""
        name, sep, ref = text.partition("=")
        if sep and name and ref and "/" not in name:
            return cls(ref=ref, name=name)
        return cls(ref=text)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    models: tuple[ModelSource, ...]
    host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int | None = DEFAULT_GRPC_PORT  # None: no gRPC server
    workers: int = 1
    max_body_bytes: int = 16 * 1024 * 1024
    request_timeout_s: float = 30.0
    shutdown_grace_s: float = 30.0
    # A batch whose predicted cost is below this runs on the event loop: a thread hop costs more
    # than a microsecond-scale model call. Above it, predictions run in a worker thread.
    inline_predict_us: float = 1000.0
    defaults: ModelOptions = field(default_factory=ModelOptions)
    per_model: dict[str, ModelOptions] = field(default_factory=dict)
    log_level: str = "info"
    access_log: bool = False
    # The limits that bound a single request (settings.LimitSettings, docs/security.md).
    max_request_elements: int = 16 * 1024 * 1024
    max_headers: int = 100
    head_timeout_s: float = 30.0
    body_timeout_s: float = 300.0
    # The V2 model repository extension (index, load, unload over HTTP): off unless asked, since it
    # lets any caller that reaches the port take models out of service.
    repository_api: bool = False

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidSpec("give at least one model to serve")
        if self.workers < 1:
            raise InvalidSpec(f"workers must be >= 1, got {self.workers}")
        if self.max_body_bytes < 1024:
            raise InvalidSpec(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.request_timeout_s <= 0:
            raise InvalidSpec(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.max_request_elements < 1:
            raise InvalidSpec(f"max_request_elements must be >= 1, got {self.max_request_elements}")
        if self.max_headers < 8:
            raise InvalidSpec(f"max_headers must be >= 8, got {self.max_headers}")
        if self.head_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise InvalidSpec("head_timeout_s and body_timeout_s must be > 0")

    def options_for(self, name: str) -> ModelOptions:
        return self.per_model.get(name, self.defaults)


_BOOL = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


def apply_model_option(options: ModelOptions, key: str, value: str) -> ModelOptions:
    """One ``KEY=VALUE`` override (from ``--model-option NAME:KEY=VALUE``) applied to ``options``."""
    b = options.batching
    try:
        if key == "batching":
            if value.lower() not in _BOOL:
                raise ValueError(value)
            return replace(options, batching=replace(b, enabled=_BOOL[value.lower()]))
        if key == "max_batch_size":
            return replace(options, batching=replace(b, max_batch_size=int(value)))
        if key == "max_latency_ms":
            return replace(options, batching=replace(b, max_latency_ms=float(value)))
        if key == "max_queue":
            return replace(options, max_queue=int(value))
        if key == "outputs":
            return replace(options, outputs=tuple(v for v in value.split(",") if v))
    except ValueError:
        raise InvalidSpec(f"model option {key}={value!r}: not a valid value") from None
    raise InvalidSpec(
        f"unknown model option {key!r}; use batching, max_batch_size, max_latency_ms, max_queue or outputs")
