"""Models written by the real ``mlflow`` package (mlflow-skinny), as a user's training job saves them.

``write_mlflow_models(dest)`` runs one Python process that trains small iris models and saves each
with MLflow 3's own ``save_model``: scikit-learn in ``skops`` (MLflow's default), ``pickle`` and
``cloudpickle``; XGBoost and LightGBM in their native formats; ``python_function`` models with a
``loader_module`` plus ``code`` paths and data, and with a ``PythonModel`` plus ``artifacts``.
Importing MLflow takes seconds, so callers cache the folder for the whole session.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KINDS = ("skops", "pickle", "cloudpickle", "xgboost", "lightgbm", "loader", "pythonmodel")

_SCRIPT = r'''
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import mlflow.pyfunc, mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm
from mlflow.models import infer_signature
import xgboost as xgb, lightgbm as lgb

dest = Path(sys.argv[1])
x, y = load_iris(return_X_y=True, as_frame=True)
x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
example = x.head(3)
reqs = ["scikit-learn", "numpy", "pandas"]  # explicit: MLflow would also list whatever the process imported
clf = LogisticRegression(max_iter=500).fit(x, y)
sig = infer_signature(x, clf.predict(x))
mlflow.sklearn.save_model(clf, dest / "skops", signature=sig, input_example=example,
                          pip_requirements=reqs + ["skops"])
for fmt in ("pickle", "cloudpickle"):
    mlflow.sklearn.save_model(clf, dest / fmt, serialization_format=fmt, signature=sig, input_example=example,
                              pip_requirements=reqs + ["cloudpickle"])
booster = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(x, y)
mlflow.xgboost.save_model(booster, dest / "xgboost", signature=infer_signature(x, booster.predict(x)),
                          input_example=example, pip_requirements=["xgboost", "numpy", "pandas"])
gbm = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
mlflow.lightgbm.save_model(gbm, dest / "lightgbm", signature=infer_signature(x, gbm.predict(x)),
                           input_example=example, pip_requirements=["lightgbm", "numpy", "pandas"])

# python_function with a loader_module found in its code path, loading a data file.
code = dest / "_src"
(code / "iris_loader").mkdir(parents=True, exist_ok=True)
(code / "iris_loader" / "__init__.py").write_text("""
import json
import numpy as np

class _Scaled:
    def __init__(self, factor):
        self.factor = factor

    def predict(self, frame, params=None):
        return np.asarray(frame, dtype=float).sum(axis=1) * self.factor

def _load_pyfunc(path):
    with open(path) as f:
        return _Scaled(json.load(f)["factor"])
""")
(dest / "_factor.json").write_text('{"factor": 10}')
sys.path.insert(0, str(code))
mlflow.pyfunc.save_model(dest / "loader", loader_module="iris_loader", data_path=str(dest / "_factor.json"),
                         code_paths=[str(code / "iris_loader")], input_example=example,
                         signature=infer_signature(x, np.zeros(len(x))), pip_requirements=["numpy", "pandas"])

# python_function with a PythonModel whose class lives in a code path and reads an artifact.
(code / "iris_model.py").write_text("""
import mlflow.pyfunc
import numpy as np

class Offset(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["offset"]) as f:
            self.offset = float(f.read())

    def predict(self, context, model_input, params=None):
        return np.asarray(model_input["petal_length"], dtype=float) + self.offset
""")
(dest / "_offset.txt").write_text("100")
from iris_model import Offset
mlflow.pyfunc.save_model(dest / "pythonmodel", python_model=Offset(), artifacts={"offset": str(dest / "_offset.txt")},
                         code_paths=[str(code / "iris_model.py")], input_example=example,
                         signature=infer_signature(x, np.zeros(len(x))), pip_requirements=["numpy", "pandas"])
'''


def write_mlflow_models(dest: Path) -> dict[str, Path]:
    """Folders of MLflow models under ``dest``, by kind (see ``KINDS``)."""
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(dest)], capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"saving the MLflow models failed:\n{done.stderr[-4000:]}")
    return {kind: dest / kind for kind in KINDS}
