"""``ModelRepository``: the models this server hosts, by name, and their readiness.

Every name is known at start-up (from the sources), so a request for a model still loading gets
503 and one for a model never configured gets 404. Loading happens in a worker thread, one model
after another, while the HTTP server already answers liveness; the server is ready once every
model is loaded and warmed up. A warm-up prediction on zeros (one row, then a few) primes caches
and seeds the cost estimate that decides between inline and threaded predictions.

With the V2 model repository extension on (``ServerConfig.repository_api``), ``index`` lists the
configured models with their state, ``unload`` stops serving one (its queued requests still finish;
new ones get 404 until it is loaded again) and ``load`` loads (or reloads) one of the configured
sources, swapping the new handle in only once it is warm, so a reload never answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpier.errors import Conflict, InvalidArtifact, InvalidSpec, NotFound, ServiceUnavailable
from modelpier.server.batching.queue import BatchQueue
from modelpier.server.config import ModelOptions, ModelSource, ServerConfig
from modelpier.server.execution import PredictExecutor, Tensors, predict_merged
from modelpier.server.loading import LoadedModel, served_name
from modelpier.server.metrics import ServerMetrics
from modelpier.server.runners import DirectRunner, ModelRunner
from modelpier.server.types import ModelMetadata, TensorMetadata
from modelpier.server.validation import InputValidator
from modelpier.spec.signature import Signature, TensorSpec, numpy_dtype

log = logging.getLogger(__name__)

# Builds a runtime from a source (blocking; run in a thread): ``loading.load_model`` in production.
Loader = Callable[[ModelSource, ModelOptions], LoadedModel]

# The first call is cold (imports, caches) and is not timed; the rest seed the cost estimate with
# two batch sizes, so it learns both the fixed cost of a call and the cost of a row.
WARMUP_ROWS = (1, 1, 8, 1, 8, 1)


@dataclass(slots=True)
class ModelHandle:
    name: str
    version: str | None
    metadata: ModelMetadata
    signature: Signature
    validator: InputValidator
    runner: ModelRunner
    output_names: frozenset[str]
    batched: bool
    # What a request that names no outputs gets (``--outputs``, a deployment's ``outputs``); None: all.
    default_outputs: frozenset[str] | None = None


def _tensor_meta(specs: tuple[TensorSpec, ...]) -> tuple[TensorMetadata, ...]:
    return tuple(TensorMetadata(s.name, s.datatype, s.shape) for s in specs)


def _example(signature: Signature, rows: int) -> Tensors | None:
    """Zeros shaped like the signature's inputs, or None when the inputs are not fully known."""
    if not signature.inputs:
        return None
    example: Tensors = {}
    for spec in signature.inputs:
        if spec.datatype == "BYTES" or any(d == -1 for d in spec.shape[1:]):
            return None
        example[spec.name] = np.zeros((rows, *spec.shape[1:]), dtype=numpy_dtype(spec.datatype))
    return example


def _default_outputs(loaded: LoadedModel, options: ModelOptions) -> frozenset[str] | None:
    """The configured default outputs, checked against the model's signature (when it lists any)."""
    if not options.outputs:
        return None
    known = [o.name for o in loaded.runtime.signature.outputs]
    unknown = [o for o in options.outputs if known and o not in known]
    if unknown:
        raise InvalidSpec(f"model {loaded.name!r} has no output {unknown[0]!r}; its outputs are {known}",
                          details={"model": loaded.name, "output": unknown[0], "outputs": known})
    return frozenset(options.outputs)


def _depth_of(runner: ModelRunner) -> Callable[[], int]:
    return lambda: runner.depth


