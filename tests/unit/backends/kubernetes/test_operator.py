"""The kopf handlers' body (``handle``): status into kopf's patch, API errors into retry types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from modelpier.backends.kubernetes.operator import OperatorConfig, build_registry, handle, status_changed
from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.errors import ServiceUnavailable
from tests.unit.backends.kubernetes.fakes import FakeCluster, custom_resource

NOW = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = {"predictors": [{"model": "iris:3"}]}


class FailingCluster(FakeCluster):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def apply(self, obj: dict[str, Any]) -> None:
        raise ApiException(status=self.status, reason="Nope")


def test_handle_writes_the_status_into_the_patch() -> None:
    cluster, patch = FakeCluster(), kopf.Patch()
    handle(custom_resource(SPEC), patch, cluster, RenderOptions(), now=NOW)
    assert patch["status"]["observedGeneration"] == 1
    assert patch["status"]["conditions"][0]["type"] == "Ready"
    assert len(cluster.objects) == 3


def test_an_unchanged_status_is_not_patched_again() -> None:
    cluster, first = FakeCluster(), kopf.Patch()
    handle(custom_resource(SPEC), first, cluster, RenderOptions(), now=NOW)
    second = kopf.Patch()
    handle(custom_resource(SPEC, status=dict(first["status"])), second, cluster, RenderOptions(), now=NOW)
    assert "status" not in second


@pytest.mark.parametrize(("code", "error"), [
    (500, kopf.TemporaryError), (503, kopf.TemporaryError), (409, kopf.TemporaryError), (429, kopf.TemporaryError),
    (422, kopf.PermanentError), (403, kopf.PermanentError)])
def test_api_errors_become_kopf_retry_types(code: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        handle(custom_resource(SPEC), kopf.Patch(), FailingCluster(code), RenderOptions(), now=NOW)


class NoGatewayApiCluster(FakeCluster):
    def apply(self, obj: dict[str, Any]) -> None:
        if obj["kind"] == "HTTPRoute":
            raise ServiceUnavailable("the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute")
        super().apply(obj)


def test_a_kind_the_cluster_does_not_serve_is_retried_with_the_reason() -> None:
    with pytest.raises(kopf.TemporaryError, match="does not serve"):
        handle(custom_resource(SPEC), kopf.Patch(), NoGatewayApiCluster(), RenderOptions(), now=NOW)


def test_status_changed() -> None:
    assert status_changed({}, {"url": "u"})
    assert not status_changed({}, {"url": None})  # absent and null read the same
    assert not status_changed({"status": {"url": "u", "readyReplicas": 1}}, {"url": "u"})
    assert status_changed({"status": {"url": "u"}}, {"url": "v"})


def test_each_registry_is_separate() -> None:
    config = OperatorConfig(render=RenderOptions())
    first, second = build_registry(config, FakeCluster()), build_registry(config, FakeCluster())
    assert isinstance(first, kopf.OperatorRegistry)
    assert first is not second
