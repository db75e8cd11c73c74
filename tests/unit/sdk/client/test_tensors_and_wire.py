"""Caller data to named tensors, each protocol's bodies, and answers back to arrays (pure)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from modelpier.errors import InvalidInput, RemoteError
from modelpier.sdk.client import wire
from modelpier.sdk.client.tensors import ModelInfo, Prediction, TensorInfo, encode_inputs, frame_of

IRIS = ModelInfo("iris", inputs=(TensorInfo("input-0", "FP32", (-1, 4)),),
                 outputs=(TensorInfo("predict", "INT64", (-1,)),))
COLUMNS = ModelInfo("m", inputs=(TensorInfo("age", "INT64", (-1,)), TensorInfo("city", "BYTES", (-1, 1))),
                    outputs=(TensorInfo("score", "FP64", (-1,)),))


def test_an_array_is_the_one_input_cast_to_its_declared_datatype() -> None:
    (t,) = encode_inputs(np.ones((2, 4)), IRIS).tensors
    assert (t.name, t.datatype, t.array.dtype, t.array.shape) == ("input-0", "FP32", np.float32, (2, 4))


def test_lists_and_dicts() -> None:
    assert encode_inputs([[1, 2, 3, 4]], IRIS).tensors[0].array.dtype == np.float32
    (t,) = encode_inputs({"input-0": [[1, 2, 3, 4]]}, IRIS).tensors
    assert t.datatype == "FP32"
    with pytest.raises(InvalidInput, match="unknown input 'x'"):
        encode_inputs({"x": [1]}, IRIS)


def test_without_metadata_the_datatype_follows_numpy() -> None:
    (t,) = encode_inputs(np.ones((1, 2), dtype=np.int32), None).tensors
    assert (t.name, t.datatype) == ("input-0", "INT32")
    (s,) = encode_inputs([["a", "b"]], None).tensors
    assert s.datatype == "BYTES"


def test_several_inputs_need_names() -> None:
    with pytest.raises(InvalidInput, match="pass a dict"):
        encode_inputs(np.ones((1, 2)), COLUMNS)


def test_scalars_and_ragged_rows_are_refused() -> None:
    with pytest.raises(InvalidInput, match="scalar"):
        encode_inputs(3.0, IRIS)
    with pytest.raises(InvalidInput, match="input-0"):
        encode_inputs([[1, 2], [3]], IRIS)


def test_a_dataframe_goes_one_input_per_column_when_the_signature_has_columns() -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "age": [30, 41]}, index=[7, 9])
    encoded = encode_inputs(frame, COLUMNS)
    by_name = {t.name: t for t in encoded.tensors}
    assert by_name["age"].array.tolist() == [30, 41]
    assert by_name["age"].datatype == "INT64"
    assert by_name["city"].array.shape == (2, 1)
    assert by_name["city"].datatype == "BYTES"
    with pytest.raises(InvalidInput, match=r"lacks the model's inputs \['city'\]"):
        encode_inputs(frame[["age"]], COLUMNS)


def test_a_dataframe_is_the_one_input_otherwise_and_comes_back_on_its_index() -> None:
    frame = pd.DataFrame(np.ones((2, 4)), columns=list("abcd"), index=["r1", "r2"])
    encoded = encode_inputs(frame, IRIS)
    assert encoded.tensors[0].array.shape == (2, 4)
    prediction = Prediction({"predict": np.array([0, 2]), "proba": np.array([[0.9, 0.1], [0.2, 0.8]])},
                            model_name="iris", request_id="r")
    out = frame_of(prediction, encoded)
    assert list(out.columns) == ["predict", "proba[0]", "proba[1]"]
    assert list(out.index) == ["r1", "r2"]
    assert out.attrs["request_id"] == "r"


@pytest.mark.parametrize("binary", [False, True])
def test_v2_request_and_response_round_trip(binary: bool) -> None:
    tensors = encode_inputs({"age": [1, 2], "city": [["a"], ["bé"]]}, COLUMNS).tensors
    body, length = wire.v2_request(tensors, binary=binary, outputs=["score"])
    head = orjson.loads(body if length is None else body[:length])
    assert [i["name"] for i in head["inputs"]] == ["age", "city"]
    if binary:
        assert head["parameters"] == {"binary_data_output": True}
        assert head["outputs"] == [{"name": "score", "parameters": {"binary_data": True}}]
        assert len(body) - length == sum(i["parameters"]["binary_data_size"] for i in head["inputs"])
    else:
        assert head["inputs"][1]["data"] == ["a", "bé"]
    # an answer with one output as JSON and one as raw bytes
    raw = np.array([0.5, 1.5]).tobytes()
    answer = orjson.dumps({"model_name": "m", "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
        {"name": "score", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": len(raw)}}]})
    outputs, doc = wire.v2_response(answer + raw, len(answer))
    assert outputs["score"].tolist() == [0.5, 1.5]
    assert outputs["label"].tolist() == ["x", "y"]
    assert doc["model_name"] == "m"


def test_raw_bytes_elements_round_trip() -> None:
    array = np.array([b"ab", b""], dtype=object)
    assert wire.raw_array(wire.raw_bytes(array), "BYTES", [2], "o").tolist() == [b"ab", b""]


def test_a_broken_answer_is_a_remote_error() -> None:
    with pytest.raises(RemoteError, match="not JSON"):
        wire.v2_response(b"<html>", None)
    with pytest.raises(RemoteError, match="do not fit"):
        wire.raw_array(b"abc", "FP32", [1], "o")


def test_kserve_v1_and_seldon_bodies() -> None:
    one = encode_inputs(np.array([[1.0, 2.0, 3.0, 4.0]]), IRIS).tensors
    assert orjson.loads(wire.kserve_v1_request(one)) == {"instances": [[1.0, 2.0, 3.0, 4.0]]}
    assert orjson.loads(wire.seldon_request(one)) == {"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}}
    two = encode_inputs({"age": [1], "city": [["a"]]}, COLUMNS).tensors
    assert orjson.loads(wire.kserve_v1_request(two)) == {"instances": [{"age": 1, "city": ["a"]}]}
    assert orjson.loads(wire.seldon_request(two)) == {"jsonData": {"age": [1], "city": [["a"]]}}
    assert wire.kserve_v1_response(b'{"predictions": [0, 2]}', IRIS)["predict"].tolist() == [0, 2]
    seldon = wire.seldon_response(b'{"data": {"names": ["p:0", "p:1"], "ndarray": [[0.1, 0.9]]}}')
    assert seldon["p"].tolist() == [[0.1, 0.9]]
    tensor = wire.seldon_response(b'{"data": {"names": ["y"], "tensor": {"shape": [1, 2], "values": [1, 2]}}}')
    assert tensor["y"].shape == (1, 2)
