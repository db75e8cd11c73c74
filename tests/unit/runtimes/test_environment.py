from __future__ import annotations

from typing import Any

import pytest

from modelpier.registry.domain import Flavor
from modelpier.runtimes.environment import (
    EnvironmentSkewWarning,
    capture_environment,
    compare_environment,
    recorded_packages,
    warn_on_skew,
)


def env(python: str = "3.11.7", **packages: str) -> dict[str, Any]:
    return {"python": python, "packages": {k.replace("_", "-"): v for k, v in packages.items()}}


@pytest.mark.parametrize(("recorded", "current", "expected"), [
    (env(scikit_learn="1.3.2"), env(scikit_learn="1.3.2"), []),
    (env(scikit_learn="1.3.2"), env(scikit_learn="1.3.0"), []),
    (env(torch="2.13.0"), env(torch="2.13.1+cpu"), []),
    (env(scikit_learn="1.3.2"), env(scikit_learn="1.4.0"),
     ["scikit-learn: the model was saved with 1.3.2, this environment has 1.4.0"]),
    (env(xgboost="1.7.6"), env(xgboost="2.0.3"),
     ["xgboost: the model was saved with 1.7.6, this environment has 2.0.3"]),
    (env(python="3.10.12"), env(python="3.11.7"),
     ["Python: the model was saved with 3.10.12, this environment has 3.11.7"]),
    (env(python="3.11.2"), env(python="3.11.9"), []),
    (env(lightgbm="4.1.0"), env(), ["lightgbm: the model was saved with 4.1.0, which is not installed here"]),
    (env(numpy="1.26.4", joblib="1.3.2"), env(numpy="2.0.0", joblib="1.3.0"),
     ["numpy: the model was saved with 1.26.4, this environment has 2.0.0"]),
    (env(), env(scikit_learn="1.4.0"), []),  # new packages in this environment are fine
])
def test_compare_environment(recorded: dict[str, Any], current: dict[str, Any], expected: list[str]) -> None:
    assert compare_environment(recorded, current) == expected


def test_package_names_compare_normalised() -> None:
    assert compare_environment(env(**{"scikit_learn": "1.3.0"}), {"packages": {"Scikit_Learn": "1.5.0"}}) == [
        "scikit-learn: the model was saved with 1.3.0, this environment has 1.5.0"]


def test_optional_packages_may_be_missing() -> None:
    assert compare_environment(env(mlflow="2.10.2"), env(), optional=["mlflow"]) == []


def test_a_record_without_packages_uses_its_framework_pins() -> None:
    recorded = {"requirements": ["mlflow==2.10.2", "cloudpickle==3.0.0", "scikit-learn==1.3.2", "numpy==1.26.4"]}
    assert recorded_packages(recorded) == {"mlflow": "2.10.2", "scikit-learn": "1.3.2", "numpy": "1.26.4"}


def test_capture_environment_records_framework_and_pins() -> None:
    captured = capture_environment(Flavor.SKLEARN)
    assert captured["framework"]["name"] == "scikit-learn"
    version = captured["framework"]["version"]
    assert f"scikit-learn=={version}" in captured["requirements"]
    assert any(r.startswith("scipy==") for r in captured["requirements"])  # a direct dependency
    assert {"python", "platform", "numpy", "modelpier"} <= set(captured)
    assert compare_environment(captured, capture_environment("sklearn")) == []


def test_warn_on_skew_warns_once_per_difference() -> None:
    recorded = {**capture_environment("sklearn"), "packages": {"scikit-learn": "0.24.2"}}
    with pytest.warns(EnvironmentSkewWarning, match=r"scikit-learn: the model was saved with 0\.24\.2"):
        messages = warn_on_skew(recorded, "sklearn")
    assert len(messages) == 1


def test_warn_on_skew_is_quiet_when_nothing_differs() -> None:
    assert warn_on_skew(capture_environment("xgboost"), "xgboost") == []
    assert warn_on_skew({}, "xgboost") == []
    # An MLflow model served natively does not need mlflow itself.
    assert warn_on_skew({"requirements": ["mlflow==2.10.2"]}, "mlflow") == []
