"""What a request may declare (``codecs/limits.py``): the pure checks, every decoder's use of them, and a
fuzz of the decoders and of the whole HTTP path, where no input may ever be a server error."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelpier.errors import InvalidInput, PayloadTooLarge, PierError, http_status
from modelpier.server.codecs import kserve_v1, seldon, v2_binary, v2_grpc, v2_json
from modelpier.server.codecs.limits import (
    MAX_DIMS,
    ElementBudget,
    check_raw_size,
    check_shape,
    check_value_count,
)
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

from .fakes import Doubler, serve

HUGE = 4611686018427387904  # 2**62: numpy's "array is too big" (a 500 before)


# -- the pure checks ------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "count"), [
    ([], 1), ([0], 0), ([3], 3), ([2, 3], 6), ([0, 5], 0), ([1] * MAX_DIMS, 1), ((4, 4), 16), ([1000], 1000),
])
def test_sane_shapes_give_their_element_count(shape: Any, count: int) -> None:
    budget = ElementBudget(1000)
    assert check_shape(shape, "x", budget) == (tuple(shape), count)
    assert budget.left == 1000 - count


@pytest.mark.parametrize("shape", [
    None, "3", 3, [-1], [1.5], ["2"], [True], [None], [[2]], {"a": 1}, [1] * (MAX_DIMS + 1),
])
def test_malformed_shapes_are_invalid_input(shape: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_shape(shape, "x", ElementBudget(1000))
    assert "'x'" in caught.value.message
    assert http_status(caught.value) == 400


@pytest.mark.parametrize("shape", [
    [1001], [10**12], [0, HUGE, 4], [HUGE, 0], [0, 10**30], [10**40, 10**40], [32, 32], [2] * 10 + [0],
])
def test_shapes_beyond_the_budget_are_refused_even_when_a_dimension_is_zero(shape: list[int]) -> None:
    with pytest.raises(PayloadTooLarge, match=r"limit of 1000 elements per request.*MAX_REQUEST_ELEMENTS"):
        check_shape(shape, "x", ElementBudget(1000))


def test_the_budget_is_shared_by_the_inputs_of_one_request() -> None:
    budget = ElementBudget(100)
    check_shape([60], "a", budget)
    with pytest.raises(PayloadTooLarge, match="'b'"):
        check_shape([41], "b", budget)
    check_shape([40], "c", budget)
    assert budget.left == 0


@pytest.mark.parametrize(("datatype", "count", "itemsize", "nbytes", "ok"), [
    ("FP64", 2, 8, 16, True), ("FP64", 2, 8, 8, False), ("FP64", 0, 8, 0, True), ("FP64", 0, 8, 8, False),
    ("BYTES", 2, 8, 8, True), ("BYTES", 2, 8, 7, False), ("BYTES", 100_000_000, 8, 0, False),
    ("BYTES", 0, 8, 0, True), ("UINT8", 3, 1, 3, True),
])
def test_raw_sizes_are_checked_against_the_shape(datatype: str, count: int, itemsize: int, nbytes: int,
                                                 ok: bool) -> None:
    if ok:
        check_raw_size("x", datatype, (count,), count, itemsize=itemsize, nbytes=nbytes)
    else:
        with pytest.raises(InvalidInput, match="'x'"):
            check_raw_size("x", datatype, (count,), count, itemsize=itemsize, nbytes=nbytes)


def test_value_counts_must_fill_the_shape() -> None:
    check_value_count("x", (2, 2), 4, 4)
    with pytest.raises(InvalidInput, match=r"shape \[2, 2\] needs 4 values in 'data', got 3"):
        check_value_count("x", (2, 2), 4, 3)


# -- every decoder refuses before allocating --------------------------------------------------------
def _binary(entries: list[dict[str, Any]], raw: bytes = b"") -> tuple[bytes, int]:
    header = json.dumps({"inputs": entries}).encode()
    return header + raw, len(header)


def _grpc(shape: list[int], datatype: str = "BYTES", raw: bytes | None = b"") -> Any:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype=datatype, shape=shape)
    if raw is not None:
        message.raw_input_contents.append(raw)
    return message


ADVERSARIAL_SHAPES = [[100_000_000], [10**12], [0, HUGE, 4]]


@pytest.mark.parametrize("shape", ADVERSARIAL_SHAPES)
@pytest.mark.parametrize("datatype", ["BYTES", "FP64"])
def test_v2_binary_refuses_huge_declared_shapes_with_4xx(shape: list[int], datatype: str) -> None:
    body, length = _binary([{"name": "x", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": 0}}])
    with pytest.raises(PierError) as caught:
        v2_binary.decode_request(body, length)
    assert 400 <= http_status(caught.value) < 500


@pytest.mark.parametrize("shape", ADVERSARIAL_SHAPES)
def test_v2_json_refuses_huge_declared_shapes_with_4xx(shape: list[int]) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": []}]}).encode()
    with pytest.raises(PierError) as caught:
        v2_json.decode_request(body)
    assert 400 <= http_status(caught.value) < 500


@pytest.mark.parametrize("shape", ADVERSARIAL_SHAPES)
@pytest.mark.parametrize("raw", [b"", None])
def test_grpc_refuses_huge_declared_shapes_with_4xx(shape: list[int], raw: bytes | None) -> None:
    with pytest.raises(PierError) as caught:
        v2_grpc.decode_request(_grpc(shape, raw=raw))
    assert 400 <= http_status(caught.value) < 500


def test_grpc_refuses_negative_dimensions() -> None:
    with pytest.raises(InvalidInput, match="non-negative"):
        v2_grpc.decode_request(_grpc([-5], "FP32", raw=b""))


@pytest.mark.parametrize("shape", [*ADVERSARIAL_SHAPES, [-1], [1] * 40])
def test_seldon_tensor_checks_the_shape_before_reshaping(shape: list[int]) -> None:
    body = json.dumps({"data": {"tensor": {"shape": shape, "values": [1]}}}).encode()
    with pytest.raises(PierError) as caught:
        seldon.decode_request(body, ["x"])
    assert 400 <= http_status(caught.value) < 500


def test_the_element_limit_is_configurable_per_decoder() -> None:
    rows = json.dumps({"instances": [[1.0, 2.0]] * 6}).encode()
    assert kserve_v1.decode_request(rows, ["x"], max_elements=12).inputs["x"].shape == (6, 2)
    with pytest.raises(PayloadTooLarge):
        kserve_v1.decode_request(rows, ["x"], max_elements=11)
    with pytest.raises(PayloadTooLarge):
        seldon.decode_request(json.dumps({"data": {"ndarray": [[1.0, 2.0]] * 6}}).encode(), ["x"], max_elements=11)
    body = json.dumps({"inputs": [{"name": "a", "shape": [6], "datatype": "FP64", "data": [1] * 6},
                                  {"name": "b", "shape": [6], "datatype": "FP64", "data": [1] * 6}]}).encode()
    assert set(v2_json.decode_request(body, max_elements=12).inputs) == {"a", "b"}
    with pytest.raises(PayloadTooLarge, match="'b'"):
        v2_json.decode_request(body, max_elements=11)
    raw = np.ones(6).tobytes()
    binary, length = _binary([{"name": "a", "shape": [6], "datatype": "FP64", "parameters": {"binary_data_size": 48}}],
                             raw)
    with pytest.raises(PayloadTooLarge):
        v2_binary.decode_request(binary, length, max_elements=5)
    with pytest.raises(PayloadTooLarge):
        v2_grpc.decode_request(_grpc([6], "FP64", raw=raw), max_elements=5)


# -- fuzz: decoders never fail with anything but a 4xx error ---------------------------------------
DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "fp32", "", "COMPLEX"]
dims = st.one_of(st.integers(-3, 8), st.sampled_from([0, 2**31, 2**62, 2**63, 2**64, 10**30]))
shapes = st.one_of(st.lists(dims, max_size=6), st.lists(st.just(1), min_size=30, max_size=70),
                   st.none(), st.text(max_size=3), st.lists(st.floats(allow_nan=False), max_size=3))
scalars = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.text(max_size=4), st.none())
data = st.recursive(st.lists(scalars, max_size=8), lambda inner: st.lists(inner, max_size=3), max_leaves=24)
# Derandomized (the same examples each run, as every test here is deterministic) and no example
# database written into the work tree.
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
                database=None)


def _client_error(call: Any) -> None:
    """Decoding succeeds or fails with a 4xx error; any other exception fails the test (it would be a 500)."""
    failure: PierError | None = None
    try:
        call()
    except PierError as exc:
        failure = exc
    assert failure is None or 400 <= http_status(failure) < 500, failure


@FUZZ
@given(shape=shapes, datatype=st.sampled_from(DATATYPES), values=st.one_of(data, scalars))
def test_fuzz_v2_json(shape: Any, datatype: str, values: Any) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": values}]}).encode()
    _client_error(lambda: v2_json.decode_request(body, max_elements=10_000))


@FUZZ
@given(shape=shapes, datatype=st.sampled_from(DATATYPES), raw=st.binary(max_size=64),
       size=st.one_of(st.integers(-2, 80), st.none(), st.text(max_size=2)))
def test_fuzz_v2_binary(shape: Any, datatype: str, raw: bytes, size: Any) -> None:
    entry = {"name": "x", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}
    body, length = _binary([entry], raw)
    _client_error(lambda: v2_binary.decode_request(body, length, max_elements=10_000))


@FUZZ
@given(shape=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-2, 8)), max_size=6),
       datatype=st.sampled_from(DATATYPES), raw=st.one_of(st.none(), st.binary(max_size=64)),
       ints=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8))
def test_fuzz_v2_grpc(shape: list[int], datatype: str, raw: bytes | None, ints: list[int]) -> None:
    message = _grpc(shape, datatype, raw)
    message.inputs[0].contents.int_contents.extend(ints)
    _client_error(lambda: v2_grpc.decode_request(message, max_elements=10_000))


@FUZZ
@given(rows=st.one_of(data, scalars, st.dictionaries(st.text(max_size=2), data, max_size=2)),
       names=st.sampled_from([["x"], ["a", "b"], []]))
def test_fuzz_kserve_v1(rows: Any, names: list[str]) -> None:
    body = json.dumps({"instances": rows}).encode()
    _client_error(lambda: kserve_v1.decode_request(body, names, max_elements=10_000))


@FUZZ
@given(shape=shapes, values=st.one_of(data, scalars), kind=st.sampled_from(["tensor", "ndarray", "jsonData"]))
def test_fuzz_seldon(shape: Any, values: Any, kind: str) -> None:
    doc: dict[str, Any] = {"jsonData": values} if kind == "jsonData" else \
        {"data": {"tensor": {"shape": shape, "values": values}}} if kind == "tensor" else {"data": {"ndarray": values}}
    _client_error(lambda: seldon.decode_request(json.dumps(doc).encode(), ["x"], max_elements=10_000))


# -- fuzz: the whole HTTP path (decode, validate, batch, predict, encode) never answers 5xx -----------
class Steady(Doubler):
    """Doubler without its deliberate bug (negative inputs): any 5xx left is the server's."""

    def predict(self, inputs: dict[str, Any], outputs: frozenset[str] | None = None) -> dict[str, Any]:
        x = inputs["x"]
        return {"y": x * 2, "label": (x.sum(axis=1) > 3).astype(np.int64)}


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    loop = asyncio.new_event_loop()
    server = serve(Steady(), max_request_elements=10_000)
    loop.run_until_complete(server.repository.load_all())
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=server.http), base_url="http://test")
    yield loop, http
    loop.run_until_complete(http.aclose())
    loop.close()


