"""The scikit-learn runtime: a joblib-pickled estimator or pipeline in ``model.joblib``.

Outputs ``predict`` and, for estimators with ``predict_proba``, ``predict_proba`` (MLServer's
names). Only the outputs a call asks for are computed. When both are wanted from a classifier
whose ``predict`` is by definition the argmax of ``predict_proba`` (forests, trees, calibrated
classifiers, and pipelines ending in one), ``predict`` is derived from the probabilities: one pass
through the model instead of two (for a 200-tree forest, half the work). Everything a prediction
needs is bound at load time: this sits on the serving hot path.
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
        self._predict: Callable[[Any], Array] = model.predict
        proba = getattr(model, PREDICT_PROBA, None)
        self._proba: Callable[[Any], Array] | None = proba if callable(proba) else None
        # Without ``outputs``, a call computes what the signature records (only ``predict``: one pass).
        recorded = frozenset(o.name for o in signature.outputs)
        self._default = recorded if recorded & {PREDICT, PREDICT_PROBA} else frozenset({PREDICT})
        self._classes = _argmax_classes(model) if self._proba is not None else None
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

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        wanted = self._default if outputs is None else outputs
        x: Any = self._input.take(inputs)
        if self._columns is not None:
            x = self._columns(x)
        try:
            if self._proba is None or PREDICT_PROBA not in wanted:
                return {PREDICT: np.asarray(self._predict(x))}
            proba = np.asarray(self._proba(x))
            if PREDICT not in wanted:
                return {PREDICT_PROBA: proba}
            classes = self._classes
            label = classes.take(proba.argmax(axis=1)) if classes is not None else np.asarray(self._predict(x))
        except ValueError as exc:
            raise self._input.rejected(exc) from None
        return {PREDICT: label, PREDICT_PROBA: proba}


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


# Classifiers whose ``predict`` is ``classes_.take(predict_proba(x).argmax(axis=1))`` in scikit-learn's
# own code, so deriving it gives the same labels. Not every classifier qualifies: SVC's Platt-scaled
# probabilities can disagree with its decision function, and boosting's binary ``predict`` thresholds
# the raw score, so those still run ``predict`` themselves.
_ARGMAX_CLASSIFIERS = (
    ("sklearn.ensemble", "RandomForestClassifier"),
    ("sklearn.ensemble", "ExtraTreesClassifier"),
    ("sklearn.tree", "DecisionTreeClassifier"),
    ("sklearn.tree", "ExtraTreeClassifier"),
    ("sklearn.calibration", "CalibratedClassifierCV"),
)


def _argmax_classes(model: Any) -> Array | None:
    """The model's ``classes_`` when its ``predict`` is the argmax of ``predict_proba``, else None."""
    final = model
    steps = getattr(model, "steps", None)  # a Pipeline: its last step predicts
    if isinstance(steps, list) and steps:
        final = steps[-1][1]
    kinds = []
    for module, name in _ARGMAX_CLASSIFIERS:
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # an older or trimmed scikit-learn
            continue
    classes = getattr(final, "classes_", None)
    if not isinstance(final, tuple(kinds)) or not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return None  # multi-output classifiers have a list of class arrays: predict stays as it is
    return classes


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
