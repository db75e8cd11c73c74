from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import Signature, TensorSpec

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
B = np.array([0.5, -1.0, 2.0], dtype=np.float32)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def linear_model() -> onnx.ModelProto:
    """y = x @ W + B with a symbolic batch dimension."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    return _model(graph)


def two_input_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "add",
        [helper.make_tensor_value_info("a", TensorProto.INT64, [None, 2]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [None, 2])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, [None, 2])],
    )
    return _model(graph)


def test_linear_model_from_a_model_proto(tmp_path: Path) -> None:
    packaged = package_model(linear_model(), tmp_path / "m", input_example=np.ones((2, 4), np.float32))
    assert packaged.signature == Signature(
        inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),),
        outputs=(TensorSpec(name="y", datatype="FP32", shape=(-1, 3)),),
    )
    runtime = load_runtime("onnx", packaged.directory, packaged.signature,
                           options={"intra_op_num_threads": 1})
    x = np.random.default_rng(0).random((5, 4))
    out = runtime.predict({"whatever": x})  # float64 is cast to the graph's float32
    np.testing.assert_allclose(out["y"], x.astype(np.float32) @ W + B, rtol=1e-5)
    assert out["y"].shape == (5, 3)


def test_from_an_onnx_file_path(tmp_path: Path) -> None:
    onnx.save_model(linear_model(), str(tmp_path / "linear.onnx"))
    packaged = package_model(tmp_path / "linear.onnx", tmp_path / "m")
    assert (packaged.directory / "model.onnx").is_file()
    out = load_runtime("onnx", packaged.directory).predict({"x": np.ones((1, 4), dtype=np.int64)})
    np.testing.assert_allclose(out["y"][0], W.sum(axis=0) + B, rtol=1e-5)


def test_several_inputs_are_matched_by_name(tmp_path: Path) -> None:
    runtime = load_runtime("onnx", package_model(two_input_model(), tmp_path / "m").directory)
    assert [i.name for i in runtime.signature.inputs] == ["a", "b"]
    out = runtime.predict({"b": np.array([[1, 2]]), "a": np.array([[10, 20]])})
    np.testing.assert_array_equal(out["sum"], [[11, 22]])
    with pytest.raises(InvalidInput, match=r"takes inputs \['a', 'b'\]; missing \['b'\], unknown \['c'\]"):
        runtime.predict({"a": np.array([[1, 2]]), "c": np.array([[1, 2]])})
    with pytest.raises(InvalidInput, match=r"input 'a': expected INT64 values of shape \[-1, 2\], got float64"):
        runtime.predict({"a": np.array([[1.5, 2.0]]), "b": np.array([[1, 2]])})


def test_wrong_feature_count_names_input_and_shapes(tmp_path: Path) -> None:
    runtime = load_runtime("onnx", package_model(linear_model(), tmp_path / "m").directory)
    with pytest.raises(InvalidInput, match=r"input 'x': expected shape \[-1, 4\], got \[2, 3\]"):
        runtime.predict({"x": np.ones((2, 3), np.float32)})


def test_invalid_models_and_files(tmp_path: Path) -> None:
    broken = helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="nowhere")], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]), opset_imports=[])
    with pytest.raises(InvalidArtifact, match="does not validate"):
        package_model(broken, tmp_path / "m")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(InvalidArtifact, match="cannot load"):
        load_runtime("onnx", tmp_path / "f")
