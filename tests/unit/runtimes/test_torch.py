from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime, prepare_plain_path
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import Signature, TensorSpec

# torch 2.13 deprecates TorchScript; tests build ScriptModules themselves, as users of this flavor do.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=1)


class Pair(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a * b


class VarArgs(nn.Module):
    """TorchScript cannot script *args, but tracing works."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.linear(xs[0])


def expected(module: nn.Module, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x.astype(np.float32))).numpy())


def test_script_module_round_trip(iris: Data, tmp_path: Path) -> None:
    net = Net()
    packaged = package_model(torch.jit.script(net), tmp_path / "m", input_example=iris[0][:3])
    assert packaged.signature == Signature(
        inputs=(TensorSpec(name="input-0", datatype="FP32", shape=(-1, 4)),),
        outputs=(TensorSpec(name="output-0", datatype="FP32", shape=(-1, 3)),),
    )
    runtime = load_runtime("torch", packaged.directory, packaged.signature)
    out = runtime.predict({"input-0": iris[0][:8]})  # float64 in, cast to the signature's float32
    np.testing.assert_allclose(out["output-0"], expected(net, iris[0][:8]), rtol=1e-5)


def test_plain_module_is_scripted_and_traced_when_it_must(iris: Data, tmp_path: Path) -> None:
    net = Net()
    runtime = load_runtime("torch", package_model(net, tmp_path / "a").directory)
    out = runtime.predict({"x": iris[0][:2]})  # no signature: fed in order, float32
    np.testing.assert_allclose(out["output-0"], expected(net, iris[0][:2]), rtol=1e-5)

    varargs = VarArgs()
    packaged = package_model(varargs, tmp_path / "b", input_example=iris[0][:2])
    out = load_runtime("torch", packaged.directory, packaged.signature).predict({"x": iris[0][:5]})
    np.testing.assert_allclose(out["output-0"], expected(varargs, iris[0][:5]), rtol=1e-5)


def test_read_only_request_buffers_are_accepted(tmp_path: Path) -> None:
    net = Net()
    runtime = load_runtime("torch", package_model(net, tmp_path / "m").directory)
    buffer = np.frombuffer(np.ones((2, 4), np.float32).tobytes(), dtype=np.float32).reshape(2, 4)
    assert not buffer.flags.writeable
    np.testing.assert_allclose(runtime.predict({"x": buffer})["output-0"], expected(net, buffer), rtol=1e-5)


def test_a_module_that_cannot_be_scripted_needs_an_example(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="no input example to trace it with"):
        package_model(VarArgs(), tmp_path / "m")


def test_several_inputs_and_outputs(tmp_path: Path) -> None:
    example = {"a": np.ones((2, 3), np.float32), "b": np.full((2, 3), 2, np.float32)}
    packaged = package_model(Pair(), tmp_path / "m", input_example=example)
    assert packaged.signature is not None
    assert [o.name for o in packaged.signature.outputs] == ["output-0", "output-1"]
    out = load_runtime("torch", packaged.directory, packaged.signature).predict(example)
    np.testing.assert_array_equal(out["output-0"], np.full((2, 3), 3))
    np.testing.assert_array_equal(out["output-1"], np.full((2, 3), 2))
    with pytest.raises(InvalidInput, match=r"takes inputs \['a', 'b'\]"):
        load_runtime("torch", packaged.directory, packaged.signature).predict({"a": example["a"]})


def test_bad_inputs(iris: Data, tmp_path: Path) -> None:
    packaged = package_model(Net(), tmp_path / "m", input_example=iris[0][:2])
    runtime = load_runtime("torch", packaged.directory, packaged.signature)
    with pytest.raises(InvalidInput, match=r"input 'x': expected shape \[-1, 4\], got \[2, 2\]"):
        runtime.predict({"x": iris[0][:2, :2]})
    unchecked = load_runtime("torch", packaged.directory)  # no signature: torch's own error, as InvalidInput
    with pytest.raises(InvalidInput, match="the model rejected the inputs"):
        unchecked.predict({"x": iris[0][:2, :2]})
    with pytest.raises(InvalidInput, match="numeric"):
        unchecked.predict({"x": np.array([["a"]])})


def test_plain_pt_file_and_unreadable_files(iris: Data, tmp_path: Path) -> None:
    torch.jit.save(torch.jit.script(Net()), str(tmp_path / "net.pth"))
    flavor, folder = prepare_plain_path(tmp_path / "net.pth", cache_dir=tmp_path)
    assert load_runtime(flavor, folder).predict({"x": iris[0][:1]})["output-0"].shape == (1, 3)
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(InvalidArtifact, match="not a TorchScript model folder"):
        load_runtime("torch", bad)
    (bad / "model.pt").write_bytes(b"nope")
    with pytest.raises(InvalidArtifact, match="cannot load"):
        load_runtime("torch", bad)
