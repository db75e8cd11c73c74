"""The MLflow runtime: an MLflow model folder (``MLmodel`` plus the flavor's files).

With ``mlflow`` installed the folder is loaded by ``mlflow.pyfunc.load_model``, which honours every
MLflow flavor. Without it, the native flavor inside the folder is served by modelpier's own
runtime: sklearn's pickled model, or the XGBoost / LightGBM file named in ``MLmodel``. Either way
the signature is the registry's, else the one in ``MLmodel`` converted to V2 tensors.
"""

from __future__ import annotations

import importlib
import importlib.util
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
        if importlib.util.find_spec("mlflow") is not None:
            pyfunc = _PyfuncModel(path, mlmodel, signature)
            return cls(pyfunc, signature or Signature())
        inner = load_native(mlmodel, signature, options or {})
        return cls(inner, inner.signature)

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
