from __future__ import annotations

import numpy as np
import pytest

from modelpier.errors import InvalidInput
from modelpier.server.validation import InputValidator
from modelpier.spec.signature import Signature, TensorSpec

ONE = Signature(inputs=(TensorSpec(name="x", datatype="FP64", shape=(-1, 4)),))
TWO = Signature(inputs=(TensorSpec(name="a", datatype="FP32", shape=(-1, 2)),
                        TensorSpec(name="b", datatype="INT64", shape=(-1,))))


def test_a_single_input_model_takes_a_lone_tensor_under_any_name() -> None:
    checked, rows = InputValidator(ONE).check({"input-0": np.ones((3, 4))})
    assert list(checked) == ["x"]
    assert rows == 3


def test_safe_casts_are_applied() -> None:
    checked, _ = InputValidator(ONE).check({"x": np.ones((1, 4), dtype=np.int64)})
    assert checked["x"].dtype == np.float64


@pytest.mark.parametrize(("inputs", "words"), [
    ({"x": np.ones((1, 3))}, ["'x'", "[-1, 4]", "[1, 3]"]),
    ({"x": np.ones(4)}, ["'x'", "[-1, 4]", "[4]"]),
    ({"x": np.array([["a", "b", "c", "d"]])}, ["'x'", "FP64"]),
])
def test_wrong_shape_or_datatype_names_the_input_and_the_expectation(inputs: dict[str, np.ndarray],
                                                                     words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        InputValidator(ONE).check(inputs)
    for word in words:
        assert word in info.value.message


def test_missing_input_is_named_with_its_datatype_and_shape() -> None:
    with pytest.raises(InvalidInput, match=r"missing input 'b' \(INT64 \[-1\]\)"):
        InputValidator(TWO).check({"a": np.ones((1, 2), dtype=np.float32)})


def test_unknown_input_is_named() -> None:
    with pytest.raises(InvalidInput, match="unknown input 'c'"):
        InputValidator(TWO).check({"a": np.ones((1, 2)), "b": np.ones(1, dtype=np.int64), "c": np.ones(1)})


def test_float_is_not_silently_truncated_to_int() -> None:
    with pytest.raises(InvalidInput, match=r"'b'.*INT64"):
        InputValidator(TWO).check({"a": np.ones((1, 2)), "b": np.array([1.5])})


def test_inputs_must_agree_on_the_batch_dimension() -> None:
    with pytest.raises(InvalidInput, match="same number of rows"):
        InputValidator(TWO).check({"a": np.ones((2, 2)), "b": np.ones(3, dtype=np.int64)})


def test_a_signature_without_inputs_passes_everything_through() -> None:
    inputs = {"anything": np.ones((5, 2))}
    checked, rows = InputValidator(Signature()).check(inputs)
    assert checked is inputs
    assert rows == 5


COLUMNS = Signature(inputs=tuple(TensorSpec(name=c, datatype="FP64", shape=(-1,)) for c in ("sl", "sw", "pl")))


def test_columns_of_one_datatype_come_as_one_matrix_or_one_input_each() -> None:
    validator = InputValidator(COLUMNS)
    matrix = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    checked, rows = validator.check({"input-0": matrix})
    assert rows == 2
    assert {k: v.tolist() for k, v in checked.items()} == {"sl": [1.0, 4.0], "sw": [2.0, 5.0], "pl": [3.0, 6.0]}
    # One input per column, as MLServer's and KServe's MLflow runtimes send them ([rows] or [rows, 1]).
    per_column, _ = validator.check({"sl": matrix[:, :1], "sw": matrix[:, 1], "pl": matrix[:, 2:]})
    assert {k: v.shape for k, v in per_column.items()} == {"sl": (2,), "sw": (2,), "pl": (2,)}
    with pytest.raises(InvalidInput, match=r"takes columns \['sl', 'sw', 'pl'\].*\[rows, 3\]; got \[2, 2\]"):
        validator.check({"input-0": matrix[:, :2]})


def test_columns_of_mixed_datatypes_need_one_input_each() -> None:
    mixed = Signature(inputs=(TensorSpec(name="a", datatype="FP64", shape=(-1,)),
                              TensorSpec(name="b", datatype="BYTES", shape=(-1,))))
    with pytest.raises(InvalidInput, match="missing input"):
        InputValidator(mixed).check({"input-0": np.zeros((2, 2))})
