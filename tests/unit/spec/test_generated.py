"""Generated artifacts must match their source: run `make generate` when this fails."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from modelpier.spec.deployment import deployment_json_schema

ROOT = Path(__file__).resolve().parents[3]


def _generate_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pier_generate", ROOT / "scripts" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_schema_matches_the_spec() -> None:
    generate = _generate_script()
    committed = generate.SCHEMA_PATH.read_text()
    assert committed == generate.render_schema(), "docs/reference/modeldeployment.schema.json is stale: make generate"


def test_the_schema_uses_wire_names_and_forbids_unknown_fields() -> None:
    schema = json.loads((ROOT / "docs" / "reference" / "modeldeployment.schema.json").read_text())
    assert schema == {"$schema": "https://json-schema.org/draft/2020-12/schema", **deployment_json_schema()}
    predictor = schema["$defs"]["PredictorSpec"]
    assert "followAlias" in predictor["properties"]
    assert predictor["additionalProperties"] is False