def _status(client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient], path: str, content: bytes,
            headers: dict[str, str] | None = None) -> int:
    loop, http = client
    return loop.run_until_complete(http.post(path, content=content, headers=headers)).status_code


@FUZZ
@given(shape=shapes, datatype=st.sampled_from(DATATYPES), values=st.one_of(data, scalars),
       binary=st.booleans())
def test_fuzz_the_http_path_never_answers_5xx(client: Any, shape: Any, datatype: str, values: Any,
                                              binary: bool) -> None:
    if binary:
        raw = struct.pack("<I", 1) + b"a" if datatype == "BYTES" else b"\0" * 16
        body, length = _binary([{"name": "x", "shape": shape, "datatype": datatype,
                                 "parameters": {"binary_data_size": len(raw)}}], raw)
        status = _status(client, "/v2/models/m/infer", body, {"inference-header-content-length": str(length)})
    else:
        body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": values}]}).encode()
        status = _status(client, "/v2/models/m/infer", body)
    assert status < 500
    assert _status(client, "/v1/models/m:predict", json.dumps({"instances": values}).encode()) < 500
    seldon_doc = {"data": {"tensor": {"shape": shape, "values": values}}}
    assert _status(client, "/api/v1.0/predictions", json.dumps(seldon_doc).encode()) < 500
