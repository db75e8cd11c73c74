from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime, prepare_plain_path
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import TensorSpec

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def test_multiclass_classifier(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    packaged = package_model(model, tmp_path / "m", input_example=x[:3])
    assert sorted(p.name for p in tmp_path.joinpath("m").iterdir()) == ["model.ubj", "xgboost.json"]
    assert packaged.signature is not None
    assert packaged.signature.outputs == (
        TensorSpec(name="predict", datatype="INT64", shape=(-1,)),
        TensorSpec(name="predict_proba", datatype="FP32", shape=(-1, 3)),
    )
    runtime = load_runtime("xgboost", packaged.directory, packaged.signature)
    out = runtime.predict({"input-0": x[:20]})
    np.testing.assert_array_equal(out["predict"], model.predict(x[:20]))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x[:20]), rtol=1e-6)
    assert isinstance(runtime.native, xgb.XGBClassifier)


def test_binary_classifier_gives_two_probability_columns(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, (y == 2).astype(int))
    packaged = package_model(model, tmp_path / "m", input_example=x[:3])
    out = load_runtime("xgboost", packaged.directory).predict({"x": x})
    np.testing.assert_array_equal(out["predict"], model.predict(x))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(x), rtol=1e-6)


def test_regressor(iris: Data, tmp_path: Path) -> None:
    x = iris[0]
    model = xgb.XGBRegressor(n_estimators=5).fit(x[:, :3], x[:, 3])
    packaged = package_model(model, tmp_path / "m", input_example=x[:2, :3])
    out = load_runtime("xgboost", packaged.directory, packaged.signature).predict({"x": x[:7, :3]})
    assert list(out) == ["predict"]
    np.testing.assert_allclose(out["predict"], model.predict(x[:7, :3]), rtol=1e-6)


def test_a_plain_booster_without_sidecar(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
                        xgb.DMatrix(x, label=y), num_boost_round=3)
    package_model(booster, tmp_path / "m")
    (tmp_path / "m" / "xgboost.json").unlink()
    runtime = load_runtime("xgboost", tmp_path / "m")
    assert runtime.signature.inputs == (TensorSpec(name="input-0", datatype="FP32", shape=(-1, 4)),)
    out = runtime.predict({"x": x[:5]})
    proba = booster.predict(xgb.DMatrix(x[:5]))
    np.testing.assert_allclose(out["predict_proba"], proba, rtol=1e-6)
    np.testing.assert_array_equal(out["predict"], proba.argmax(axis=1))


def test_a_plain_ubj_file(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    model = xgb.XGBRegressor(n_estimators=3).fit(x, y)
    model.save_model(tmp_path / "reg.ubj")
    flavor, folder = prepare_plain_path(tmp_path / "reg.ubj", cache_dir=tmp_path)
    out = load_runtime(flavor, folder).predict({"x": x[:4]})
    np.testing.assert_allclose(out["predict"], model.predict(x[:4]), rtol=1e-6)


def test_bad_inputs(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    packaged = package_model(xgb.XGBClassifier(n_estimators=2).fit(x, y), tmp_path / "m", input_example=x[:2])
    runtime = load_runtime("xgboost", packaged.directory, packaged.signature)
    with pytest.raises(InvalidInput, match=r"input 'f': expected shape \[-1, 4\], got \[3, 2\]"):
        runtime.predict({"f": x[:3, :2]})
    with pytest.raises(InvalidInput, match="non-numeric"):
        runtime.predict({"f": np.array([["a", "b", "c", "d"]])})
    with pytest.raises(InvalidInput, match=r"one input 'input-0'"):
        runtime.predict({"a": x[:1], "b": x[:1]})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="not an XGBoost model folder"):
        load_runtime("xgboost", tmp_path)
    (tmp_path / "model.ubj").write_bytes(b"garbage")
    with pytest.raises(InvalidArtifact, match="cannot read"):
        load_runtime("xgboost", tmp_path)
