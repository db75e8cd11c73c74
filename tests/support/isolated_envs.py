"""An environment with another scikit-learn than the test venv's, built once per session with uv.

``OLD_SKLEARN`` pins scikit-learn 1.5 (the test venv has 1.9): models saved inside it need it, and
serving them isolated runs them in it. The cache folder is shared by every test of the session
(``PIER_REGISTRY__ENVIRONMENTS_DIR``), so uv builds it once.
"""

from __future__ import annotations

import platform
from pathlib import Path

from modelpier.backends.local.environments import (
    EnvironmentCache,
    EnvironmentPlan,
    modelpier_path_entry,
    plan_environment,
    serving_requirements,
)
from modelpier.registry.lock import parse_requirements

OLD_SKLEARN = """scikit-learn==1.5.2
numpy==2.1.3
scipy==1.14.1
joblib==1.4.2
threadpoolctl==3.5.0
"""


def build_old_sklearn_env(root: Path) -> tuple[Path, EnvironmentPlan]:
    """The Python of the scikit-learn 1.5 environment under ``root`` (built on first use), and its plan."""
    lock = parse_requirements(OLD_SKLEARN, python=platform.python_version())
    plan = plan_environment(lock, serving_requirements())
    cache = EnvironmentCache(root)
    cache.ensure(plan)
    return cache.python(plan), plan


def python_path(root: Path) -> str:
    """The PYTHONPATH that makes this modelpier importable inside an environment of ``root``."""
    return str(modelpier_path_entry(root))
