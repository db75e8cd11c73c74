"""The data plane's choice of outputs: what a request asks for is what the runtime is asked to compute."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from modelpier.errors import InvalidSpec
from modelpier.server.config import ModelOptions, ModelSource, ServerConfig
from modelpier.server.types import InferenceRequest, InferenceResponse, RequestedOutput

from .fakes import Doubler, run, serve


class Selective(Doubler):
    """Computes only the outputs asked for (as the scikit-learn runtime does) and records each call's ask."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[frozenset[str] | None] = []

    def predict(self, inputs: dict[str, Any], outputs: frozenset[str] | None = None) -> dict[str, Any]:
        self.asked.append(outputs)
        full = super().predict(inputs)
        return full if outputs is None else {k: v for k, v in full.items() if k in outputs}


def _request(*outputs: str) -> InferenceRequest:
    return InferenceRequest(inputs={"x": np.array([[1.0, 2.0]])},
                            outputs=[RequestedOutput(o) for o in outputs] or None)


def _infer(runtime: Selective, requests: list[InferenceRequest], **options: Any) -> list[InferenceResponse]:
    async def go() -> list[InferenceResponse]:
        server = serve(runtime, **options)
        await server.repository.load_all()
        runtime.asked.clear()  # forget the warm-up
        return await asyncio.gather(*(server.dataplane.infer("m", None, r) for r in requests))

    return run(go)  # type: ignore[no-any-return]


def test_requests_asking_for_different_outputs_share_a_batch_and_get_their_own() -> None:
    runtime = Selective()
    answers = _infer(runtime, [_request("y"), _request("label"), _request("y")])
    assert runtime.asked == [frozenset({"y", "label"})]  # one call for the union
    assert [[o.name for o in a.outputs] for a in answers] == [["y"], ["label"], ["y"]]


def test_a_request_naming_no_outputs_gets_and_costs_only_the_default_outputs() -> None:
    runtime = Selective()
    config = ServerConfig(models=(ModelSource(ref="mem", name="m"),), grpc_port=None,
                          defaults=ModelOptions(outputs=("label",)))
    answers = _infer(runtime, [_request()], config=config)
    assert runtime.asked == [frozenset({"label"})]
    assert [o.name for o in answers[0].outputs] == ["label"]


def test_a_request_naming_no_outputs_shares_a_batch_with_one_naming_others() -> None:
    runtime = Selective()
    config = ServerConfig(models=(ModelSource(ref="mem", name="m"),), grpc_port=None,
                          defaults=ModelOptions(outputs=("label",)))
    answers = _infer(runtime, [_request(), _request("y")], config=config)
    assert runtime.asked == [frozenset({"y", "label"})]
    assert [[o.name for o in a.outputs] for a in answers] == [["label"], ["y"]]


def test_without_default_outputs_the_runtime_is_asked_for_everything() -> None:
    runtime = Selective()
    answers = _infer(runtime, [_request()])
    assert runtime.asked == [None]
    assert sorted(o.name for o in answers[0].outputs) == ["label", "y"]


def test_a_default_output_the_model_lacks_fails_the_load_naming_it() -> None:
    config = ServerConfig(models=(ModelSource(ref="mem", name="m"),), grpc_port=None,
                          defaults=ModelOptions(outputs=("proba",)))
    server = serve(Selective(), config=config)
    with pytest.raises(InvalidSpec, match="no output 'proba'"):
        run(server.repository.load_all)
