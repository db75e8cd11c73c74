"""The python runtime: a user class with ``load(self, path)`` and ``predict(self, inputs)``.

The folder holds ``model.py`` (the class's source file), ``python-model.json`` naming the class,
and any files of the user's own, which ``load`` reads from the folder it is given. The module is
imported from the file under a private name, never from ``sys.path``. ``predict`` takes a dict of
arrays and returns a dict of arrays or one array (named ``predict``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.tensors import Array, input_checks, pick_named
from modelpier.spec.signature import Signature

MODULE_FILE = "model.py"
SIDECAR = "python-model.json"
DEFAULT_OUTPUT = "predict"


def is_python_model(obj: Any) -> bool:
    return callable(getattr(obj, "load", None)) and callable(getattr(obj, "predict", None))


def save(obj: Any, dest: Path) -> None:
    """Write the class's source file as ``model.py``, the sidecar, and ``obj.artifacts`` if any."""
    cls = type(obj)
    if cls.__module__ == "__main__":
        raise InvalidArtifact(
            f"{cls.__name__} is defined in __main__; define it in a module file of its own, "
            "which becomes the model's model.py"
        )
    source = inspect.getsourcefile(cls)
    if source is None or not Path(source).is_file():
        raise InvalidArtifact(f"cannot find the source file of {cls.__qualname__}")
    shutil.copyfile(source, dest / MODULE_FILE)
    (dest / SIDECAR).write_text(json.dumps({"class": cls.__qualname__}, indent=2))
    artifacts = getattr(obj, "artifacts", None)
    if isinstance(artifacts, Mapping):
        for name, file in artifacts.items():
            target = dest / str(name)
            if target.name in (MODULE_FILE, SIDECAR) or target.parent != dest:
                raise InvalidArtifact(f"artifact name {name!r} must be a plain file name, not {MODULE_FILE}")
            copy = shutil.copytree if Path(file).is_dir() else shutil.copyfile
            copy(file, target)


def load_class(folder: Path) -> type[Any]:
    """Import ``model.py`` from ``folder`` and return the class the sidecar names."""
    sidecar, module_file = folder / SIDECAR, folder / MODULE_FILE
    if not sidecar.is_file() or not module_file.is_file():
        raise InvalidArtifact(f"{folder} needs {SIDECAR} and {MODULE_FILE} to hold a python model")
    try:
        qualname = str(json.loads(sidecar.read_text())["class"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArtifact(f"malformed {sidecar}: expected {{\"class\": \"Name\"}} ({exc})") from None
    # A name unique per folder, so two versions of one model do not share a module.
    digest = hashlib.sha256(str(module_file.resolve()).encode()).hexdigest()[:16]
    name = f"modelpier_user_model_{digest}"
    spec = importlib.util.spec_from_file_location(name, module_file)
    if spec is None or spec.loader is None:
        raise InvalidArtifact(f"cannot import {module_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code can raise anything while importing
        del sys.modules[name]
        raise InvalidArtifact(f"importing {module_file} failed: {type(exc).__name__}: {exc}") from exc
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise InvalidArtifact(f"{module_file} defines no class {qualname!r}")
    return found


class PythonRuntime:
    """Predicts with a user's python model class."""

    flavor: ClassVar[str] = "python"

    def __init__(self, model: Any, signature: Signature | None = None) -> None:
        if not is_python_model(model):
            raise InvalidArtifact(f"{type(model).__name__} needs load(path) and predict(inputs) methods")
        self._model = model
        self._predict: Callable[[dict[str, Array]], Any] = model.predict
        self._signature = signature or Signature()
        self._checks = input_checks(self._signature)
        outputs = self._signature.outputs
        self._single_output = outputs[0].name if len(outputs) == 1 else DEFAULT_OUTPUT

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> PythonRuntime:
        model_class = load_class(path)
        try:
            model = model_class()
            model.load(path)
        except Exception as exc:  # user code can raise anything while loading
            raise InvalidArtifact(
                f"{model_class.__name__}.load({str(path)!r}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(model, signature)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._model

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        if self._checks:
            arrays = pick_named(inputs, self._checks)
            inputs = {c.name: a for c, a in zip(self._checks, arrays, strict=True)}
        try:
            result = self._predict(inputs)
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"the model rejected the inputs {sorted(inputs)}: {exc}") from None
        if isinstance(result, Mapping):
            return {str(k): np.asarray(v) for k, v in result.items()}
        return {self._single_output: np.asarray(result)}
