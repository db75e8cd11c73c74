from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime, prepare_plain_path
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import TensorSpec

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def test_classifier_with_string_labels(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, labels)
    packaged = package_model(model, tmp_path / "m", input_example=x[:3])
    assert sorted(p.name for p in packaged.directory.iterdir()) == ["lightgbm.json", "model.txt"]
    assert packaged.signature is not None
    assert packaged.signature.outputs[1] == TensorSpec(name="predict_proba", datatype="FP64", shape=(-1, 3))
    runtime = load_runtime("lightgbm", packaged.directory, packaged.signature)
    out = runtime.predict({"input-0": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x))
    assert isinstance(runtime.native, lgb.Booster)


def test_binary_classifier(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y == 1)
    packaged = package_model(model, tmp_path / "m", input_example=x[:3])
    out = load_runtime("lightgbm", packaged.directory).predict({"x": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x))


def test_regressor_and_raw_booster(iris: Data, tmp_path: Path) -> None:
    x, _ = iris
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(x[:, :3], x[:, 3])
    packaged = package_model(model.booster_, tmp_path / "m", input_example=x[:2, :3])
    assert packaged.params["objective"] == "regression"
    out = load_runtime("lightgbm", packaged.directory, packaged.signature).predict({"x": x[:6, :3]})
    assert list(out) == ["predict"]
    np.testing.assert_allclose(out["predict"], model.predict(x[:6, :3]))


def test_a_plain_model_txt(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                        lgb.Dataset(x, label=y), num_boost_round=3)
    booster.save_model(str(tmp_path / "booster.txt"))
    flavor, folder = prepare_plain_path(tmp_path / "booster.txt", cache_dir=tmp_path)
    runtime = load_runtime(flavor, folder)
    out = runtime.predict({"x": x[:4]})
    np.testing.assert_allclose(out["predict_proba"], booster.predict(x[:4]))
    np.testing.assert_array_equal(out["predict"], booster.predict(x[:4]).argmax(axis=1))
    only = runtime.predict({"x": x[:4]}, frozenset({"predict"}))
    assert list(only) == ["predict"]
    np.testing.assert_array_equal(only["predict"], out["predict"])
    assert list(runtime.predict({"x": x[:4]}, frozenset({"predict_proba"}))) == ["predict_proba"]


def test_bad_inputs(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    model = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(x, y)
    runtime = load_runtime("lightgbm", package_model(model, tmp_path / "m").directory)
    with pytest.raises(InvalidInput, match=r"input 'rows': expected shape \[-1, 4\], got \[1, 5\]"):
        runtime.predict({"rows": np.ones((1, 5))})
    with pytest.raises(InvalidInput, match="non-numeric"):
        runtime.predict({"rows": np.array([["a"] * 4])})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="not a LightGBM model folder"):
        load_runtime("lightgbm", tmp_path)
    (tmp_path / "model.txt").write_text("tree\nnonsense\n")
    with pytest.raises(InvalidArtifact, match="cannot read"):
        load_runtime("lightgbm", tmp_path)
