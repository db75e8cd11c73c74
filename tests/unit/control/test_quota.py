from __future__ import annotations

import pytest

from modelpier.auth.quota import Limits, Resources
from modelpier.control.deployments.quota import cpu_millis, memory_bytes, require_within_quota, spec_resources
from modelpier.errors import Forbidden
from modelpier.spec.deployment import ModelDeploymentSpec


def spec(replicas: int = 1, *, cpu: str = "500m", memory: str = "1Gi", gpu: int = 0,
         max_replicas: int | None = None) -> ModelDeploymentSpec:
    predictor: dict[str, object] = {"name": "main", "model": "iris:1", "replicas": replicas,
                                    "resources": {"cpu": cpu, "memory": memory, "gpu": gpu}}
    if max_replicas is not None:
        predictor["autoscaling"] = {"minReplicas": 1, "maxReplicas": max_replicas}
    return ModelDeploymentSpec.model_validate({"predictors": [predictor]})


@pytest.mark.parametrize(("q", "millis"), [("1", 1000), ("0.5", 500), ("250m", 250)])
def test_cpu_quantities(q: str, millis: int) -> None:
    assert cpu_millis(q) == millis


@pytest.mark.parametrize(("q", "n"), [("1Gi", 1024**3), ("512Mi", 512 * 1024**2), ("1G", 10**9), ("100", 100)])
def test_memory_quantities(q: str, n: int) -> None:
    assert memory_bytes(q) == n


def test_autoscaled_predictors_count_at_their_ceiling() -> None:
    assert spec_resources(spec(2, max_replicas=6, gpu=1)) == Resources(
        replicas=6, cpu_millis=3000, memory_bytes=6 * 1024**3, gpus=6, deployments=1)


def test_apply_is_refused_naming_each_exceeded_quota() -> None:
    with pytest.raises(Forbidden) as refused:
        require_within_quota([spec(3)], None, spec(2, gpu=1), Limits(replicas=4, gpus=0, deployments=5))
    assert "replicas: limit 4, would use 5 (over by 1)" in refused.value.message
    assert [e["quota"] for e in refused.value.details["exceeded"]] == ["replicas", "gpus"]


def test_replacing_a_deployment_counts_only_the_difference_and_shrinking_always_passes() -> None:
    require_within_quota([spec(2)], spec(2), spec(2), Limits(replicas=4, deployments=2))
    require_within_quota([spec(5)], spec(3), spec(1), Limits(replicas=4))  # over already, shrinking
