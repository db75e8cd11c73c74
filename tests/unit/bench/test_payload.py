"""Request bodies: a JSON file checked before the load, or a V2 request from an input example."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpier.bench.payload import read_body, v2_request
from modelpier.errors import InvalidInput


def test_lone_example_takes_the_signature_name_and_datatype() -> None:
    body = v2_request([[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2]], [("input-0", "FP32")])
    assert body == {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                "data": [5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, 0.2]}]}
    onnx = v2_request([[1.0, 2.0]], [("float_input", "FP32")])
    assert onnx["inputs"][0]["name"] == "float_input"


@pytest.mark.parametrize(("value", "datatype", "shape"), [
    ([[1, 2], [3, 4]], "INT64", [2, 2]),
    ([0.5, 1.5], "FP64", [2]),
    ([True, False], "BOOL", [2]),
    (["a", "b"], "BYTES", [2]),
    (7, "INT64", [1]),
])
def test_datatype_and_shape_inferred_without_a_signature(value: object, datatype: str, shape: list[int]) -> None:
    tensor = v2_request(value)["inputs"][0]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input-0", datatype, shape)


def test_named_inputs_keep_their_names() -> None:
    body = v2_request({"age": [[30], [40]], "city": [["x"], ["y"]]}, [("age", "INT32"), ("city", "BYTES")])
    assert [(t["name"], t["datatype"], t["shape"]) for t in body["inputs"]] == [
        ("age", "INT32", [2, 1]), ("city", "BYTES", [2, 1])]


def test_no_example_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="no input example"):
        v2_request(None)


def test_data_file_must_exist_and_be_json(tmp_path: Path) -> None:
    good = tmp_path / "body.json"
    good.write_text('{"inputs": []}')
    assert read_body(good) == b'{"inputs": []}'
    with pytest.raises(InvalidInput, match="no such file"):
        read_body(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("inputs: [")
    with pytest.raises(InvalidInput, match="is not JSON"):
        read_body(bad)
