"""Wire formats without a server: V2 JSON, binary tensor data, gRPC messages, KServe V1, Seldon."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelpier.errors import InvalidInput
from modelpier.server.codecs import kserve_v1, seldon, v2_binary, v2_grpc, v2_json
from modelpier.server.types import InferenceResponse, OutputTensor
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb


def test_v2_json_decodes_flat_and_nested_data() -> None:
    for data in ([1, 2, 3, 4], [[1, 2], [3, 4]]):
        body = v2_json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": data}]})
        request = v2_json.decode_request(body)
        assert request.inputs["x"].dtype == np.int32
        assert request.inputs["x"].tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(("doc", "message"), [
    ([], "JSON object"),
    ({"inputs": []}, "non-empty 'inputs'"),
    ({"inputs": [{"shape": [1]}]}, "'name'"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}, "'x' has no 'data'"),
    ({"inputs": [{"name": "x", "shape": "1", "datatype": "FP32", "data": [1]}]}, "'shape' must be a list"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}, "not a list of FP32"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": 1}]}, "must be a list"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}] * 2}, "appears twice"),
    ({"id": 3, "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}, "'id'"),
])
def test_v2_json_rejections_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v2_json.decode_request(v2_json.dumps(doc))


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array([True, False]), np.arange(4, dtype=np.uint16),
    np.array([b"ab", b"", "h\u00e9".encode()], dtype=object), np.arange(3, dtype=np.float16),
])
def test_raw_tensor_bytes_round_trip(array: np.ndarray) -> None:
    datatype = {"f": {4: "FP32", 2: "FP16"}, "b": {1: "BOOL"}, "u": {2: "UINT16"}, "O": {8: "BYTES"}}
    name = datatype[array.dtype.kind][array.dtype.itemsize]
    back = v2_binary.raw_to_array(v2_binary.array_to_raw(array), name, array.shape, array.size, "t")
    assert back.tolist() == array.tolist()


def test_raw_size_mismatch_names_the_input() -> None:
    with pytest.raises(InvalidInput, match=r"'t'.*needs 16 bytes, got 8"):
        v2_binary.raw_to_array(b"\0" * 8, "FP64", (2,), 2, "t")


def test_binary_request_with_a_json_input_beside_a_raw_one() -> None:
    raw = np.array([1.5, 2.5]).tobytes()
    header = v2_json.dumps({"inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}},
        {"name": "b", "shape": [1], "datatype": "INT64", "data": [7]},
    ]})
    request = v2_binary.decode_request(header + raw, len(header))
    assert request.inputs["a"].tolist() == [1.5, 2.5]
    assert request.inputs["b"].tolist() == [7]
    with pytest.raises(InvalidInput, match="not claimed"):
        v2_binary.decode_request(header + raw + b"x", len(header))


def _response() -> InferenceResponse:
    return InferenceResponse("m", "2", [OutputTensor("p", "INT64", np.array([1, 0])),
                                        OutputTensor("q", "FP16", np.array([0.5], dtype=np.float16))], id="r")


def test_grpc_typed_contents_round_trip() -> None:
    message = pb.ModelInferRequest(model_name="m", id="r")
    tensor = message.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    message.parameters["k"].int64_param = 3
    request, raw = v2_grpc.decode_request(pb.ModelInferRequest.FromString(message.SerializeToString()))
    assert not raw
    assert request.inputs["x"].tolist() == [[1.0, 2.0]]
    assert request.parameters == {"k": 3}
    encoded = v2_grpc.encode_response(_response(), raw=False)
    assert len(encoded.raw_output_contents) == 2  # FP16 forces raw for every output
    assert np.frombuffer(encoded.raw_output_contents[0], "<i8").tolist() == [1, 0]


def test_grpc_raw_count_must_match_inputs() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP32", shape=[1])
    message.raw_input_contents.extend([b"\0" * 4, b"\0" * 4])
    with pytest.raises(InvalidInput, match="2 raw_input_contents for 1 inputs"):
        v2_grpc.decode_request(message)


def test_kserve_v1_and_seldon_use_the_first_output() -> None:
    assert kserve_v1.encode_response(_response()) == b'{"predictions":[1,0]}'
    body = seldon.encode_response(_response(), "ndarray", {})
    assert v2_json.loads(body) == {"data": {"names": ["p"], "ndarray": [1, 0]}, "meta": {"requestPath": {"m": "2"}}}


def test_kserve_v1_multi_input_instances_are_objects() -> None:
    request = kserve_v1.decode_request(b'{"instances": [{"a": 1, "b": [1, 2]}]}', ["a", "b"])
    assert request.inputs["a"].tolist() == [1]
    assert request.inputs["b"].tolist() == [[1, 2]]
    with pytest.raises(InvalidInput, match="each instance must be an object"):
        kserve_v1.decode_request(b'{"instances": [[1, 2]]}', ["a", "b"])
