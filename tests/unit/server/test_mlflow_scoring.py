"""MLflow's scoring protocol codec: every body format, frames as columns or one matrix, bad bodies named."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelpier.errors import InvalidInput, PayloadTooLarge
from modelpier.server.codecs.mlflow_scoring import decode_request, encode_error, encode_response
from modelpier.server.types import InferenceResponse, OutputTensor

COLUMNS = ["a", "b"]


def decode(body: object, names: list[str] = COLUMNS, **kw: int) -> dict[str, list[object]]:
    request = decode_request(orjson.dumps(body), "application/json", names, **kw)
    return {k: v.tolist() for k, v in request.inputs.items()}


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}},
    {"dataframe_split": {"data": [[1, 2], [3, 4]]}},  # unnamed: the signature's columns, in order
    {"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]},
    {"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]},
    {"inputs": {"a": [1, 3], "b": [2, 4]}},
])
def test_frames_and_named_tensors_become_one_input_per_column(body: object) -> None:
    assert decode(body) == {"a": [1, 3], "b": [2, 4]}


def test_a_one_input_model_takes_the_frame_as_one_matrix() -> None:
    assert decode({"dataframe_split": {"columns": ["x", "y"], "data": [[1, 2]]}}, ["input-0"]) == \
        {"input-0": [[1, 2]]}
    assert decode({"inputs": [[1.5, 2.5]]}, ["t"]) == {"t": [[1.5, 2.5]]}
    assert decode({"instances": [[1, 2]]}, ["t"]) == {"t": [[1, 2]]}


def test_csv_with_a_header_row_and_params() -> None:
    request = decode_request(b"a,b\n1,2.5\n3,x\n", "text/csv; charset=utf-8", COLUMNS)
    assert {k: v.tolist() for k, v in request.inputs.items()} == {"a": [1, 3], "b": ["2.5", "x"]}
    with_params = decode_request(orjson.dumps({"inputs": [[1]], "params": {"k": 1}}), "application/json", ["t"])
    assert with_params.parameters == {"k": 1}


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "exactly one of"),
    ({"inputs": [1], "instances": [1]}, "got instances, inputs"),
    ({"dataframe_split": {"columns": ["a"]}}, "dataframe_split must be"),
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "needs 2 values"),
    ({"dataframe_records": [{"a": 1}, {"b": 2}]}, "row 1 lacks column 'a'"),
    ({"dataframe_records": []}, "non-empty list of objects"),
    ({"inputs": {}}, "empty object"),
    ({"inputs": [[1, 2], [3]]}, "ragged"),
    ({"inputs": [1], "params": [1]}, "params must be an object"),
])
def test_bad_bodies_name_the_problem(body: object, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment.replace("(", r"\(")):
        decode(body)


def test_the_element_budget_holds() -> None:
    with pytest.raises(PayloadTooLarge):
        decode({"inputs": {"a": list(range(50)), "b": list(range(60))}}, max_elements=100)


def test_answers_like_mlflow() -> None:
    one = InferenceResponse("m", None, [OutputTensor("predict", "INT64", np.array([0, 2]))])
    assert orjson.loads(encode_response(one)) == {"predictions": [0, 2]}
    two = InferenceResponse("m", None, [OutputTensor("p", "INT64", np.array([1])),
                                        OutputTensor("q", "BYTES", np.array(["x"], dtype=object))])
    assert orjson.loads(encode_response(two)) == {"predictions": {"p": [1], "q": ["x"]}}
    assert orjson.loads(encode_error(400, "bad")) == {"error_code": "BAD_REQUEST", "message": "bad"}
