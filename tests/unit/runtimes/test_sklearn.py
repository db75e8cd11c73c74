from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime
from modelpier.runtimes.sklearn import SklearnRuntime
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import Signature, TensorSpec

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def classifier(iris: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(*iris)


@pytest.fixture
def served(classifier: LogisticRegression, iris: Data, tmp_path: Path) -> SklearnRuntime:
    packaged = package_model(classifier, tmp_path / "m", input_example=iris[0][:3])
    runtime = load_runtime("sklearn", packaged.directory, packaged.signature)
    assert isinstance(runtime, SklearnRuntime)
    return runtime


def test_predictions_match_the_estimator(served: SklearnRuntime, classifier: LogisticRegression,
                                         iris: Data) -> None:
    out = served.predict({"input-0": iris[0][:10]})
    np.testing.assert_array_equal(out["predict"], classifier.predict(iris[0][:10]))
    np.testing.assert_allclose(out["predict_proba"], classifier.predict_proba(iris[0][:10]))
    assert served.native.get_params() == classifier.get_params()


def test_signature_is_inferred_from_the_example(classifier: LogisticRegression, iris: Data,
                                                tmp_path: Path) -> None:
    packaged = package_model(classifier, tmp_path / "m", input_example=iris[0][:3])
    assert packaged.signature == Signature(
        inputs=(TensorSpec(name="input-0", datatype="FP64", shape=(-1, 4)),),
        outputs=(TensorSpec(name="predict", datatype="INT64", shape=(-1,)),
                 TensorSpec(name="predict_proba", datatype="FP64", shape=(-1, 3))),
    )


def test_without_a_signature_the_estimator_describes_itself(classifier: LogisticRegression,
                                                            tmp_path: Path) -> None:
    package_model(classifier, tmp_path / "m")
    runtime = load_runtime("sklearn", tmp_path / "m")
    assert runtime.signature.inputs == (TensorSpec(name="input-0", datatype="FP64", shape=(-1, 4)),)
    assert [o.name for o in runtime.signature.outputs] == ["predict", "predict_proba"]


def test_regressor_answers_predict_only(iris: Data, tmp_path: Path) -> None:
    model = LinearRegression().fit(*iris)
    packaged = package_model(model, tmp_path / "m", input_example=iris[0][:2])
    out = load_runtime("sklearn", packaged.directory, packaged.signature).predict({"x": iris[0][:4]})
    assert list(out) == ["predict"]
    np.testing.assert_allclose(out["predict"], model.predict(iris[0][:4]))


def test_pipeline(iris: Data, tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(*iris)
    packaged = package_model(model, tmp_path / "m", input_example=iris[0][:2])
    out = load_runtime("sklearn", packaged.directory).predict({"rows": iris[0][:5]})
    np.testing.assert_array_equal(out["predict"], model.predict(iris[0][:5]))


def test_a_lone_input_is_taken_under_any_name_and_ints_are_cast(served: SklearnRuntime) -> None:
    out = served.predict({"whatever": np.array([[5, 3, 1, 0]])})
    assert out["predict"].shape == (1,)
    assert out["predict_proba"].shape == (1, 3)


def test_a_signature_with_only_predict_skips_proba(classifier: LogisticRegression, iris: Data) -> None:
    signature = Signature(inputs=(TensorSpec(name="input-0", datatype="FP64", shape=(-1, 4)),),
                          outputs=(TensorSpec(name="predict", datatype="INT64", shape=(-1,)),))
    out = SklearnRuntime(classifier, signature).predict({"input-0": iris[0][:2]})
    assert list(out) == ["predict"]


def test_column_inputs_are_stacked_in_signature_order(classifier: LogisticRegression, iris: Data) -> None:
    names = ["a", "b", "c", "d"]
    signature = Signature(inputs=tuple(TensorSpec(name=n, datatype="FP64", shape=(-1,)) for n in names))
    runtime = SklearnRuntime(classifier, signature)
    rows = iris[0][:3]
    out = runtime.predict({n: rows[:, i] for i, n in reversed(list(enumerate(names)))})
    np.testing.assert_array_equal(out["predict"], classifier.predict(rows))
    with pytest.raises(InvalidInput, match=r"missing \['d'\]"):
        runtime.predict({n: rows[:, i] for i, n in enumerate(names[:3])})


@pytest.mark.parametrize(("value", "message"), [
    (np.ones((2, 3)), r"input 'input-0': expected shape \[-1, 4\], got \[2, 3\]"),
    (np.ones(4), r"input 'input-0': expected shape \[-1, 4\], got \[4\]"),
    (np.array([["a", "b", "c", "d"]]), r"input 'input-0': expected FP64 values of shape \[-1, 4\], "
                                       r"got non-numeric"),
    (np.array([[1.0, "x", 2.0, 3.0]], dtype=object), r"input 'input-0'.*non-numeric"),
])
def test_bad_inputs_name_the_input_and_the_expected_shape(served: SklearnRuntime, value: Any,
                                                          message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        served.predict({"input-0": value})


def test_several_inputs_with_unknown_names_are_refused(served: SklearnRuntime, iris: Data) -> None:
    with pytest.raises(InvalidInput, match=r"one input 'input-0' of shape \[-1, 4\]; got \['a', 'b'\]"):
        served.predict({"a": iris[0][:1], "b": iris[0][:1]})


def test_a_framework_value_error_becomes_invalid_input(served: SklearnRuntime) -> None:
    with pytest.raises(InvalidInput, match=r"input 'input-0' \(expected shape \[-1, 4\]\).*NaN"):
        served.predict({"input-0": np.array([[np.nan, 1.0, 1.0, 1.0]])})


def test_missing_and_unreadable_files_are_invalid_artifacts(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match=r"no model\.joblib"):
        load_runtime("sklearn", tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(InvalidArtifact, match="cannot read"):
        load_runtime("sklearn", tmp_path)


def test_an_object_without_predict_is_refused() -> None:
    with pytest.raises(InvalidArtifact, match="no predict method"):
        SklearnRuntime(StandardScaler())


class CountingForest(RandomForestClassifier):
    """A forest that counts its passes: ``predict`` itself calls ``predict_proba`` once."""

    proba_calls = 0
    predict_calls = 0

    def predict_proba(self, X: Any) -> Any:  # noqa: N803  # scikit-learn's own parameter name
        type(self).proba_calls += 1
        return super().predict_proba(X)

    def predict(self, X: Any) -> Any:  # noqa: N803
        type(self).predict_calls += 1
        return super().predict(X)


@pytest.fixture
def forest(iris: Data) -> CountingForest:
    x, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y.astype(int)]
    model = CountingForest(n_estimators=20, random_state=0).fit(x, labels)
    CountingForest.proba_calls = CountingForest.predict_calls = 0
    return model


def test_a_forest_asked_for_both_outputs_runs_predict_proba_once_per_batch(forest: CountingForest,
                                                                           iris: Data) -> None:
    runtime = SklearnRuntime(forest)
    out = runtime.predict({"input-0": iris[0]}, frozenset({"predict", "predict_proba"}))
    assert (CountingForest.proba_calls, CountingForest.predict_calls) == (1, 0)
    np.testing.assert_array_equal(out["predict"], RandomForestClassifier.predict(forest, iris[0]))
    np.testing.assert_array_equal(out["predict_proba"], RandomForestClassifier.predict_proba(forest, iris[0]))
    assert out["predict"].dtype == forest.classes_.dtype


def test_without_outputs_a_call_computes_the_signature_outputs_in_one_pass(forest: CountingForest,
                                                                          iris: Data) -> None:
    out = SklearnRuntime(forest).predict({"input-0": iris[0][:5]})
    assert list(out) == ["predict", "predict_proba"]
    assert CountingForest.proba_calls == 1


def test_a_pipeline_ending_in_a_forest_derives_predict_too(forest: CountingForest, iris: Data) -> None:
    pipeline = make_pipeline(StandardScaler(), CountingForest(n_estimators=10, random_state=0)).fit(
        iris[0], forest.classes_[iris[1].astype(int)])
    CountingForest.proba_calls = 0
    out = SklearnRuntime(pipeline).predict({"input-0": iris[0]}, frozenset({"predict", "predict_proba"}))
    assert CountingForest.proba_calls == 1
    np.testing.assert_array_equal(out["predict"], pipeline.predict(iris[0]))


@pytest.mark.parametrize("asked", [frozenset({"predict"}), frozenset({"predict_proba"})])
def test_only_the_outputs_asked_for_are_computed(classifier: LogisticRegression, iris: Data,
                                                 asked: frozenset[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    model = LogisticRegression(max_iter=500).fit(*iris)
    for method in ("predict", "predict_proba"):
        original = getattr(model, method)
        monkeypatch.setattr(model, method, lambda x, m=method, f=original: calls.append(m) or f(x))
    out = SklearnRuntime(model).predict({"input-0": iris[0][:4]}, asked)
    assert set(out) == asked
    assert calls == sorted(asked)
    np.testing.assert_allclose(out[next(iter(asked))], getattr(classifier, next(iter(asked)))(iris[0][:4]))


def test_a_classifier_not_known_to_predict_the_probability_argmax_runs_both(iris: Data,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    model = LogisticRegression(max_iter=500).fit(*iris)  # predict: argmax of the decision function
    for method in ("predict", "predict_proba"):
        original = getattr(model, method)
        monkeypatch.setattr(model, method, lambda x, m=method, f=original: calls.append(m) or f(x))
    out = SklearnRuntime(model).predict({"input-0": iris[0]}, frozenset({"predict", "predict_proba"}))
    assert sorted(calls) == ["predict", "predict_proba"]
    np.testing.assert_array_equal(out["predict"], model.predict(iris[0]))
