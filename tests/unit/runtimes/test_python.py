from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.registry.domain import Flavor
from modelpier.runtimes.loader import guess_flavor, load_runtime
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import TensorSpec

USER_MODULE = '''
from pathlib import Path

import numpy as np


class Scaler:
    """Multiplies ``x`` by a factor kept in an artifact file."""

    def __init__(self, artifacts=None):
        self.artifacts = artifacts or {}
        self.factor = None

    def load(self, path):
        self.factor = float((Path(path) / "factor.txt").read_text())

    def predict(self, inputs):
        if "x" not in inputs:
            raise KeyError("x")
        return {"y": np.asarray(inputs["x"]) * self.factor}


class Summer:
    def load(self, path):
        pass

    def predict(self, inputs):
        return sum(np.asarray(v) for v in inputs.values())


class Broken:
    def load(self, path):
        raise RuntimeError("weights missing")

    def predict(self, inputs):
        return inputs
'''


def user_module(tmp_path: Path) -> Any:
    """The user's module, imported from a file as a user's training script would."""
    file = tmp_path / "user_models.py"
    file.write_text(textwrap.dedent(USER_MODULE))
    spec = importlib.util.spec_from_file_location("user_models_for_test", file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def module(tmp_path: Path) -> Any:
    yield user_module(tmp_path)
    sys.modules.pop("user_models_for_test", None)


def test_user_class_round_trip(module: Any, tmp_path: Path) -> None:
    (tmp_path / "factor.txt").write_text("2.5")
    obj = module.Scaler(artifacts={"factor.txt": tmp_path / "factor.txt"})
    packaged = package_model(obj, tmp_path / "m", input_example={"x": [[1.0, 2.0]]})
    assert packaged.flavor is Flavor.PYTHON
    assert sorted(p.name for p in packaged.directory.iterdir()) == ["factor.txt", "model.py", "python-model.json"]
    assert json.loads((packaged.directory / "python-model.json").read_text()) == {"class": "Scaler"}
    assert packaged.signature is not None
    assert packaged.signature.inputs == (TensorSpec(name="x", datatype="FP64", shape=(-1, 2)),)
    assert packaged.signature.outputs == (TensorSpec(name="y", datatype="FP64", shape=(-1, 2)),)
    runtime = load_runtime("python", packaged.directory, packaged.signature)
    out = runtime.predict({"x": np.array([[1, 2], [3, 4]])})
    np.testing.assert_allclose(out["y"], [[2.5, 5.0], [7.5, 10.0]])
    # Loaded from model.py under a private name, not the user's module from sys.path.
    assert type(runtime.native).__module__.startswith("modelpier_user_model_")
    assert guess_flavor(packaged.directory) is Flavor.PYTHON


def test_an_array_result_is_named_predict(module: Any, tmp_path: Path) -> None:
    runtime = load_runtime("python", package_model(module.Summer(), tmp_path / "m").directory)
    out = runtime.predict({"a": np.array([1, 2]), "b": np.array([10, 20])})
    np.testing.assert_array_equal(out["predict"], [11, 22])


def test_a_folder_in_python_layout_is_packaged_as_is(module: Any, tmp_path: Path) -> None:
    source = package_model(module.Summer(), tmp_path / "src").directory
    (source / "extra.bin").write_bytes(b"\x00")
    packaged = package_model(source, tmp_path / "copy")
    assert packaged.flavor is Flavor.PYTHON
    assert (packaged.directory / "extra.bin").is_file()


def test_inputs_are_checked_against_the_signature(module: Any, tmp_path: Path) -> None:
    (tmp_path / "factor.txt").write_text("1")
    obj = module.Scaler(artifacts={"factor.txt": tmp_path / "factor.txt"})
    packaged = package_model(obj, tmp_path / "m", input_example={"x": [[1.0, 2.0]]})
    runtime = load_runtime("python", packaged.directory, packaged.signature)
    with pytest.raises(InvalidInput, match=r"input 'x': expected shape \[-1, 2\], got \[1, 3\]"):
        runtime.predict({"x": np.ones((1, 3))})
    unchecked = load_runtime("python", packaged.directory)
    with pytest.raises(InvalidInput, match="the model rejected the inputs"):
        unchecked.predict({"z": np.ones((1, 2))})


def test_failures_while_loading_are_invalid_artifacts(module: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match=r"Broken.load\(.*\) failed: RuntimeError: weights missing"):
        package_model(module.Broken(), tmp_path / "m")
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "model.py").write_text("x = 1\n")
    (folder / "python-model.json").write_text('{"class": "Nope"}')
    with pytest.raises(InvalidArtifact, match="defines no class 'Nope'"):
        load_runtime("python", folder)
    (folder / "model.py").write_text("raise ImportError('no torch here')\n")
    with pytest.raises(InvalidArtifact, match=r"importing .*model\.py failed: ImportError"):
        load_runtime("python", folder)
    (folder / "python-model.json").write_text("[]")
    with pytest.raises(InvalidArtifact, match="malformed"):
        load_runtime("python", folder)


def test_classes_from_main_cannot_be_saved(tmp_path: Path) -> None:
    class Local:
        def load(self, path: Path) -> None: ...

        def predict(self, inputs: dict[str, Any]) -> Any:
            return inputs

    Local.__module__ = "__main__"
    with pytest.raises(InvalidArtifact, match="defined in __main__"):
        package_model(Local(), tmp_path / "m")
