"""The MLflow runtime: an MLflow model folder (``MLmodel`` plus the flavor's files).

A folder with a native flavor modelpier serves is served by modelpier's own runtime, with or without
MLflow installed: sklearn (``skops`` with the trusted types ``MLmodel`` records, ``pickle``,
``cloudpickle``), or the XGBoost / LightGBM file named in ``MLmodel``. Any other folder
(``python_function`` with a ``loader_module`` or a ``PythonModel``, its ``code`` paths and
``artifacts``) is loaded by ``mlflow.pyfunc.load_model``, which needs ``mlflow-skinny``. Either way
the signature is the registry's, else the one in ``MLmodel`` converted to V2 tensors (one input per
column for a column signature).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact
from modelpier.registry.domain import Flavor
from modelpier.runtimes.base import ModelRuntime
from modelpier.runtimes.loader import require_framework
from modelpier.runtimes.mlmodel import MLmodel, read_mlmodel
from modelpier.runtimes.tensors import Array, TabularInput
from modelpier.spec.signature import Signature

NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm")


class MlflowRuntime:
    """Serves an MLflow model through pyfunc, or through the native runtime it wraps."""

    flavor: ClassVar[str] = "mlflow"

    def __init__(self, inner: ModelRuntime | _PyfuncModel, signature: Signature) -> None:
        self._inner = inner
        self._signature = signature

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> MlflowRuntime:
        mlmodel = read_mlmodel(path)
        signature = signature or mlmodel.signature
        if any(f in mlmodel.flavors for f in NATIVE_FLAVORS) or importlib.util.find_spec("mlflow") is None:
            # The framework's own runtime: no MLflow import (seconds of start-up), same predictions.
            inner = load_native(mlmodel, signature, options or {})
            return cls(inner, inner.signature)
        pyfunc = _PyfuncModel(path, mlmodel, signature)
        return cls(pyfunc, signature or Signature())

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._inner.native

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        return self._inner.predict(inputs, outputs)


def load_native(mlmodel: MLmodel, signature: Signature | None, options: Mapping[str, Any]) -> ModelRuntime:
    """The modelpier runtime for the first native flavor of the folder modelpier can serve."""
    name = next((f for f in NATIVE_FLAVORS if f in mlmodel.flavors), None)
    if name is None:
        raise InvalidArtifact(
            f"MLflow model flavors {sorted(mlmodel.flavors)} need mlflow to serve: "
            "pip install 'modelpier[mlflow]' (without it modelpier serves sklearn, xgboost and lightgbm)"
        )
    conf = mlmodel.flavors[name]
    file = mlmodel.folder / str(conf.get("pickled_model") or conf.get("data") or "")
    if not file.is_file():
        raise InvalidArtifact(f"MLmodel's {name} flavor names {file.name!r}, which is not in {mlmodel.folder}")
    add_code_paths(mlmodel, name)
    if conf.get("serialization_format") == "skops" or file.suffix == ".skops":
        # sklearn models, and LightGBM's sklearn wrappers, in MLflow 3's default format.
        require_framework(Flavor.SKLEARN)
        from modelpier.runtimes.sklearn import SklearnRuntime

        return SklearnRuntime(load_skops(file, conf.get("skops_trusted_types")), signature)
    if name == "sklearn" or file.suffix == ".pkl":
        # MLflow pickles sklearn models, and the sklearn API wrappers of LightGBM too.
        require_framework(Flavor.SKLEARN)
        from modelpier.runtimes.sklearn import SklearnRuntime, load_estimator

        return SklearnRuntime(load_estimator(file), signature)
    if name == "xgboost":
        require_framework(Flavor.XGBOOST)
        from modelpier.runtimes.xgboost import XGBoostRuntime

        return XGBoostRuntime.from_file(file, None, signature, options, estimator=_wrapper_class(conf))
    require_framework(Flavor.LIGHTGBM)
    from modelpier.runtimes.lightgbm import LightGBMRuntime

    return LightGBMRuntime.from_file(file, None, signature, options)


def add_code_paths(mlmodel: MLmodel, flavor: str) -> None:
    """Put the model's ``code`` folders on ``sys.path``, as MLflow does before loading (custom
    transformers and pyfunc classes live there)."""
    for conf in (mlmodel.flavors.get(flavor, {}), mlmodel.flavors.get("python_function", {})):
        code = conf.get("code")
        if code:
            folder = mlmodel.folder / str(code)
            entries = [folder, *(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
            for entry in entries:
                if str(entry) not in sys.path:
                    sys.path.insert(0, str(entry))


def load_skops(file: Path, trusted: Any) -> Any:
    """An estimator from MLflow 3's default ``skops`` format, trusting skops's defaults plus the types
    ``MLmodel`` records (``skops_trusted_types``), never more: skops refuses anything else."""
    try:
        import skops.io
    except ImportError:
        raise InvalidArtifact(f"{file.name} is in the skops format: pip install skops") from None
    types = [str(t) for t in trusted] if isinstance(trusted, list) else None
    try:
        return skops.io.load(file, trusted=types)
    except Exception as exc:  # skops raises its own types and pickle errors
        untrusted = _untrusted(skops.io, file, types)
        if untrusted:
            raise InvalidArtifact(
                f"{file.name} holds types MLmodel does not trust: {', '.join(untrusted)}; save the model with "
                "mlflow.sklearn.save_model(..., skops_trusted_types=[...]) naming them",
                details={"untrusted": untrusted}) from exc
        raise InvalidArtifact(f"cannot read {file} as a skops model: {exc}") from exc


def _untrusted(skops_io: Any, file: Path, trusted: list[str] | None) -> list[str]:
    try:
        found = skops_io.get_untrusted_types(file=file)
    except Exception:  # a file skops cannot even list is reported by the caller as unreadable
        return []
    return [str(t) for t in found if t not in (trusted or [])]


def _wrapper_class(conf: Mapping[str, Any]) -> str | None:
    """The XGBoost sklearn wrapper MLflow saved (``model_class: xgboost.sklearn.XGBClassifier``)."""
    model_class = str(conf.get("model_class", ""))
    return model_class.rsplit(".", 1)[1] if model_class.startswith("xgboost.sklearn.") else None


class _PyfuncModel:
    """Adapts ``mlflow.pyfunc`` to the runtime contract (MLflow is optional, so imported lazily)."""

    def __init__(self, path: Path, mlmodel: MLmodel, signature: Signature | None) -> None:
        import mlflow.pyfunc

        try:
            self.native = mlflow.pyfunc.load_model(str(path))
        except Exception as exc:  # MLflow wraps flavor failures in many types
            raise InvalidArtifact(f"mlflow could not load {path}: {exc}") from exc
        self._columns = list(mlmodel.columns)
        self._input = TabularInput(signature) if signature is not None and not self._columns else None
        self._output = signature.outputs[0].name if signature is not None and signature.outputs else "predict"

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        data: Any
        if self._columns:
            pd = importlib.import_module("pandas")  # a dependency of mlflow

            if len(inputs) == 1:
                matrix = np.asarray(next(iter(inputs.values())))
                data = pd.DataFrame(matrix.reshape(len(matrix), -1), columns=self._columns)
            else:
                data = pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in inputs.items()})
        elif self._input is not None:
            data = self._input.take(inputs)
        else:
            data = next(iter(inputs.values())) if len(inputs) == 1 else dict(inputs)
        result = self.native.predict(data)
        if isinstance(result, dict):
            return {str(k): np.asarray(v) for k, v in result.items()}
        if hasattr(result, "to_numpy"):
            result = result.to_numpy()
        return {self._output: np.asarray(result)}
