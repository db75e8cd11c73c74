"""``pier serve REF...``: run the model server on one or more models.

Registered in ``cli/main.py`` as ``app.command("serve")(serve)``; also runnable without the CLI
as ``python -m modelpier.server``. Every option defaults to its setting (``serve.*``, ``limits.*``,
``log_level``): the flags that were given override those settings (``resolve_settings``), and the
``ServerConfig`` they describe goes to the server's composition root (one process) or to the worker
supervisor (several). With ``--isolated`` it first replaces itself with the same command run in the
models' locked environment (``cli/isolation.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from modelpier.backends.local.environments import ISOLATED_ENV_VAR
from modelpier.errors import InvalidSpec
from modelpier.server.config import ModelSource, ServerConfig, server_config
from modelpier.settings import LimitSettings, ServeSettings, Settings, load_settings

_Section = TypeVar("_Section", bound=BaseModel)
# The defaults each option's help names: the settings' own (no environment read), never a copy.
_DEFAULTS: dict[str, BaseModel] = {"serve": ServeSettings(), "limits": LimitSettings()}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value) or "all"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option(setting: str, help: str, *names: str, **kwargs: Any) -> Any:
    """A flag that overrides ``setting`` for one run: not given (None), the setting applies. Its help ends
    with the setting, its variable and its default."""
    section, _, name = setting.rpartition(".")
    default = getattr(_DEFAULTS[section], name) if section else Settings.model_fields[name].default
    variable = "PIER_" + setting.upper().replace(".", "__")
    return typer.Option(None, *names, help=f"{help} Default: {setting} ({variable}), {_shown(default)}.", **kwargs)


def _model_options(items: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    per_model: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        name, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not (sep and eq and name and key):
            raise InvalidSpec(f"--model-option {item!r}: expected NAME:KEY=VALUE, e.g. iris:max_batch_size=32")
        per_model.setdefault(name, []).append((key, value))
    return per_model


def _override(section: _Section, flags: Mapping[str, Any]) -> _Section:
    """``section`` with every flag that was given (not None) and names one of its fields."""
    chosen = {k: v for k, v in flags.items() if v is not None and k in type(section).model_fields}
    if not chosen:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **chosen})
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidSpec(problems) from exc


def resolve_settings(settings: Settings, flags: Mapping[str, Any]) -> Settings:
    """``settings`` with the flags that were given (not None) over ``serve.*``, ``limits.*`` and
    ``log_level``: flags override settings, they do not define them. Flags are named as the fields."""
    unknown = set(flags) - set(ServeSettings.model_fields) - set(LimitSettings.model_fields) - {"log_level"}
    if unknown:
        raise ValueError(f"flags without a setting: {sorted(unknown)}")  # a programming error, not the user's
    return settings.model_copy(update={
        "serve": _override(settings.serve, flags), "limits": _override(settings.limits, flags),
        "log_level": flags.get("log_level") or settings.log_level})


def resolve_config(settings: Settings, refs: Sequence[str], model_options: Sequence[str] = ()) -> ServerConfig:
    """What ``pier serve REFS --model-option ...`` runs under ``settings`` (``resolve_settings``'s)."""
    return server_config(tuple(ModelSource.parse(r) for r in refs), settings.serve, settings.limits,
                         log_level=settings.log_level, model_options=_model_options(model_options))


def _settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root().obj
    settings = getattr(root, "settings", None)
    return settings if isinstance(settings, Settings) else load_settings()


def serve(
    ctx: typer.Context,
    refs: list[str] = typer.Argument(
        ..., metavar="MODEL...",
        help="Models to serve: a registry reference (iris, iris:3, iris:production), or a plain file or "
             "folder (./model.joblib, ./model.onnx, an MLflow folder). Prefix NAME= to choose the name "
             "clients use in URLs (default: the registry name, or the file's stem)."),
    host: str | None = _option("serve.host", "Interface to bind both ports on (0.0.0.0 for every one)."),
    http_port: int | None = _option("serve.http_port", "TCP port for HTTP: V2 REST, KServe V1, Seldon, /metrics, "
                                    "/docs.", "--http-port", "-p", min=0, max=65535),
    grpc_port: int | None = _option("serve.grpc_port", "TCP port for the V2 gRPC service.", min=0, max=65535),
    grpc: bool | None = _option("serve.grpc", "Start the gRPC server.", "--grpc/--no-grpc"),
    workers: int | None = _option("serve.workers", "Server processes sharing the ports (SO_REUSEPORT), each "
                                  "loading every model; 0 = one per CPU core. Metrics are per process.", min=0),
    batching: bool | None = _option("serve.batching", "Adaptive batching for every model (per model: "
                                    "--model-option).", "--batching/--no-batching"),
    max_batch_size: int | None = _option("serve.max_batch_size", "Most rows merged into one model call.", min=1),
    max_latency_ms: float | None = _option(
        "serve.max_latency_ms", "Longest a request waits for others to join its batch, in milliseconds; the "
        "batcher waits less when the model is fast or traffic is sparse.", min=0),
    max_queue: int | None = _option("serve.max_queue", "Requests waiting per model before answering 503 with "
                                    "Retry-After.", min=1),
    outputs: str | None = _option(
        "serve.outputs", "Default outputs of every model: what a request that names no outputs gets, and the only "
        "ones computed for it (e.g. predict: scikit-learn skips predict_proba). Requests may still name any "
        "output.", metavar="NAME,..."),
    model_option: list[str] = typer.Option(
        [], "--model-option", metavar="NAME:KEY=VALUE",
        help="Per-model override, repeatable. Keys: batching (on/off), max_batch_size (rows), "
             "max_latency_ms, max_queue (requests), outputs (comma-separated default outputs, as --outputs)."),
    max_body_bytes: int | None = _option("serve.max_body_bytes", "Largest request body in bytes (413 above; "
                                         "gRPC: RESOURCE_EXHAUSTED).", min=1024),
    timeout_s: float | None = _option("serve.timeout_s", "Per-request timeout in seconds, queueing included "
                                      "(504 after).", "--timeout-s", min=0.001),
    inline_predict_us: float | None = _option(
        "serve.inline_predict_us", "Predictions estimated to take less than this many microseconds run on the "
        "event loop (a thread hop costs more); longer ones run in a thread. 0 = always a thread.", min=0),
    shutdown_grace_s: float | None = _option("serve.shutdown_grace_s", "On SIGTERM, seconds to let in-flight "
                                             "requests finish before closing.", min=0),
    max_request_elements: int | None = _option(
        "limits.max_request_elements", "Most tensor elements one request may declare, all inputs together; "
        "checked against the declared shapes before anything is allocated (413 above).", min=1),
    max_headers: int | None = _option("limits.max_headers", "Most header lines in one request (431 above).", min=8),
    head_timeout_s: float | None = _option("limits.head_timeout_s", "Seconds a client has to send a request's "
                                           "line and headers (408 and close after).", min=0.001),
    body_timeout_s: float | None = _option("limits.body_timeout_s", "Seconds a client has to send a request's "
                                           "body once its headers are in (408 and close after).", min=0.001),
    log_level: str | None = _option("log_level", "debug, info, warning or error."),
    access_log: bool | None = _option("serve.access_log", "Log every HTTP request (costs throughput).",
                                      "--access-log/--no-access-log"),
    repository_api: bool | None = _option(
        "serve.repository_api", "Serve the V2 model repository extension: POST /v2/repository/index and "
        "/v2/repository/models/NAME/load|unload over the models given here.", "--repository-api/--no-repository-api"),
    isolated: bool | None = _option(
        "serve.isolated", "Run in a virtualenv built with uv from the models' environment lock (cached under "
        "PIER_HOME/envs by lock; every model served together must share one lock).", "--isolated/--no-isolated"),
) -> None:
    """Serve models over Open Inference Protocol V2 (REST and gRPC), KServe V1, Seldon Core v1 and
    MLflow's scoring protocol (/invocations). Every option defaults to its setting (PIER_SERVE__*,
    PIER_LIMITS__*; `pier config show`)."""
    from modelpier.server.app import build_server
    from modelpier.server.workers import run_workers

    flags = {"host": host, "http_port": http_port, "grpc_port": grpc_port, "grpc": grpc, "workers": workers,
             "batching": batching, "max_batch_size": max_batch_size, "max_latency_ms": max_latency_ms,
             "max_queue": max_queue, "outputs": outputs, "max_body_bytes": max_body_bytes, "timeout_s": timeout_s,
             "inline_predict_us": inline_predict_us, "shutdown_grace_s": shutdown_grace_s,
             "max_request_elements": max_request_elements, "max_headers": max_headers,
             "head_timeout_s": head_timeout_s, "body_timeout_s": body_timeout_s, "log_level": log_level,
             "access_log": access_log, "repository_api": repository_api, "isolated": isolated}
    settings = resolve_settings(_settings(ctx), flags)
    config = resolve_config(settings, refs, model_option)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.serve.isolated and ISOLATED_ENV_VAR not in os.environ:
        from modelpier.cli.isolation import exec_isolated

        exec_isolated(settings, [m.ref for m in config.models])
    code = run_workers(config, settings) if config.workers > 1 else build_server(config, settings).run()
    if code:
        raise typer.Exit(code)