class ModelRepository:
    def __init__(
        self,
        config: ServerConfig,
        metrics: ServerMetrics,
        pool: Executor,
        loader: Loader,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._pool = pool
        self._loader = loader
        self._sources = {served_name(s): s for s in config.models}
        if len(self._sources) != len(config.models):
            names = [served_name(s) for s in config.models]
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidSpec(f"two models would be served as {dupes[0]!r}; name one with NAME=REF")
        for name in self._sources:
            metrics.model_declared(name)
        self._handles: dict[str, ModelHandle] = {}
        self._unloaded: set[str] = set()
        self._failed: dict[str, str] = {}  # name -> why its last load through the repository API failed
        self._loading: set[str] = set()
        self._failures: dict[str, str] = {}  # failed at start-up: the reason (kept unready; the others serve)
        self.ready = False

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def get(self, name: str, version: str | None = None) -> ModelHandle:
        handle = self._handles.get(name)
        if handle is None:
            if name in self._failures:
                raise ServiceUnavailable(f"model {name!r} failed to load: {self._failures[name]}",
                                         details={"model": name, "state": "failed", "reason": self._failures[name]})
            if name in self._unloaded or name in self._failed:
                why = self._failed.get(name) or "it was unloaded"
                raise NotFound(f"model {name!r} is not loaded ({why}); load it with "
                               f"POST /v2/repository/models/{name}/load", details={"model": name})
            if name in self._sources:
                raise ServiceUnavailable(f"model {name!r} is still loading", details={"model": name})
            raise NotFound(f"model {name!r} is not served here; models: {self.names}",
                           details={"model": name, "models": self.names})
        if version and version != handle.version:
            served = f"version {handle.version!r}" if handle.version else "no versions"
            raise NotFound(f"model {name!r} has no version {version!r} here (it serves {served})",
                           details={"model": name, "version": version})
        return handle

    @property
    def failures(self) -> dict[str, str]:
        """The models that failed to load at start-up, with the reason (unready; the others serve)."""
        return dict(self._failures)

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """A model's V2 metadata; a model that failed to load answers with its state and reason
        (no tensors: they were never known)."""
        reason = self._failures.get(name)
        if reason is not None and name not in self._handles:
            return ModelMetadata(name=name, versions=(), platform="", inputs=(), outputs=(),
                                 parameters={"state": "failed", "reason": reason})
        return self.get(name, version).metadata

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.get(name, version)
        except ServiceUnavailable:
            return False
        return True

    async def load_all(self) -> None:
        """Load every model (in a thread), then mark the server ready.

        A model that fails to load is logged and kept unready with its reason, and the others serve:
        one bad artifact never takes its neighbours down (the repository API may load it again).
        Only when every model failed is the first failure raised (a server with nothing to serve
        stops, and its supervisor reports why)."""
        first: Exception | None = None
        for name in self._sources:
            try:
                await self._load_one(name)
            except Exception as exc:  # any loader failure: frameworks raise every kind of error
                reason = str(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
                self._failures[name] = self._failed[name] = reason
                log.error("model %s failed to load: %s", name, reason, exc_info=not hasattr(exc, "message"))
                first = first or exc
        if first is not None and not self._handles:
            raise first
        self.ready = True

    async def _load_one(self, name: str) -> None:
        source = self._sources[name]
        started = time.perf_counter()
        options = self._config.options_for(name)
        loaded = await asyncio.to_thread(self._loader, source, options)
        executor = PredictExecutor(loaded.runtime.predict, self._pool, self._config.inline_predict_us / 1e6)
        defaults = _default_outputs(loaded, options)
        await asyncio.to_thread(self._warm_up, loaded, executor, defaults)
        handle = self._handle(name, loaded, executor, defaults)
        self._handles[name] = handle
        self._unloaded.discard(name)
        self._failed.pop(name, None)
        self._failures.pop(name, None)
        seconds = time.perf_counter() - started
        self._metrics.model_loaded(name, seconds, _depth_of(handle.runner))
        log.info("model %s loaded in %.2fs (%s, version %s, batching %s)", name, seconds, loaded.flavor,
                 loaded.version or "-", "on" if options.batching.enabled else "off")

    # -- the V2 model repository extension ------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """``$repository_index_response``: every configured model, its version and state."""
        out: list[dict[str, str]] = []
        for name in self._sources:
            handle = self._handles.get(name)
            if handle is not None:
                entry = {"name": name, "version": handle.version or "", "state": "READY", "reason": ""}
            elif ready_only:
                continue
            elif name in self._loading or (not self.ready and name not in self._unloaded):
                entry = {"name": name, "version": "", "state": "LOADING", "reason": ""}
            else:
                entry = {"name": name, "version": "", "state": "UNAVAILABLE",
                         "reason": self._failed.get(name, "unloaded")}
            out.append(entry)
        return out

    def _configured(self, name: str) -> None:
        if name not in self._sources:
            raise NotFound(f"model {name!r} is not in this server's repository; models: {self.names}",
                           details={"model": name, "models": self.names})

    async def load(self, name: str) -> None:
        """Load (or reload) a configured model; returns once it serves. Raises why it failed."""
        self._configured(name)
        if not self.ready or name in self._loading:
            raise Conflict(f"model {name!r} is being loaded already; try again when it is ready",
                           details={"model": name})
        self._loading.add(name)
        try:
            await self._load_one(name)
        except Exception as exc:
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            if name not in self._handles:
                self._failed[name] = reason
            log.error("loading model %s failed: %s", name, reason)
            raise InvalidArtifact(f"failed to load model {name!r}: {reason}", details={"model": name}) from None
        finally:
            self._loading.discard(name)

    def unload(self, name: str) -> None:
        """Stop serving a configured model (idempotent)."""
        self._configured(name)
        if self._handles.pop(name, None) is not None:
            self._metrics.model_unloaded(name)
            log.info("model %s unloaded", name)
        self._unloaded.add(name)

    def _handle(self, name: str, loaded: LoadedModel, executor: PredictExecutor,
                defaults: frozenset[str] | None) -> ModelHandle:
        options = self._config.options_for(name)
        signature = loaded.runtime.signature
        runner: ModelRunner
        if options.batching.enabled:
            runner = BatchQueue(executor, options.batching, options.max_queue,
                                on_batch=lambda rows: self._metrics.batch(name, rows))
        else:
            runner = DirectRunner(executor, options.max_queue)
        metadata = ModelMetadata(
            name=name, versions=(loaded.version,) if loaded.version else (), platform=loaded.flavor,
            inputs=_tensor_meta(signature.inputs), outputs=_tensor_meta(signature.outputs),
            parameters={"environment_warnings": list(loaded.environment_warnings)}
            if loaded.environment_warnings else {})
        return ModelHandle(name=name, version=loaded.version, metadata=metadata, signature=signature,
                           validator=InputValidator(signature), runner=runner,
                           output_names=frozenset(o.name for o in signature.outputs),
                           batched=options.batching.enabled, default_outputs=defaults)

    @staticmethod
    def _warm_up(loaded: LoadedModel, executor: PredictExecutor, outputs: frozenset[str] | None) -> None:
        for i, rows in enumerate(WARMUP_ROWS):
            example = _example(loaded.runtime.signature, rows)
            if example is None:
                return
            if i == 0:
                result = predict_merged(loaded.runtime.predict, [example], [rows], outputs=outputs)
            else:
                result = executor.run_inline([example], [rows], outputs)
            failure: Any = result.outcomes[0]
            if isinstance(failure, Exception):
                log.debug("warm-up of %s skipped: %s", loaded.name, failure)
                return
