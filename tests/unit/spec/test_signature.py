import numpy as np
import pytest
from pydantic import ValidationError

from modelpier.spec.signature import Signature, TensorSpec, numpy_dtype, v2_datatype


@pytest.mark.parametrize(("dtype", "v2"), [
    (np.float32, "FP32"), (np.float64, "FP64"), (np.int64, "INT64"), (np.bool_, "BOOL"),
    (np.uint8, "UINT8"), (np.float16, "FP16"), (np.dtype("U5"), "BYTES"), (object, "BYTES"),
])
def test_numpy_to_v2_and_back(dtype: object, v2: str) -> None:
    assert v2_datatype(dtype) == v2
    if v2 != "BYTES":
        assert numpy_dtype(v2) == np.dtype(dtype)


def test_unknown_datatype_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown datatype 'FLOAT'"):
        numpy_dtype("FLOAT")


def test_complex_numbers_have_no_v2_type() -> None:
    with pytest.raises(ValueError, match="no Open Inference Protocol datatype"):
        v2_datatype(np.complex64)


@pytest.mark.parametrize(("spec", "shape", "ok"), [
    ((-1, 4), (10, 4), True), ((-1, 4), (1, 4), True), ((-1, 4), (10, 3), False),
    ((-1, 4), (10,), False), ((-1, -1), (2, 9), True),
])
def test_accepts_shape(spec: tuple[int, ...], shape: tuple[int, ...], ok: bool) -> None:
    assert TensorSpec(name="x", datatype="FP32", shape=spec).accepts_shape(shape) is ok


def test_shape_dimensions_must_be_positive_or_minus_one() -> None:
    with pytest.raises(ValidationError, match="positive size or -1"):
        TensorSpec(name="x", datatype="FP32", shape=(-1, 0))


def test_tensor_names_are_unique() -> None:
    t = TensorSpec(name="x", datatype="FP32", shape=(-1,))
    with pytest.raises(ValidationError, match="repeated: \\['x'\\]"):
        Signature(inputs=(t, t))


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Signature.model_validate({"inputs": [], "outputs": [], "extras": 1})
