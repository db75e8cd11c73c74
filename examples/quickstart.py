"""Quickstart: train a model, register it, move an alias, load it back. Run: python examples/quickstart.py

Uses the registry under $PIER_HOME (default ~/.modelpier); the test suite runs this file with a
temporary PIER_HOME.
"""

import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import modelpier

x, y = load_iris(return_X_y=True)
model = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)

version = modelpier.save_model(
    "forest", model, input_example=x[:2], metrics={"train_accuracy": model.score(x, y)},
    tags={"dataset": "iris"}, description="quickstart forest")
print("registered", version.ref, "digest", version.digest[:19])
assert version.signature is not None
print("inputs:", [(t.name, t.datatype, list(t.shape)) for t in version.signature.inputs])
print("outputs:", [(t.name, t.datatype, list(t.shape)) for t in version.signature.outputs])

same = modelpier.load_model(version.ref)
assert np.array_equal(same.predict(x), model.predict(x))
print("loaded back; predictions match")
