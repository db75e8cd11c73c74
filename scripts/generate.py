"""Write the generated artifacts from their single source of truth (``make generate``).

Today: ``docs/reference/modeldeployment.schema.json`` from ``modelpier.spec.deployment``. A unit
test (``tests/unit/spec/test_generated.py``) fails when a committed file drifts from its source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modelpier.spec.deployment import deployment_json_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "reference" / "modeldeployment.schema.json"


def render_schema() -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **deployment_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(render_schema())
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
