"""The client's hand-written ModelInferRequest is the message protobuf would have written."""

from __future__ import annotations

import numpy as np
import pytest

from modelpier.sdk.client import grpc as g
from modelpier.sdk.client.tensors import encode_inputs
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb


@pytest.mark.parametrize(("data", "version", "outputs"), [
    (np.array([[5.1, 3.5, 1.4, 0.2]]), None, None),
    (np.zeros((300, 4), dtype=np.float32), "3", ["predict", "predict_proba"]),  # multi-byte varints
    ({"a": np.array([1, 2], dtype=np.int64), "b": np.array([["x"], ["yé"]], dtype=object)}, None, ["o"]),
])
def test_hand_written_request_equals_protobufs(data: object, version: str | None, outputs: list[str] | None) -> None:
    tensors = encode_inputs(data, None).tensors
    mine = pb.ModelInferRequest.FromString(g.infer_request("m", version, tensors, outputs=outputs, request_id="r"))
    reference = pb.ModelInferRequest.FromString(g._infer_request_message(
        "m", version, tensors, outputs=outputs, request_id="r", parameters={}))
    assert mine == reference
    assert [list(i.shape) for i in mine.inputs] == [list(t.array.shape) for t in tensors]


def test_parameters_go_through_protobuf() -> None:
    tensors = encode_inputs(np.ones((1, 2)), None).tensors
    message = pb.ModelInferRequest.FromString(g.infer_request("m", None, tensors, outputs=None, request_id="r",
                                                              parameters={"timeout": 5, "tag": "x", "flag": True}))
    assert message.parameters["timeout"].int64_param == 5
    assert message.parameters["tag"].string_param == "x"
    assert message.parameters["flag"].bool_param is True


def test_responses_raw_and_typed() -> None:
    raw = pb.ModelInferResponse(model_name="m", model_version="2", outputs=[
        pb.ModelInferResponse.InferOutputTensor(name="y", datatype="FP32", shape=[2])],
        raw_output_contents=[np.array([1.5, 2.5], dtype="<f4").tobytes()])
    outputs, name, version = g.infer_response(raw.SerializeToString())
    assert (outputs["y"].tolist(), name, version) == ([1.5, 2.5], "m", "2")
    typed = pb.ModelInferResponse(model_name="m", outputs=[pb.ModelInferResponse.InferOutputTensor(
        name="z", datatype="INT64", shape=[1, 2], contents=pb.InferTensorContents(int64_contents=[3, 4]))])
    outputs, _, _ = g.infer_response(typed.SerializeToString())
    assert outputs["z"].tolist() == [[3, 4]]


def test_the_deadline_travels_as_the_v2_timeout_parameter() -> None:
    tensors = encode_inputs(np.ones((1, 2)), None).tensors
    mine = pb.ModelInferRequest.FromString(g.infer_request("m", None, tensors, outputs=None, request_id="r",
                                                           timeout_us=1_500_000))
    assert mine.parameters["timeout"].int64_param == 1_500_000
    merged = pb.ModelInferRequest.FromString(g.infer_request("m", None, tensors, outputs=None, request_id="r",
                                                             parameters={"tag": "x"}, timeout_us=7))
    assert merged.parameters["timeout"].int64_param == 7
    assert merged.parameters["tag"].string_param == "x"
