"""``pier serve REF...``: run the model server on one or more models.

Registered in ``cli/main.py`` as ``app.command("serve")(serve)``; also runnable without the CLI
as ``python -m modelpier.server``. Builds a ``ServerConfig`` from the options and hands it to the
server's composition root (one process) or to the worker supervisor (several). With ``--isolated``
it first replaces itself with the same command run in the models' locked environment
(``cli/isolation.py``).
"""

from __future__ import annotations

import logging
import os

import typer

from modelpier.backends.local.environments import ISOLATED_ENV_VAR
from modelpier.errors import InvalidSpec
from modelpier.server.config import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    BatchingConfig,
    ModelOptions,
    ModelSource,
    ServerConfig,
    apply_model_option,
)
from modelpier.settings import Settings, load_settings
from modelpier.spec.deployment import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS


def _per_model(defaults: ModelOptions, items: list[str]) -> dict[str, ModelOptions]:
    per_model: dict[str, ModelOptions] = {}
    for item in items:
        name, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not (sep and eq and name and key):
            raise InvalidSpec(f"--model-option {item!r}: expected NAME:KEY=VALUE, e.g. iris:max_batch_size=32")
        per_model[name] = apply_model_option(per_model.get(name, defaults), key, value)
    return per_model


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
    host: str = typer.Option("127.0.0.1", help="Interface to bind both ports on (0.0.0.0 for every one)."),
    http_port: int = typer.Option(DEFAULT_HTTP_PORT, "--http-port", "-p",
                                  help="TCP port for HTTP: V2 REST, KServe V1, Seldon, /metrics, /docs."),
    grpc_port: int = typer.Option(DEFAULT_GRPC_PORT, help="TCP port for the V2 gRPC service."),
    no_grpc: bool = typer.Option(False, "--no-grpc", help="Do not start the gRPC server."),
    workers: int = typer.Option(
        1, min=0, help="Server processes sharing the ports (SO_REUSEPORT), each loading every model; "
                       "0 = one per CPU core. Metrics are per process."),
    batching: bool = typer.Option(True, "--batching/--no-batching",
                                  help="Adaptive batching for every model (per model: --model-option)."),
    max_batch_size: int = typer.Option(DEFAULT_MAX_BATCH_SIZE, min=1, help="Most rows merged into one model call."),
    max_latency_ms: float = typer.Option(
        DEFAULT_MAX_LATENCY_MS, min=0,
        help="Longest a request waits for others to join its batch, in milliseconds; the batcher waits less "
             "when the model is fast or traffic is sparse."),
    max_queue: int = typer.Option(1024, min=1, help="Requests waiting per model before answering 503 "
                                                    "with Retry-After."),
    outputs: str = typer.Option(
        "", metavar="NAME,...", help="Default outputs of every model: what a request that names no outputs "
                                     "gets, and the only ones computed for it (e.g. predict: scikit-learn "
                                     "skips predict_proba). Requests may still name any output. Default: all."),
    model_option: list[str] = typer.Option(
        [], "--model-option", metavar="NAME:KEY=VALUE",
        help="Per-model override, repeatable. Keys: batching (on/off), max_batch_size (rows), "
             "max_latency_ms, max_queue (requests), outputs (comma-separated default outputs, as --outputs)."),
    max_body_bytes: int = typer.Option(16 * 1024 * 1024, min=1024,
                                       help="Largest request body in bytes (413 above; gRPC: "
                                            "RESOURCE_EXHAUSTED)."),
    timeout_s: float = typer.Option(30.0, "--timeout-s", min=0.001,
                                    help="Per-request timeout in seconds, queueing included (504 after)."),
    inline_predict_us: float = typer.Option(
        1000.0, min=0, help="Predictions estimated to take less than this many microseconds run on the event "
                           "loop (a thread hop costs more); longer ones run in a thread. 0 = always a thread."),
    shutdown_grace_s: float = typer.Option(30.0, min=0, help="On SIGTERM, seconds to let in-flight requests "
                                                             "finish before closing."),
    max_request_elements: int | None = typer.Option(
        None, min=1, help="Most tensor elements one request may declare, all inputs together; checked against "
                          "the declared shapes before anything is allocated (413 above). Default: "
                          "PIER_LIMITS__MAX_REQUEST_ELEMENTS (16 Mi)."),
    max_headers: int | None = typer.Option(
        None, min=8, help="Most header lines in one request (431 above). Default: PIER_LIMITS__MAX_HEADERS (100)."),
    head_timeout_s: float | None = typer.Option(
        None, min=0.001, help="Seconds a client has to send a request's line and headers (408 and close after). "
                              "Default: PIER_LIMITS__HEAD_TIMEOUT_S (30)."),
    body_timeout_s: float | None = typer.Option(
        None, min=0.001, help="Seconds a client has to send a request's body once its headers are in (408 and "
                              "close after). Default: PIER_LIMITS__BODY_TIMEOUT_S (300)."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    access_log: bool = typer.Option(False, help="Log every HTTP request (costs throughput)."),
    repository_api: bool = typer.Option(
        None, "--repository-api/--no-repository-api",
        help="Serve the V2 model repository extension: POST /v2/repository/index and "
             "/v2/repository/models/NAME/load|unload over the models given here. Default: the setting "
             "serve.repository_api (PIER_SERVE__REPOSITORY_API), off."),
    isolated: bool = typer.Option(
        False, "--isolated",
        help="Run in a virtualenv built with uv from the models' environment lock (cached under "
             "PIER_HOME/envs by lock; every model served together must share one lock)."),
) -> None:
    """Serve models over Open Inference Protocol V2 (REST and gRPC), KServe V1, Seldon Core v1 and
    MLflow's scoring protocol (/invocations)."""
    from modelpier.server.app import build_server
    from modelpier.server.workers import run_workers

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if isolated and ISOLATED_ENV_VAR not in os.environ:
        from modelpier.cli.isolation import exec_isolated

        exec_isolated(_settings(ctx), [ModelSource.parse(r).ref for r in refs])
    defaults = ModelOptions(
        batching=BatchingConfig(enabled=batching, max_batch_size=max_batch_size, max_latency_ms=max_latency_ms),
        max_queue=max_queue, outputs=tuple(o for o in outputs.split(",") if o))
    settings = _settings(ctx)
    limits = settings.limits
    config = ServerConfig(
        models=tuple(ModelSource.parse(r) for r in refs), host=host, http_port=http_port,
        grpc_port=None if no_grpc else grpc_port, workers=workers or os.cpu_count() or 1,
        max_body_bytes=max_body_bytes, request_timeout_s=timeout_s, shutdown_grace_s=shutdown_grace_s,
        inline_predict_us=inline_predict_us, defaults=defaults,
        per_model=_per_model(defaults, model_option), log_level=log_level, access_log=access_log,
        max_request_elements=max_request_elements or limits.max_request_elements,
        max_headers=max_headers or limits.max_headers, head_timeout_s=head_timeout_s or limits.head_timeout_s,
        body_timeout_s=body_timeout_s or limits.body_timeout_s,
        repository_api=settings.serve.repository_api if repository_api is None else repository_api)
    code = run_workers(config, settings) if config.workers > 1 else build_server(config, settings).run()
    if code:
        raise typer.Exit(code)
