"""``DataPlane``: the protocol-neutral inference service every transport calls.

Transports decode their wire format into ``InferenceRequest`` (numpy tensors), call ``infer`` and
encode the ``InferenceResponse``; they also map errors to their status codes. Here: find the model
(404 unknown, 503 loading), check the inputs against its signature (400 naming the input), queue
them for the model with the outputs to compute (the request's ``outputs``, else the model's default
outputs) under the request timeout (503 full queue, 504 timeout), select those outputs, and turn
an unexpected model failure into a logged 500 with an error id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from modelpier import __version__
from modelpier._lib.ids import new_id
from modelpier.errors import DeadlineExceeded, InvalidInput, NotFound, PierError
from modelpier.server.deadlines import effective_timeout_s, parameter_timeout_s
from modelpier.server.execution import Tensors
from modelpier.server.failures import Unexpected
from modelpier.server.metrics import ServerMetrics
from modelpier.server.repository import ModelHandle, ModelRepository
from modelpier.server.types import (
    Array,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    OutputTensor,
    Parameters,
    ServerMetadata,
)
from modelpier.spec.signature import v2_datatype

log = logging.getLogger(__name__)

SERVER_NAME = "modelpier"
EXTENSIONS = ("binary_tensor_data", "statistics", "kserve_v1", "seldon_v1", "metrics")
# Request parameters that steer the encoding of this request; they are not passed back.
RESERVED_PARAMETERS = frozenset({"binary_data_output", "binary_data", "binary_data_size", "timeout"})


class ModelFailed(Unexpected):
    """The model raised something that is not a modelpier error: a bug to look up by error id."""


_DATATYPES: dict[object, str] = {}


def _datatype(array: Array) -> str:
    dtype = array.dtype
    name = _DATATYPES.get(dtype)
    if name is None:
        try:
            name = v2_datatype(dtype)
        except ValueError:
            name = "BYTES"
        _DATATYPES[dtype] = name
    return name


def _echo(parameters: Parameters | None) -> Parameters | None:
    if not parameters:
        return None
    kept = {k: v for k, v in parameters.items() if k not in RESERVED_PARAMETERS}
    return kept or None


def _asked(handle: ModelHandle, request: InferenceRequest) -> frozenset[str] | None:
    """The outputs to compute for ``request``: those it names (checked), else the model's defaults."""
    if not request.outputs:
        return handle.default_outputs
    for wanted in request.outputs:
        if handle.output_names and wanted.name not in handle.output_names:
            raise InvalidInput(
                f"unknown output {wanted.name!r}; the model's outputs are {sorted(handle.output_names)}",
                details={"output": wanted.name, "outputs": sorted(handle.output_names)})
    return frozenset([o.name for o in request.outputs])


class DataPlane:
    def __init__(self, repository: ModelRepository, metrics: ServerMetrics, request_timeout_s: float,
                 repository_api: bool = False) -> None:
        self._repository = repository
        self._metrics = metrics
        self._timeout_s = request_timeout_s
        self._repository_api = repository_api

    @property
    def repository(self) -> ModelRepository:
        return self._repository

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self._repository.ready

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self._repository.is_ready(name, version)

    def model_failure(self, name: str) -> str | None:
        """Why ``name`` failed to load (None: it did not fail)."""
        return self._repository.failures.get(name)

    def server_metadata(self) -> ServerMetadata:
        extensions = (*EXTENSIONS, "model_repository") if self._repository_api else EXTENSIONS
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=extensions)

    # -- the statistics and model repository extensions ----------------------------------------
    def statistics(self, name: str | None = None, version: str | None = None) -> dict[str, Any]:
        """``$stats_model_response``: one model (404 if not served), or every loaded model."""
        if name:
            handle = self._repository.get(name, version)
            return self._metrics.stats.model_stats([name], {name: handle.version})
        versions: dict[str, str | None] = {}
        for n in self._repository.names:
            try:
                versions[n] = self._repository.get(n).version
            except PierError:  # loading or unloaded: Triton lists only the models it serves
                continue
        return self._metrics.stats.model_stats(list(versions), versions)

    def _require_repository_api(self) -> None:
        if not self._repository_api:
            raise NotFound("the model repository extension is off on this server; start it with "
                           "`pier serve --repository-api` (or PIER_SERVE__REPOSITORY_API=true)")

    def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        self._require_repository_api()
        return self._repository.index(ready_only)

    async def load_model(self, name: str) -> None:
        self._require_repository_api()
        await self._repository.load(name)

    def unload_model(self, name: str) -> None:
        self._require_repository_api()
        self._repository.unload(name)

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        return self._repository.metadata(name, version)

    def model(self, name: str, version: str | None = None) -> ModelHandle:
        return self._repository.get(name, version)

    @staticmethod
    def _expire(future: asyncio.Future[Tensors], name: str, timeout_s: float) -> None:
        if not future.done():
            future.set_exception(DeadlineExceeded(
                f"model {name!r} did not answer within {timeout_s:g}s",
                details={"model": name, "timeout_s": timeout_s}))

    async def infer(self, name: str, version: str | None, request: InferenceRequest,
                    timeout_s: float | None = None) -> InferenceResponse:
        """Predict; ``timeout_s`` is the caller's deadline (see ``deadlines.py``), capped by the server's."""
        handle = self._repository.get(name, version)
        timeout = effective_timeout_s(self._timeout_s, timeout_s, parameter_timeout_s(request.parameters))
        inputs, rows = handle.validator.check(request.inputs)
        asked = _asked(handle, request)
        self._metrics.enter(name)
        try:
            future = handle.runner.submit(inputs, rows, asked)
            if not future.done():
                # One timer per request that fails the future itself (cheaper than asyncio.timeout,
                # and a queued request whose future is done is skipped by the batcher).
                timer = asyncio.get_running_loop().call_later(timeout, self._expire, future, name, timeout)
                try:
                    await future
                finally:
                    timer.cancel()
            try:
                outputs = future.result()
            except PierError:
                raise
            except Exception as exc:
                error_id = new_id(8)
                log.error("model %s failed (error id %s)", name, error_id, exc_info=exc)
                raise ModelFailed(f"model {name!r} failed while predicting; error id {error_id}",
                                  details={"error_id": error_id}) from None
        finally:
            self._metrics.leave(name)
        self._metrics.stats.inferred(name, rows)
        if not handle.batched:
            self._metrics.stats.execution(name, rows)
        if request.outputs:
            selected = [(o.name, o.parameters) for o in request.outputs if o.name in outputs]
        elif asked is not None:
            # A batch computes what any of its requests asked for; answer with this request's share.
            selected = [(n, None) for n in outputs if n in asked]
        else:
            selected = [(n, None) for n in outputs]
        for n, _ in selected:
            if type(outputs[n]) is not np.ndarray:  # runtimes should return arrays; be lenient
                outputs[n] = np.asarray(outputs[n])
        return InferenceResponse(
            model_name=name,
            model_version=handle.version,
            id=request.id,
            parameters=_echo(request.parameters),
            outputs=[OutputTensor(n, _datatype(outputs[n]), outputs[n], p) for n, p in selected],
        )
