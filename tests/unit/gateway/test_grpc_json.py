"""V2 gRPC inference messages decoded to the V2 JSON shape (pure), and compared as the shadow does."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from modelpier.gateway.compare import Comparison, compare_answers
from modelpier.gateway.grpc_json import infer_request_json, infer_response_json, raw_values
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb


def response(labels: list[int], probabilities: list[float] | None = None, *, raw: bool = False) -> bytes:
    message = pb.ModelInferResponse(model_name="iris", model_version="2", id="r-1")
    label = message.outputs.add(name="predict", datatype="INT64", shape=[len(labels)])
    tensors: list[tuple[Any, str, list[Any]]] = [(label, "q", labels)]
    if probabilities is not None:
        proba = message.outputs.add(name="proba", datatype="FP64", shape=[len(probabilities)])
        tensors.append((proba, "d", probabilities))
    for tensor, fmt, values in tensors:
        if raw:
            message.raw_output_contents.append(struct.pack(f"<{len(values)}{fmt}", *values))
        elif fmt == "q":
            tensor.contents.int64_contents.extend(values)
        else:
            tensor.contents.fp64_contents.extend(values)
    return bytes(message.SerializeToString())


@pytest.mark.parametrize("raw", [False, True])
def test_a_response_decodes_to_v2_json_from_contents_or_raw(raw: bool) -> None:
    assert infer_response_json(response([0, 2], [0.25, 0.5], raw=raw)) == {
        "model_name": "iris", "model_version": "2", "id": "r-1", "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 2]},
            {"name": "proba", "datatype": "FP64", "shape": [2], "data": [0.25, 0.5]}]}


def test_a_request_decodes_with_its_inputs_parameters_and_requested_outputs() -> None:
    message = pb.ModelInferRequest(model_name="iris", id="q-1")
    tensor = message.inputs.add(name="input-0", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([1.5, 2.0])
    words = message.inputs.add(name="words", datatype="BYTES", shape=[2])
    words.contents.bytes_contents.extend([b"hello", "héllo".encode()])
    message.parameters["priority"].int64_param = 3
    message.outputs.add(name="predict")
    assert infer_request_json(message.SerializeToString()) == {
        "model_name": "iris", "id": "q-1", "parameters": {"priority": 3},
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.0]},
                   {"name": "words", "datatype": "BYTES", "shape": [2], "data": ["hello", "héllo"]}],
        "outputs": [{"name": "predict"}]}


@pytest.mark.parametrize(("raw", "datatype", "values"), [
    (struct.pack("<3?", True, False, True), "BOOL", [True, False, True]),
    (struct.pack("<2b", -1, 7), "INT8", [-1, 7]),
    (struct.pack("<2H", 1, 65535), "UINT16", [1, 65535]),
    (struct.pack("<2e", 0.5, -2.0), "FP16", [0.5, -2.0]),
    (struct.pack("<2f", 0.5, 1.5), "FP32", [0.5, 1.5]),
    (struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0), "BYTES", ["ab", ""]),
    (b"", "INT32", []),
])
def test_raw_values_by_datatype(raw: bytes, datatype: str, values: list[Any]) -> None:
    assert raw_values(raw, datatype) == values


@pytest.mark.parametrize(("raw", "datatype", "message"), [
    (b"\x00\x01\x02", "INT32", "not a whole number"), (struct.pack("<I", 9) + b"ab", "BYTES", "runs past"),
    (b"\x01\x00", "BYTES", "ends inside"), (b"", "NOPE", "unknown datatype")])
def test_raw_values_that_do_not_fit_are_refused(raw: bytes, datatype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        raw_values(raw, datatype)


def test_what_does_not_parse_is_none() -> None:
    assert infer_response_json(b"\xff\xff garbage") is None
    assert infer_request_json(b"\xff\xff garbage") is None
    broken = pb.ModelInferResponse(model_name="iris")
    broken.outputs.add(name="predict", datatype="INT64", shape=[1])
    broken.raw_output_contents.append(b"\x01\x02\x03")  # 3 bytes is no INT64
    assert infer_response_json(broken.SerializeToString()) is None


@pytest.mark.parametrize(("primary", "shadow", "expected"), [
    (response([0, 2]), response([0, 2], raw=True), Comparison("class", agreed=True)),
    (response([0, 2]), response([0, 1]), Comparison("class", agreed=False)),
    (response([], [0.25, 0.5]), response([], [0.5, 0.5]), Comparison("class", agreed=True)),  # labels first
    (response([0]), b"\xff\xff garbage", None),
])
def test_grpc_answers_compare_like_v2_json(primary: bytes, shadow: bytes, expected: Comparison | None) -> None:
    assert compare_answers(primary, shadow, protocol="grpc") == expected


def test_float_outputs_compare_by_mean_absolute_difference() -> None:
    def floats(values: list[float]) -> bytes:
        message = pb.ModelInferResponse(model_name="m")
        message.outputs.add(name="y", datatype="FP64", shape=[len(values)]).contents.fp64_contents.extend(values)
        return bytes(message.SerializeToString())
    result = compare_answers(floats([1.0, 2.0]), floats([1.5, 2.0]), protocol="grpc")
    assert result == Comparison("numeric", abs_error=0.25)
