"""Try-it bodies: V2 requests from stored input examples and signatures; edited bodies checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelpier.dashboard.tryit import example_request, format_request, infer_path, parse_request, pretty_response
from modelpier.errors import InvalidInput
from modelpier.spec.signature import Signature

IRIS = Signature.model_validate({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
                                 "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}]})


def test_a_lone_tensor_example_uses_the_signatures_input_and_datatype() -> None:
    example = [[5.099999904632568, 3.5, 1.399999976158142, 0.20000000298023224], [4.9, 3.0, 1.4, 0.2]]
    assert example_request(IRIS, example) == {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                                          "data": [5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, 0.2]}]}


def test_a_mapping_example_makes_one_tensor_per_input() -> None:
    signature = Signature.model_validate({"inputs": [{"name": "age", "datatype": "INT64", "shape": [-1]},
                                                     {"name": "city", "datatype": "BYTES", "shape": [-1]}]})
    body = example_request(signature, {"age": [31, 40], "city": ["Oslo", "Rome"]})
    assert body == {"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 40]},
                               {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["Oslo", "Rome"]}]}


@pytest.mark.parametrize(("example", "datatype"), [([[1, 2]], "INT64"), ([True, False], "BOOL"), (["a"], "BYTES"),
                                                   ([[0.5, 1]], "FP32")])
def test_without_a_signature_the_datatype_is_guessed(example: Any, datatype: str) -> None:
    tensor = example_request(None, example)["inputs"][0]
    assert (tensor["name"], tensor["datatype"]) == ("input-0", datatype)


def test_without_an_example_zeros_follow_the_signature() -> None:
    assert example_request(IRIS, None) == {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                                       "data": [0, 0, 0, 0]}]}
    assert example_request(None, None)["inputs"][0]["name"] == "input-0"


def test_the_formatted_body_is_the_same_json_with_one_line_per_tensor() -> None:
    body = example_request(IRIS, [[1.0, 2.0, 3.0, 4.0]])
    text = format_request({**body, "parameters": {"x": 1}})
    assert json.loads(text) == {**body, "parameters": {"x": 1}}
    assert len(text.splitlines()) == 6


@pytest.mark.parametrize(("text", "problem"), [
    ("{", "not valid JSON"),
    ("[]", "non-empty \"inputs\""),
    ('{"inputs": []}', "non-empty \"inputs\""),
    ('{"inputs": [1]}', "inputs[0] must be an object"),
    ('{"inputs": [{"name": "x", "shape": [1]}]}', "inputs[0] is missing datatype, data"),
    ("x" * (1024 * 1024 + 1), "over 1048576 bytes"),
])
def test_bad_edited_bodies_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_request(text)


def test_helpers() -> None:
    assert parse_request('{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}')["inputs"]
    assert infer_path("iris") == "/v2/models/iris/infer"
    assert pretty_response(b'{"a":1}') == '{\n  "a": 1\n}'
    answer = {"model_name": "iris", "outputs": [{"name": "predict", "shape": [2], "data": [0, 0]}], "e": {}}
    text = pretty_response(json.dumps(answer).encode())
    assert json.loads(text) == answer
    assert '"data": [0, 0]' in text
    assert pretty_response(b"Internal Server Error") == "Internal Server Error"
