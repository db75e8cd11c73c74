"""A python model that raises the error of the tree its input names: the transports' error maps, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from modelpier import errors

# Input value i raises RAISED[i]; a value past the end raises a RuntimeError (outside the tree).
RAISED = ["NotFound", "Conflict", "InvalidSpec", "Unauthenticated", "Forbidden", "StoreBusy", "PayloadTooLarge",
          "DeadlineExceeded", "ServiceUnavailable", "Overloaded", "RemoteUnreachable", "IntegrityError"]
RAISER = f'''
import numpy as np

from modelpier import errors

RAISED = {RAISED!r}


class Raiser:
    def load(self, path):
        pass

    def predict(self, inputs):
        index = int(np.asarray(next(iter(inputs.values())), dtype=float).ravel()[0])
        if index >= len(RAISED):
            raise RuntimeError("the model hit a bug")
        name = RAISED[index]
        extra = {{"retry_after_s": 7}} if name == "Overloaded" else {{}}
        raise getattr(errors, name)(f"{{name}} raised by the model", **extra)
'''


def write_raiser_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(RAISER)
    (folder / "python-model.json").write_text(json.dumps({"class": "Raiser"}))
    return folder


def raised(name: str) -> errors.PierError:
    """The error the model raises for ``name``, as the test process builds it."""
    cls = getattr(errors, name)
    return cls(f"{name} raised by the model", **({"retry_after_s": 7} if name == "Overloaded" else {}))
