"""Write the generated artifacts from their single source of truth (``make generate``).

Today: ``docs/reference/modeldeployment.schema.json`` from ``modelpier.spec.deployment``, the
Kubernetes CRD ``deploy/kubernetes/base/crd.yaml`` from the same models, and the table of settings in
``docs/configuration.md`` from ``modelpier.settings``. Unit tests (``tests/unit/spec/test_generated.py``,
``tests/unit/backends/kubernetes/test_crd.py``, ``tests/unit/test_settings.py``) fail when a committed
file drifts from its source.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from modelpier.backends.kubernetes.crd import crd_yaml
from modelpier.settings import SettingField, setting_fields
from modelpier.spec.deployment import deployment_json_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "reference" / "modeldeployment.schema.json"
CRD_PATH = ROOT / "deploy" / "kubernetes" / "base" / "crd.yaml"
CONFIGURATION_PATH = ROOT / "docs" / "configuration.md"
SETTINGS_BEGIN = ("<!-- settings table: generated from src/modelpier/settings.py by `make generate`; "
                  "edit the descriptions there -->")
SETTINGS_END = "<!-- end of the settings table -->"
# Defaults computed when the settings load, as the docs name them.
_FACTORY_DEFAULTS = {"home": "`~/.modelpier`", "user": "`$USER`"}


def render_schema() -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **deployment_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _default(field: SettingField) -> str:
    if field.info.default_factory is not None:
        return _FACTORY_DEFAULTS[field.path]
    value: Any = field.info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return ",".join(value) or "empty"
    if field.path.endswith("_bytes") and isinstance(value, int) and value >= 1024:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size} {unit}"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def render_settings_table() -> str:
    """The table of every setting: name, variable, default and its description from settings.py."""
    lines = ["| setting | variable | default | meaning |", "|---|---|---|---|"]
    for field in setting_fields():
        meaning = re.sub(r"\s+", " ", field.info.description or "").replace("|", "\\|")
        lines.append(f"| `{field.path}` | `{field.env_var}` | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def render_configuration(current: str) -> str:
    """``docs/configuration.md`` with the text between the settings markers regenerated."""
    begin, end = current.index(SETTINGS_BEGIN) + len(SETTINGS_BEGIN), current.index(SETTINGS_END)
    return current[:begin] + "\n" + render_settings_table() + current[end:]


def main() -> int:
    configuration = render_configuration(CONFIGURATION_PATH.read_text())
    for path, text in ((SCHEMA_PATH, render_schema()), (CRD_PATH, crd_yaml()), (CONFIGURATION_PATH, configuration)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
