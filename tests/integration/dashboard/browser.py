"""Debian's Chromium driven by Playwright, the one browser setup of the dashboard tests and `make screenshots`.

``playwright install`` downloads browsers and fails on these machines; the system's
``/usr/bin/chromium`` (installed by scripts/install-system-deps.sh) is launched instead, headless.
Also the platform the pages are tested against: ``pier up`` in a throwaway ``PIER_HOME`` with the
example iris model (``ensure_example_model``, the model ``pier up`` registers) plus a second version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright, ViewportSize

CHROMIUM = Path(os.environ.get("PIER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
INSTALL_HINT = "install it with scripts/install-system-deps.sh (as root), or point PIER_CHROMIUM at a Chromium"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}  # a phone, or a window beside an editor


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing; {INSTALL_HINT}")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def register_example_models(home: Path) -> None:
    """iris:1 (the example, alias production) and iris:2 (another regularisation), before ``pier up``."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.examples.iris import ensure_example_model
    from modelpier.registry.factory import build_registry
    from modelpier.settings import load_settings

    settings = load_settings(home=home, user="tester")
    registry = build_registry(settings)
    try:
        ensure_example_model(registry, settings)
        x, y = load_iris(return_X_y=True)
        x = x.astype("float32")
        model = LogisticRegression(C=0.05, max_iter=500).fit(x, y)
        modelpier.save_model("iris", model, input_example=x[:2], registry=registry, settings=settings,
                             tags={"example": "true", "dataset": "iris"},
                             metrics={"train_accuracy": float(model.score(x, y))},
                             description="Iris classifier with stronger regularisation (C=0.05).")
    finally:
        registry.close()
