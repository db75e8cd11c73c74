"""Models and servers for the client's acceptance tests.

``COUNTING_MODEL`` logs every value it predicts to ``calls.log`` in its folder (one line per row,
appended before predicting), so a test can count executions; a value of 200+k blocks until the test
creates ``gate-k`` in the folder. ``tabular`` has named column inputs (age INT64, city BYTES), so a
DataFrame goes one input per column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COUNTING_MODEL = '''
import time
from pathlib import Path

import numpy as np


class Counting:
    def load(self, path):
        self.folder = Path(path)
        self.log = Path((self.folder / "log-path").read_text().strip())

    def predict(self, inputs):
        x = np.asarray(inputs["x"], dtype=float)
        with open(self.log, "a") as out:
            out.write("".join(f"{int(v)}\\n" for v in x.ravel()))
        for value in x.ravel():
            if value >= 200:
                gate = self.log.parent / f"gate-{int(value) - 200}"
                while not gate.exists():
                    time.sleep(0.01)
        return {"y": x * 2}
'''

TABULAR_MODEL = '''
import numpy as np


class Tabular:
    def load(self, path):
        pass

    def predict(self, inputs):
        age = np.asarray(inputs["age"], dtype=float).reshape(-1)
        city = np.asarray(inputs["city"]).reshape(-1)
        return {"score": age + np.array([len(c) for c in city], dtype=float)}
'''


def write_counting_model(folder: Path, log: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(COUNTING_MODEL)
    (folder / "python-model.json").write_text(json.dumps({"class": "Counting"}))
    (folder / "log-path").write_text(str(log))
    log.touch()
    return folder


def executions(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()]


def save_tabular(home: Path) -> None:
    """Register ``tabular`` with a signature of two column inputs, in the registry under ``home``."""
    import modelpier
    from modelpier.settings import load_settings

    folder = home / "tabular-src"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(TABULAR_MODEL)
    (folder / "python-model.json").write_text(json.dumps({"class": "Tabular"}))
    signature = {"inputs": [{"name": "age", "datatype": "INT64", "shape": [-1]},
                            {"name": "city", "datatype": "BYTES", "shape": [-1]}],
                 "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}]}
    modelpier.save_model("tabular", folder, flavor="python", signature=signature, settings=load_settings(home=home))


def iris_rows() -> np.ndarray:
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    return np.asarray(x[::30])  # five rows, every class


DOC = Path(__file__).resolve().parents[3] / "docs" / "client.md"


def doc_blocks(target: str) -> list[str]:
    """The Python blocks of docs/client.md marked ``<!-- tested: {target} -->``, in order."""
    blocks: list[str] = []
    lines = DOC.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"<!-- tested: {target} -->":
            assert lines[i + 1].strip() == "```python", f"docs/client.md:{i + 2}: a tested block must follow"
            end = lines.index("```", i + 2)
            blocks.append("\n".join(lines[i + 2:end]))
    return blocks
