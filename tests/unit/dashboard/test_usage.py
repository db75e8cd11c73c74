"""A project's usage against its quotas: counted like the quota check, shown in words and bars."""

from __future__ import annotations

import pytest

from modelpier.auth.quota import Resources
from modelpier.auth.wire import QuotaBody
from modelpier.dashboard.usage import UsageBar, format_bytes, project_usage, usage_bars
from modelpier.spec.deployment import ModelDeploymentSpec


def spec(**predictor: object) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": "iris:1", **predictor}]})


def test_usage_counts_replicas_at_their_ceiling_and_adds_storage() -> None:
    usage = project_usage([spec(replicas=2, resources={"cpu": "500m", "memory": "1Gi"}),
                           spec(autoscaling={"minReplicas": 1, "maxReplicas": 3})], storage_bytes=2048)
    assert usage == Resources(replicas=5, cpu_millis=2 * 500 + 3 * 1000, memory_bytes=5 * 1024**3, gpus=0,
                              storage_bytes=2048, deployments=2)


def test_bars_pair_usage_with_limits_and_say_how_full() -> None:
    usage = Resources(replicas=4, cpu_millis=1000, memory_bytes=3 * 1024**3, storage_bytes=10, deployments=1)
    bars = {b.quota: b for b in usage_bars(usage, QuotaBody(replicas=5, cpu_millis=500, memory_bytes=4 * 1024**3,
                                                            gpus=0, deployments=10))}
    assert [b.quota for b in usage_bars(usage, QuotaBody())] == list(bars)
    assert (bars["replicas"].level, bars["cpu_millis"].level, bars["deployments"].level) == ("warn", "over", "ok")
    assert bars["gpus"].level == "ok"  # 0 of 0: nothing allowed and nothing used
    assert bars["storage_bytes"].level == "none"
    assert bars["cpu_millis"].show(1000) == "1 core"
    assert bars["cpu_millis"].show(1500) == "1.5 cores"
    assert bars["memory_bytes"].show(3 * 1024**3) == "3.0 GiB"
    assert bars["storage_bytes"].show(None) == "unlimited"


def test_a_zero_limit_with_usage_is_over() -> None:
    assert UsageBar("gpus", "GPUs", 1, 0).level == "over"


@pytest.mark.parametrize(("amount", "text"), [(0, "0 B"), (931, "931 B"), (1536, "1.5 KiB"),
                                              (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB")])
def test_format_bytes(amount: int, text: str) -> None:
    assert format_bytes(amount) == text
