"""The LightGBM runtime: a text booster in ``model.txt`` plus a ``lightgbm.json`` sidecar holding
the task and the class labels (LightGBM's sklearn wrapper accepts any labels; the booster only
knows their indices).

Classifiers answer ``predict`` (labels) and ``predict_proba``; other objectives answer ``predict``.
``native`` is the ``lightgbm.Booster``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact
from modelpier.runtimes._boosting import BoosterInfo, ClassifierOutputs, PostProcess, labels_of
from modelpier.runtimes.tensors import Array, TabularInput, tabular_input
from modelpier.spec.signature import Signature, TensorSpec

FILENAME = "model.txt"
SIDECAR = "lightgbm.json"
_CLASSIFIER_OBJECTIVES = ("binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")


def booster_info(booster: Any, estimator: str | None = None, classes: Any = None) -> BoosterInfo:
    """The sidecar for a booster, from its parameters."""
    objective = str(booster.params.get("objective") or _objective_from_dump(booster))
    objective = objective.split(maxsplit=1)[0]
    classifier = objective in _CLASSIFIER_OBJECTIVES
    n_classes = int(booster.params.get("num_class", 1) or 1)
    if classifier and objective == "binary":
        n_classes = 2
    return BoosterInfo(
        objective=objective,
        task="classifier" if classifier else "regressor",
        n_classes=n_classes if classifier else 0,
        classes=labels_of(classes),
        estimator=estimator,
    )


def _objective_from_dump(booster: Any) -> str:
    return str(booster.dump_model(num_iteration=0).get("objective", "regression"))


def save(model: Any, dest: Path) -> None:
    """Write ``model.txt`` and ``lightgbm.json`` for a Booster or an ``LGBMModel``."""
    import lightgbm

    if isinstance(model, lightgbm.LGBMModel):
        booster = model.booster_
        info = booster_info(booster, type(model).__name__, getattr(model, "classes_", None))
    elif isinstance(model, lightgbm.Booster):
        booster = model
        info = booster_info(booster)
    else:
        raise InvalidArtifact(f"{type(model).__name__} is not a LightGBM Booster or LGBMModel")
    booster.save_model(str(dest / FILENAME))
    (dest / SIDECAR).write_text(info.to_json())


class LightGBMRuntime:
    """Predicts with a LightGBM booster."""

    flavor: ClassVar[str] = "lightgbm"

    def __init__(self, booster: Any, info: BoosterInfo, signature: Signature | None = None) -> None:
        import lightgbm

        self._booster = booster
        self._errors = (ValueError, lightgbm.basic.LightGBMError)
        outputs: tuple[TensorSpec, ...]
        if info.task == "classifier":
            outputs = ClassifierOutputs(info.classes, with_proba=True).specs(info.n_classes, "FP64")
        else:
            outputs = (TensorSpec(name="predict", datatype="FP64", shape=(-1,)),)
        if signature is None or not signature.inputs:
            inputs = (tabular_input(booster.num_feature() or None),)
            signature = Signature(inputs=inputs, outputs=signature.outputs if signature else ())
        if not signature.outputs:
            signature = Signature(inputs=signature.inputs, outputs=outputs)
        self._signature = signature
        self._input = TabularInput(signature)
        self._post: PostProcess
        if info.task == "classifier":
            wanted = {o.name for o in signature.outputs}
            self._post = ClassifierOutputs(info.classes, with_proba="predict_proba" in wanted)
        else:
            self._post = lambda raw, outputs: {"predict": raw}

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> LightGBMRuntime:
        return cls.from_file(path / FILENAME, BoosterInfo.read(path / SIDECAR), signature, options or {})

    @classmethod
    def from_file(
        cls, file: Path, info: BoosterInfo | None, signature: Signature | None, options: Mapping[str, Any]
    ) -> LightGBMRuntime:
        if not file.is_file():
            raise InvalidArtifact(f"no {file.name} in {file.parent}: not a LightGBM model folder")
        import lightgbm

        params = {"num_threads": int(options["num_threads"])} if "num_threads" in options else None
        try:
            booster = lightgbm.Booster(model_file=str(file), params=params)
        except (ValueError, lightgbm.basic.LightGBMError) as exc:
            raise InvalidArtifact(f"cannot read {file} as a LightGBM model: {exc}") from None
        return cls(booster, info or booster_info(booster), signature)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._booster

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        x = self._input.take(inputs)
        try:
            raw = self._booster.predict(x)
        except self._errors as exc:
            raise self._input.rejected(exc) from None
        return self._post(np.asarray(raw), outputs)
