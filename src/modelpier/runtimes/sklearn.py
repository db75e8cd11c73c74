"""The scikit-learn runtime: a joblib-pickled estimator or pipeline in ``model.joblib``.

Outputs ``predict`` and, for estimators with ``predict_proba``, ``predict_proba`` (MLServer's
names). Everything a prediction needs is bound at load time: this sits on the serving hot path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact
from modelpier.runtimes.tensors import Array, TabularInput, tabular_input
from modelpier.spec.signature import Signature, TensorSpec, V2Datatype, v2_datatype

FILENAME = "model.joblib"
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


def describe_estimator(model: Any) -> Signature:
    """A signature from what a fitted estimator knows about itself (no example needed)."""
    n_features = getattr(model, "n_features_in_", None)
    inputs = (tabular_input(n_features if isinstance(n_features, int) else None),)
    classes = getattr(model, "classes_", None)
    label: V2Datatype = "FP64"
    if isinstance(classes, np.ndarray):
        label = v2_datatype(classes.dtype)
    outputs = [TensorSpec(name=PREDICT, datatype=label, shape=(-1,))]
    if hasattr(model, PREDICT_PROBA) and isinstance(classes, np.ndarray):
        outputs.append(TensorSpec(name=PREDICT_PROBA, datatype="FP64", shape=(-1, len(classes))))
    return Signature(inputs=inputs, outputs=tuple(outputs))


class SklearnRuntime:
    """Predicts with a fitted scikit-learn estimator."""

    flavor: ClassVar[str] = "sklearn"

    def __init__(self, model: Any, signature: Signature | None = None) -> None:
        if not callable(getattr(model, PREDICT, None)):
            raise InvalidArtifact(f"{type(model).__name__} has no predict method")
        self._model = model
        described = describe_estimator(model)
        if signature is None or not signature.inputs:
            signature = Signature(inputs=described.inputs, outputs=signature.outputs if signature else ())
        if not signature.outputs:
            signature = Signature(inputs=signature.inputs, outputs=described.outputs)
        self._signature = signature
        self._input = TabularInput(signature)
        wanted = {o.name for o in signature.outputs}
        self._predict: Callable[[Any], Array] = model.predict
        # A signature that records only ``predict`` skips the second pass through the model.
        proba = getattr(model, PREDICT_PROBA, None)
        self._proba: Callable[[Any], Array] | None = proba if PREDICT_PROBA in wanted else None
        self._columns = _feature_names(model)

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> SklearnRuntime:
        return cls(load_estimator(path / FILENAME), signature)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._model

    def predict(self, inputs: dict[str, Array]) -> dict[str, Array]:
        x: Any = self._input.take(inputs)
        if self._columns is not None:
            x = self._columns(x)
        try:
            out = {PREDICT: np.asarray(self._predict(x))}
            if self._proba is not None:
                out[PREDICT_PROBA] = np.asarray(self._proba(x))
        except ValueError as exc:
            raise self._input.rejected(exc) from None
        return out


def save(model: Any, dest: Path) -> None:
    """Write ``model.joblib``."""
    import joblib

    try:
        joblib.dump(model, dest / FILENAME)
    except Exception as exc:  # pickling fails on lambdas, open handles, ...
        raise InvalidArtifact(f"cannot pickle {type(model).__name__} with joblib: {exc}") from exc


def load_estimator(file: Path) -> Any:
    """Unpickle an estimator with joblib (which also reads plain pickles)."""
    if not file.is_file():
        raise InvalidArtifact(f"no {file.name} in {file.parent}: not a scikit-learn model folder")
    import joblib

    try:
        return joblib.load(file)
    except Exception as exc:  # unpickling can raise anything; report it as a bad artifact
        raise InvalidArtifact(f"cannot read {file} as a scikit-learn model: {exc}") from exc


def _feature_names(model: Any) -> Callable[[Array], Any] | None:
    """A converter to a DataFrame for estimators fitted on one, so sklearn sees its column names."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    try:
        pd = importlib.import_module("pandas")  # optional; an estimator fitted on a frame implies it
    except ImportError:
        return None
    columns = list(names)
    frame: Callable[..., Any] = pd.DataFrame
    return lambda x: frame(x, columns=columns)
