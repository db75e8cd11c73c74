"""The example model: an sklearn iris classifier, trained at first run and saved through the SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpier.errors import NotFound

if TYPE_CHECKING:
    from modelpier.registry.domain import ModelVersion
    from modelpier.registry.service import Registry
    from modelpier.settings import Settings

EXAMPLE_NAME = "iris"
EXAMPLE_ALIAS = "production"


def ensure_example_model(registry: Registry, settings: Settings) -> ModelVersion:
    """Return ``iris:production``, training and registering it first if it is not there."""
    try:
        return registry.resolve(f"{EXAMPLE_NAME}:{EXAMPLE_ALIAS}")
    except NotFound:
        pass
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelpier.sdk.api import save_model

    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    model = LogisticRegression(max_iter=500).fit(x, y)
    version = save_model(
        EXAMPLE_NAME, model, input_example=x[:2], registry=registry, settings=settings,
        tags={"example": "true", "dataset": "iris"}, metrics={"train_accuracy": float(model.score(x, y))},
        description="Iris species classifier (LogisticRegression), the bundled example.",
        source="modelpier.examples.iris")
    return registry.set_alias(EXAMPLE_NAME, EXAMPLE_ALIAS, version.version)
