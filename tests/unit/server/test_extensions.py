"""The statistics and model repository extensions, caller deadlines and the binary outputs'
precedence, through the HTTP transport in-process."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from modelpier.errors import InvalidInput
from modelpier.server.config import BatchingConfig, ModelOptions
from modelpier.server.deadlines import effective_timeout_s, header_timeout_s, parameter_timeout_s

from .fakes import Doubler
from .test_http_app import GOOD, INFER, exchange


def _header_and_binary(body: bytes, length: int) -> tuple[dict[str, Any], bytes]:
    return json.loads(body[:length]), body[length:]


@pytest.mark.parametrize(("request_wide", "per_output", "binary"), [
    (True, {}, {"y", "label"}),
    (True, {"y": False}, {"label"}),  # an output's own false wins over the request-wide true
    (False, {"y": True}, {"y"}),
    (None, {"label": True}, {"label"}),
    (None, {"y": False}, set()),
])
def test_an_outputs_binary_data_takes_precedence_over_binary_data_output(
        request_wide: bool | None, per_output: dict[str, bool], binary: set[str]) -> None:
    body: dict[str, Any] = {**GOOD}
    if request_wide is not None:
        body["parameters"] = {"binary_data_output": request_wide}
    if per_output:
        body["outputs"] = [{"name": n, "parameters": {"binary_data": b}} for n, b in per_output.items()]
        body["outputs"] += [{"name": n} for n in ("y", "label") if n not in per_output]
    (r,) = exchange(("POST", INFER, body))
    assert r.status_code == 200, r.text
    length = r.headers.get("inference-header-content-length")
    if not binary:
        assert length is None
        return
    doc, raw = _header_and_binary(r.content, int(length))
    sent_raw = {o["name"] for o in doc["outputs"] if "binary_data_size" in (o.get("parameters") or {})}
    assert sent_raw == binary
    assert all("data" in o for o in doc["outputs"] if o["name"] not in binary)
    assert len(raw) == sum(o["parameters"]["binary_data_size"] for o in doc["outputs"] if o["name"] in binary)


def test_statistics_count_successes_failures_rows_and_executions() -> None:
    bad = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [-1, 1]}]}
    responses = exchange(("POST", INFER, GOOD), ("POST", INFER, GOOD), ("POST", INFER, bad),
                         ("GET", "/v2/models/m/stats", None), ("GET", "/v2/models/stats", None),
                         ("GET", "/v2/models/m/versions/1/stats", None), ("GET", "/v2/models/nope/stats", None),
                         defaults=ModelOptions(batching=BatchingConfig(enabled=False)))
    assert [r.status_code for r in responses[:3]] == [200, 200, 500]
    one, every, versioned, unknown = responses[3:]
    (stat,) = one.json()["model_stats"]
    assert stat["name"] == "m"
    assert stat["version"] == "1"
    assert stat["inference_count"] == 4  # two requests of two rows
    assert stat["execution_count"] == 2
    assert stat["inference_stats"]["success"]["count"] == 2
    assert stat["inference_stats"]["success"]["ns"] > 0
    assert stat["inference_stats"]["fail"]["count"] == 1
    assert stat["last_inference"] > 0
    assert every.json() == one.json() == versioned.json()
    assert unknown.status_code == 404


def test_server_metadata_lists_statistics_and_the_repository_only_when_enabled() -> None:
    (off,) = exchange(("GET", "/v2", None))
    (on,) = exchange(("GET", "/v2", None), repository_api=True)
    assert "statistics" in off.json()["extensions"]
    assert "model_repository" not in off.json()["extensions"]
    assert "model_repository" in on.json()["extensions"]


def test_repository_extension_is_off_by_default() -> None:
    (r,) = exchange(("POST", "/v2/repository/index", b""))
    assert r.status_code == 404
    assert "--repository-api" in r.json()["error"]


def test_repository_index_unload_and_load() -> None:
    runtime = Doubler()
    responses = exchange(
        ("POST", "/v2/repository/index", b""),  # tritonclient sends an empty body
        ("POST", "/v2/repository/models/m/unload", {"parameters": {"unload_dependents": False}}),
        ("POST", "/v2/repository/index", {}),
        ("POST", INFER, GOOD),
        ("POST", "/v2/repository/index", {"ready": True}),
        ("POST", "/v2/repository/models/m/load", b""),
        ("POST", INFER, GOOD),
        ("POST", "/v2/repository/models/nope/load", b""),
        ("GET", "/v2/repository/index", None),
        runtime=runtime, repository_api=True)
    index, unload, after, refused, ready_only, load, served, unknown, wrong_method = responses
    assert index.json() == [{"name": "m", "version": "1", "state": "READY", "reason": ""}]
    assert unload.status_code == 200
    assert after.json() == [{"name": "m", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}]
    assert refused.status_code == 404
    assert "load it with POST /v2/repository/models/m/load" in refused.json()["error"]
    assert ready_only.json() == []
    assert load.status_code == 200
    assert served.status_code == 200
    assert unknown.status_code == 404
    assert wrong_method.status_code == 405


class _Sevens(Doubler):
    """Blocks on a 7 until released (warm-up on zeros passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def predict(self, inputs: dict[str, Any], outputs: frozenset[str] | None = None) -> dict[str, Any]:
        if (inputs["x"] == 7).any():
            self.release.wait(10)
        return super().predict(inputs, outputs)


@pytest.mark.parametrize("how", ["header", "parameter"])
def test_a_caller_deadline_ends_a_slow_prediction_with_504(how: str) -> None:
    runtime = _Sevens()
    body: dict[str, Any] = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [7, 7]}]}
    headers = {"content-type": "application/json"}
    if how == "header":
        headers["x-pier-timeout-ms"] = "100"
    else:
        body["parameters"] = {"timeout": 100_000}  # microseconds, as tritonclient sends it
    try:
        (r,) = exchange(("POST", INFER, (json.dumps(body), headers)), runtime=runtime, inline_predict_us=0)
    finally:
        runtime.release.set()
    assert r.status_code == 504
    assert "within 0.1s" in r.json()["error"]


