"""In-memory runtimes and an in-process server for the server's unit tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from modelpier.server.app import ModelServer, build_server
from modelpier.server.config import ModelOptions, ModelSource, ServerConfig
from modelpier.server.loading import LoadedModel
from modelpier.spec.signature import Signature, TensorSpec


class Doubler:
    """y = 2x and a label per row; a negative input makes it fail like a buggy model."""

    flavor: ClassVar[str] = "python"
    signature = Signature(
        inputs=(TensorSpec(name="x", datatype="FP64", shape=(-1, 2)),),
        outputs=(TensorSpec(name="y", datatype="FP64", shape=(-1, 2)),
                 TensorSpec(name="label", datatype="INT64", shape=(-1,))),
    )
    native = None

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()  # set when a prediction begins

    def predict(self, inputs: dict[str, Any], outputs: frozenset[str] | None = None) -> dict[str, Any]:
        x = inputs["x"]
        self.calls.append(len(x))
        self.started.set()
        if (x < 0).any():
            raise RuntimeError("negative input: a bug in the model")
        self.gate.wait(10)
        return {"y": x * 2, "label": (x.sum(axis=1) > 3).astype(np.int64)}


def serve(runtime: Any, name: str = "m", config: ServerConfig | None = None, **options: Any) -> ModelServer:
    """A server hosting ``runtime`` (not started); ``await server.repository.load_all()`` loads it."""
    config = config or ServerConfig(models=(ModelSource(ref="mem", name=name),), grpc_port=None, **options)

    def loader(source: ModelSource, opts: ModelOptions) -> LoadedModel:
        return LoadedModel(name=name, version="1", flavor="python", runtime=runtime)

    return build_server(config, loader=loader)


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())
