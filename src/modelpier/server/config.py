"""``ServerConfig``: everything one ``pier serve`` process needs, built from its settings.

Plain frozen dataclasses (no I/O, no environment): the CLI resolves its flags over the settings
(``serve.*``, ``limits.*``) and builds one with ``server_config``, ``build_server`` consumes it, tests
construct it directly. Every default is the setting's default (``settings.ServeSettings``,
``settings.LimitSettings``), never a second copy. Per-model options override the server-wide defaults
by model name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from modelpier.errors import InvalidSpec
from modelpier.settings import LimitSettings, ServeSettings, Settings

# The defaults of the settings (pydantic models, no environment read): the dataclasses' defaults.
_SERVE = ServeSettings()
_LIMITS = LimitSettings()


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Adaptive batching of one model.

    ``max_latency_ms`` bounds how long a request may wait for others to join its batch; the batcher
    usually waits far less (see ``batching/policy.py``). ``max_batch_size`` counts rows (the sum of
    the requests' first dimensions), not requests.
    """

    enabled: bool = _SERVE.batching
    max_batch_size: int = _SERVE.max_batch_size
    max_latency_ms: float = _SERVE.max_latency_ms

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise InvalidSpec(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_latency_ms < 0:
            raise InvalidSpec(f"max_latency_ms must be >= 0, got {self.max_latency_ms}")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Serving options of one model (the server's defaults where not overridden)."""

    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_queue: int = _SERVE.max_queue
    # The outputs a request that names none gets, and the only ones computed for it (sklearn then
    # skips predict_proba); () = every output. A request may still ask for any output by name.
    outputs: tuple[str, ...] = _SERVE.outputs

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
    host: str = _SERVE.host
    http_port: int = _SERVE.http_port
    grpc_port: int | None = _SERVE.grpc_port  # None: no gRPC server
    workers: int = _SERVE.workers or 1
    max_body_bytes: int = _SERVE.max_body_bytes
    request_timeout_s: float = _SERVE.timeout_s
    shutdown_grace_s: float = _SERVE.shutdown_grace_s
    # A batch whose predicted cost is below this runs on the event loop: a thread hop costs more
    # than a microsecond-scale model call. Above it, predictions run in a worker thread.
    inline_predict_us: float = _SERVE.inline_predict_us
    defaults: ModelOptions = field(default_factory=ModelOptions)
    per_model: dict[str, ModelOptions] = field(default_factory=dict)
    log_level: str = Settings.model_fields["log_level"].default
    access_log: bool = _SERVE.access_log
    # The limits that bound a single request (settings.LimitSettings, docs/security.md).
    max_request_elements: int = _LIMITS.max_request_elements
    max_headers: int = _LIMITS.max_headers
    head_timeout_s: float = _LIMITS.head_timeout_s
    body_timeout_s: float = _LIMITS.body_timeout_s
    # The V2 model repository extension (index, load, unload over HTTP): off unless asked, since it
    # lets any caller that reaches the port take models out of service.
    repository_api: bool = _SERVE.repository_api

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


def server_config(models: tuple[ModelSource, ...], serve: ServeSettings, limits: LimitSettings, *,
                  log_level: str, model_options: Mapping[str, list[tuple[str, str]]] | None = None) -> ServerConfig:
    """The server ``serve`` and ``limits`` describe; ``model_options`` maps a model's name to its
    ``KEY=VALUE`` overrides (``--model-option``), applied in order over the server-wide defaults."""
    defaults = ModelOptions(
        batching=BatchingConfig(enabled=serve.batching, max_batch_size=serve.max_batch_size,
                                max_latency_ms=serve.max_latency_ms),
        max_queue=serve.max_queue, outputs=serve.outputs)
    per_model: dict[str, ModelOptions] = {}
    for name, assignments in (model_options or {}).items():
        options = defaults
        for key, value in assignments:
            options = apply_model_option(options, key, value)
        per_model[name] = options
    return ServerConfig(
        models=models, host=serve.host, http_port=serve.http_port, grpc_port=serve.grpc_port if serve.grpc else None,
        workers=serve.workers or os.cpu_count() or 1, max_body_bytes=serve.max_body_bytes,
        request_timeout_s=serve.timeout_s, shutdown_grace_s=serve.shutdown_grace_s,
        inline_predict_us=serve.inline_predict_us, defaults=defaults, per_model=per_model, log_level=log_level,
        access_log=serve.access_log, max_request_elements=limits.max_request_elements,
        max_headers=limits.max_headers, head_timeout_s=limits.head_timeout_s, body_timeout_s=limits.body_timeout_s,
        repository_api=serve.repository_api)
