"""The SDK against a real SQLite store and blob folder: save, load, environment skew."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import modelpier
from modelpier.errors import InvalidName, NotFound
from modelpier.registry.domain import NewVersion
from modelpier.registry.factory import build_registry
from modelpier.runtimes.environment import EnvironmentSkewWarning
from modelpier.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path, user="alice")


def test_save_infers_flavor_signature_and_lineage_and_load_predicts_the_same(settings: Settings) -> None:
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    version = modelpier.save_model("forest", model, input_example=x[:2], metrics={"acc": 0.9},
                                   settings=settings)
    assert (version.ref, version.flavor, version.created_by) == ("forest:1", modelpier.Flavor.SKLEARN, "alice")
    assert version.signature is not None
    assert [t.name for t in version.signature.outputs] == ["predict", "predict_proba"]
    assert version.params["n_estimators"] == "5"
    assert version.environment["requirements"]
    loaded = modelpier.load_model("forest:1", settings=settings)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_bad_name_fails_before_any_work(settings: Settings) -> None:
    with pytest.raises(InvalidName):
        modelpier.save_model("Forest", object(), settings=settings)
    assert not (settings.home / "blobs").exists() or not any((settings.home / "blobs").rglob("*.*"))


def test_load_of_unknown_reference_is_not_found(settings: Settings) -> None:
    with pytest.raises(NotFound):
        modelpier.load_model("ghost:production", settings=settings)


def test_loading_warns_when_the_framework_minor_version_differs(settings: Settings) -> None:
    x, y = load_iris(return_X_y=True)
    saved = modelpier.save_model("skewed", RandomForestClassifier(n_estimators=2).fit(x, y), settings=settings)
    registry = build_registry(settings)
    try:
        # Re-record the same model as if saved under scikit-learn 0.20: the files plus a note, so
        # the digest differs and a new version is created.
        folder = registry.materialize(saved)
        notes = folder.parent / "notes"
        notes.mkdir()
        (notes / "NOTE.txt").write_text("saved with an old scikit-learn")
        env = {**saved.environment, "packages": {**saved.environment["packages"], "scikit-learn": "0.20.4"}}
        registry.register(NewVersion(model="skewed", flavor=saved.flavor,
                                     files=saved.files + registry.store_files(notes), environment=env,
                                     signature=saved.signature))
    finally:
        registry.close()
    with pytest.warns(EnvironmentSkewWarning, match="scikit-learn: the model was saved with 0.20.4"):
        modelpier.load_model("skewed:2", settings=settings)


def test_loading_in_the_same_environment_does_not_warn(settings: Settings, recwarn: pytest.WarningsRecorder) -> None:
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("calm", RandomForestClassifier(n_estimators=2).fit(x, y), settings=settings)
    modelpier.load_model("calm", settings=settings)
    assert not [w for w in recwarn if issubclass(w.category, EnvironmentSkewWarning)]
