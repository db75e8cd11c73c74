"""Write the generated artifacts from their single source of truth (``make generate``).

Today: ``docs/reference/modeldeployment.schema.json`` from ``modelpier.spec.deployment``, and the
Kubernetes CRD ``deploy/kubernetes/base/crd.yaml`` from the same models. Unit tests
(``tests/unit/spec/test_generated.py``, ``tests/unit/backends/kubernetes/test_crd.py``) fail when a
committed file drifts from its source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modelpier.backends.kubernetes.crd import crd_yaml
from modelpier.spec.deployment import deployment_json_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "reference" / "modeldeployment.schema.json"
CRD_PATH = ROOT / "deploy" / "kubernetes" / "base" / "crd.yaml"


def render_schema() -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **deployment_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    for path, text in ((SCHEMA_PATH, render_schema()), (CRD_PATH, crd_yaml())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
