"""The ``ModelRuntime`` protocol every flavor implements.

A runtime is built from a local folder holding a version's files (as the registry materialises
them) and predicts on a *batch*: a mapping of input name to a numpy array whose first dimension
is the batch. It returns a mapping of output name to an array with the same first dimension, so
the server's batcher can concatenate requests before and split results after.

``outputs`` names the outputs the caller will use (None: every output of the signature). A runtime
computes at least those and may skip the rest (scikit-learn does not run ``predict_proba`` for a
request that asks only for ``predict``); returning more is allowed, the server selects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from modelpier.spec.signature import Signature


class ModelRuntime(Protocol):
    flavor: ClassVar[str]

    @property
    def signature(self) -> Signature:
        """Inputs and outputs in V2 terms (from the registry when recorded, else described)."""

    @property
    def native(self) -> Any:
        """The framework's own model object (what ``modelpier.load_model`` returns)."""

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: frozenset[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Predict on a batch; raises ``InvalidInput`` for inputs the model cannot take."""


class RuntimeFactory(Protocol):
    def __call__(self, path: Path, signature: Signature | None) -> ModelRuntime: ...