def test_a_bad_deadline_header_is_a_400_naming_it() -> None:
    (r,) = exchange(("POST", INFER, (json.dumps(GOOD), {"x-pier-timeout-ms": "soon"})))
    assert r.status_code == 400
    assert "x-pier-timeout-ms" in r.json()["error"]


@pytest.mark.parametrize(("value", "seconds"), [(None, None), (b"250", 0.25), (b"1.5", 0.0015)])
def test_header_timeout(value: bytes | None, seconds: float | None) -> None:
    assert header_timeout_s(value) == seconds


@pytest.mark.parametrize("value", [b"0", b"-5", b"nan", b"inf", b"x"])
def test_header_timeout_refuses_nonsense(value: bytes) -> None:
    with pytest.raises(InvalidInput, match="x-pier-timeout-ms"):
        header_timeout_s(value)


@pytest.mark.parametrize(("params", "seconds"), [(None, None), ({}, None), ({"timeout": 0}, None),
                                                  ({"timeout": 250_000}, 0.25)])
def test_v2_timeout_parameter_is_microseconds(params: dict[str, Any] | None, seconds: float | None) -> None:
    assert parameter_timeout_s(params) == seconds


def test_v2_timeout_parameter_must_be_a_count() -> None:
    with pytest.raises(InvalidInput, match="timeout"):
        parameter_timeout_s({"timeout": "1s"})


def test_the_caller_may_ask_for_less_never_more() -> None:
    assert effective_timeout_s(30.0, None, None) == 30.0
    assert effective_timeout_s(30.0, 0.5, None) == 0.5
    assert effective_timeout_s(1.0, 5.0, 2.0) == 1.0
