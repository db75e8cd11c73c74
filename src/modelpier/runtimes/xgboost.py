"""The XGBoost runtime: a booster in ``model.ubj`` (UBJSON; ``model.json``/``model.xgb`` also read)
plus an ``xgboost.json`` sidecar saying whether it was a classifier and which sklearn wrapper.

Predictions go through ``Booster.inplace_predict`` (no DMatrix per call). Classifiers answer
``predict`` (labels) and ``predict_proba``; regressors and rankers answer ``predict``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact
from modelpier.runtimes._boosting import BoosterInfo, ClassifierOutputs, PostProcess, labels_of
from modelpier.runtimes.tensors import Array, TabularInput, tabular_input
from modelpier.spec.signature import Signature, TensorSpec

FILENAMES = ("model.ubj", "model.json", "model.xgb")
SIDECAR = "xgboost.json"
# Objectives whose output is already a class index rather than a probability.
_LABEL_OBJECTIVES = ("multi:softmax", "binary:hinge")
_PROBA_OBJECTIVES = ("binary:logistic", "multi:softprob")


def booster_info(booster: Any, estimator: str | None = None, classes: Any = None) -> BoosterInfo:
    """The sidecar for a booster, from its own saved configuration."""
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    n_classes = int(learner["learner_model_param"].get("num_class", 0) or 0)
    classifier = objective in _LABEL_OBJECTIVES + _PROBA_OBJECTIVES
    if classifier and objective.startswith("binary:"):
        n_classes = 2
    return BoosterInfo(
        objective=objective,
        task="classifier" if classifier else "regressor",
        n_classes=n_classes,
        classes=labels_of(classes),
        estimator=estimator,
    )


def save(model: Any, dest: Path) -> None:
    """Write ``model.ubj`` and ``xgboost.json`` for a Booster or an sklearn-API XGBoost model."""
    import xgboost

    if isinstance(model, xgboost.XGBModel):
        # The wrapper's own save keeps its sklearn metadata, so ``native`` can rebuild it.
        model.save_model(dest / FILENAMES[0])
        info = booster_info(model.get_booster(), type(model).__name__, getattr(model, "classes_", None))
    elif isinstance(model, xgboost.Booster):
        model.save_model(dest / FILENAMES[0])
        info = booster_info(model)
    else:
        raise InvalidArtifact(f"{type(model).__name__} is not an XGBoost Booster or XGBModel")
    (dest / SIDECAR).write_text(info.to_json())


class XGBoostRuntime:
    """Predicts with an XGBoost booster."""

    flavor: ClassVar[str] = "xgboost"

    def __init__(
        self, booster: Any, info: BoosterInfo, signature: Signature | None = None, native: Any = None
    ) -> None:
        self._booster = booster
        self._native = native if native is not None else booster
        self._info = info
        best = booster.attr("best_iteration")
        self._range = (0, int(best) + 1) if best is not None else (0, 0)
        classify = ClassifierOutputs(info.classes, with_proba=True)
        outputs: tuple[TensorSpec, ...]
        if info.task == "classifier" and info.objective in _PROBA_OBJECTIVES:
            outputs = classify.specs(info.n_classes, "FP32")
        else:
            outputs = (TensorSpec(name="predict", datatype="INT64" if info.task == "classifier" else "FP32",
                                  shape=(-1,)),)
        if signature is None or not signature.inputs:
            inputs = (tabular_input(booster.num_features() or None, "FP32"),)
            signature = Signature(inputs=inputs, outputs=signature.outputs if signature else ())
        if not signature.outputs:
            signature = Signature(inputs=signature.inputs, outputs=outputs)
        self._signature = signature
        self._input = TabularInput(signature)
        self._post = self._postprocessor(info, {o.name for o in signature.outputs})

    @staticmethod
    def _postprocessor(info: BoosterInfo, wanted: set[str]) -> PostProcess:
        if info.task == "classifier" and info.objective in _PROBA_OBJECTIVES:
            return ClassifierOutputs(info.classes, with_proba="predict_proba" in wanted)
        if info.task == "classifier":
            classes = np.asarray(info.classes) if info.classes is not None else None
            if classes is not None:
                return lambda raw, outputs: {"predict": classes[raw.astype(np.int64)]}
            return lambda raw, outputs: {"predict": raw.astype(np.int64)}
        return lambda raw, outputs: {"predict": raw}

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> XGBoostRuntime:
        file = next((path / n for n in FILENAMES if (path / n).is_file()), None)
        if file is None:
            raise InvalidArtifact(f"no {' or '.join(FILENAMES)} in {path}: not an XGBoost model folder")
        return cls.from_file(file, BoosterInfo.read(path / SIDECAR), signature, options or {})

    @classmethod
    def from_file(
        cls,
        file: Path,
        info: BoosterInfo | None,
        signature: Signature | None,
        options: Mapping[str, Any],
        estimator: str | None = None,
    ) -> XGBoostRuntime:
        """Load ``file``; ``estimator`` names the sklearn wrapper when there is no sidecar."""
        import xgboost

        native: Any = None
        estimator = info.estimator if info is not None else estimator
        # XGBoost picks the format from a file's suffix and warns on others (MLflow's ``.xgb``);
        # from a buffer it reads the format from the bytes.
        source: Any = file if file.suffix in (".ubj", ".json") else bytearray(file.read_bytes())
        try:
            if estimator and estimator.startswith("XGB") and hasattr(xgboost, estimator):
                native = getattr(xgboost, estimator)()
                native.load_model(source)
                booster = native.get_booster()
            else:
                booster = xgboost.Booster()
                booster.load_model(source)
        except (ValueError, OSError) as exc:  # XGBoostError is a ValueError
            raise InvalidArtifact(f"cannot read {file} as an XGBoost model: {exc}") from None
        if "nthread" in options:
            booster.set_param({"nthread": int(options["nthread"])})
        if info is None:
            info = booster_info(booster, estimator, getattr(native, "classes_", None))
        return cls(booster, info, signature, native)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._native

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        x = self._input.take(inputs)
        try:
            raw = self._booster.inplace_predict(x, iteration_range=self._range)
        except ValueError as exc:
            raise self._input.rejected(exc) from None
        return self._post(np.asarray(raw), outputs)
