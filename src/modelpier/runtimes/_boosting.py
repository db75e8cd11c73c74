"""What gradient-boosting runtimes (XGBoost, LightGBM) share: turning a booster's raw output into
sklearn-style ``predict`` / ``predict_proba`` outputs, and the sidecar that records the task.

A booster file alone says its objective but not whether a sklearn classifier wrapped it or which
labels it was trained on; the sidecar (``xgboost.json`` / ``lightgbm.json``) records that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelpier.errors import InvalidArtifact
from modelpier.runtimes.tensors import Array
from modelpier.spec.signature import TensorSpec, V2Datatype, v2_datatype

Task = Literal["classifier", "regressor"]
# A booster's raw output and the outputs asked for (None: the defaults) -> the named outputs.
PostProcess = Callable[[Array, frozenset[str] | None], dict[str, Array]]


@dataclass(frozen=True)
class BoosterInfo:
    """The sidecar: what a booster predicts and how to present it."""

    objective: str
    task: Task
    n_classes: int = 0
    classes: list[Any] | None = None  # labels when they are not 0..n_classes-1
    estimator: str | None = None  # the sklearn wrapper class, when the model was one

    def to_json(self) -> str:
        body = {
            "objective": self.objective,
            "task": self.task,
            "n_classes": self.n_classes,
            "classes": self.classes,
            "estimator": self.estimator,
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def read(cls, file: Path) -> BoosterInfo | None:
        if not file.is_file():
            return None
        try:
            body = json.loads(file.read_text())
            task = body["task"]
            if task not in ("classifier", "regressor"):
                raise ValueError(f"task {task!r} is neither classifier nor regressor")
            return cls(
                objective=str(body["objective"]),
                task=task,
                n_classes=int(body.get("n_classes") or 0),
                classes=body.get("classes"),
                estimator=body.get("estimator"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArtifact(f"malformed {file}: {exc}") from None


def labels_of(classes: Any) -> list[Any] | None:
    """A JSON-friendly list of class labels, or None when they are just 0..k-1."""
    if classes is None:
        return None
    values = np.asarray(classes)
    if values.dtype.kind in "iu" and np.array_equal(values, np.arange(len(values))):
        return None
    return [v.item() if isinstance(v, np.generic) else v for v in values]


class ClassifierOutputs:
    """Turns probabilities (``(n,)`` positive class for binary, ``(n, k)`` else) into both outputs.

    The booster computes probabilities once either way; ``predict`` is their argmax. Only the outputs
    asked for are built (``outputs`` None: ``predict``, and ``predict_proba`` when ``with_proba``).
    """

    __slots__ = ("_classes", "_with_proba")

    def __init__(self, classes: list[Any] | None, with_proba: bool) -> None:
        self._classes = np.asarray(classes) if classes is not None else None
        self._with_proba = with_proba

    def __call__(self, raw: Array, outputs: frozenset[str] | None = None) -> dict[str, Array]:
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        with_proba = self._with_proba if outputs is None else "predict_proba" in outputs
        out: dict[str, Array] = {}
        if not with_proba or outputs is None or "predict" in outputs:
            index = proba.argmax(axis=1)
            out["predict"] = self._classes[index] if self._classes is not None else index
        if with_proba:
            out["predict_proba"] = proba
        return out

    def specs(self, n_classes: int, proba_dtype: V2Datatype) -> tuple[TensorSpec, ...]:
        label: V2Datatype = v2_datatype(self._classes.dtype) if self._classes is not None else "INT64"
        predict = TensorSpec(name="predict", datatype=label, shape=(-1,))
        proba = TensorSpec(name="predict_proba", datatype=proba_dtype, shape=(-1, max(n_classes, 2)))
        return (predict, proba)
