"""Reading stored specs: revisions written under older defaults keep their meaning."""

from __future__ import annotations

from modelpier.control.store.convert import spec_in, spec_json
from modelpier.spec.deployment import ModelDeploymentSpec


def test_a_revision_stored_with_batching_null_reads_as_batching_off() -> None:
    stored = {"predictors": [{"name": "main", "model": "iris:1", "batching": None},
                             {"name": "next", "model": "iris:2", "weight": 0}]}
    spec = spec_in(stored)
    assert spec.predictors[0].batching.enabled is False  # null was "off" when it was written
    assert spec.predictors[1].batching.enabled is True  # absent: today's default


def test_a_stored_spec_round_trips() -> None:
    spec = ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris:1", "batching": {"maxBatchSize": 8}}]})
    assert spec_in(spec_json(spec)) == spec
