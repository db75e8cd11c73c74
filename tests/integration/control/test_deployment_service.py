"""``DeploymentService`` in process over a SQLite store and a real registry: the paths the HTTP tests
cannot see directly (alias refresh failures, prefetch order, rollback of a deleted version)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpier.control.deployments.service import DeploymentService
from modelpier.control.store import SqlDeploymentStore
from modelpier.errors import Conflict
from modelpier.registry.domain import Flavor, ModelVersion, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.settings import load_settings

FOLLOW = {"metadata": {"name": "iris"},
          "spec": {"predictors": [{"model": "iris:production", "followAlias": True}]}}


class RecordingRegistry(Registry):
    """The real registry, noting which versions were materialised (the prefetch before a rollout)."""

    materialized: list[str]

    def materialize(self, version: ModelVersion) -> Path:
        self.materialized.append(version.ref)
        return super().materialize(version)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DeploymentService]:
    settings = load_settings(home=tmp_path)
    base = build_registry(settings)
    registry = RecordingRegistry(base.metadata, base.blobs, base.cache_dir)
    registry.materialized = []
    for version in (1, 2, 3):
        folder = tmp_path / f"artifact-{version}"
        folder.mkdir()
        (folder / "model.bin").write_bytes(f"weights {version}".encode())
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    registry.set_alias("iris", "production", 1)
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    yield DeploymentService(store, registry)
    store.close()
    registry.close()


def reasons(service: DeploymentService) -> list[str]:
    return [e.reason for e in service.events("default", "iris")]


def test_alias_move_prefetches_then_applies(service: DeploymentService) -> None:
    service.apply("default", FOLLOW, "alice")
    assert service.refresh_aliases() == []
    service.registry.set_alias("iris", "production", 2)
    [result] = service.refresh_aliases()
    assert (result.revision.number, result.revision.cause) == (2, "alias iris:production moved from 1 to 2")
    assert result.revision.kind == "alias-follow"
    assert service.registry.materialized == ["iris:2"]  # type: ignore[attr-defined]
    assert service.refresh_aliases() == []  # level-triggered: nothing more to do


def test_a_broken_alias_warns_once_and_recovers(service: DeploymentService) -> None:
    service.apply("default", FOLLOW, "alice")
    service.registry.delete_alias("iris", "production")
    for _ in range(3):
        assert service.refresh_aliases() == []
    assert reasons(service).count("AliasRefreshFailed") == 1
    service.registry.set_alias("iris", "production", 3)
    [result] = service.refresh_aliases()
    assert result.revision.resolved == {"main": "iris:3"}


def test_rollback_to_a_deleted_version_is_refused(service: DeploymentService) -> None:
    service.apply("default", FOLLOW, "alice")
    service.registry.set_alias("iris", "production", 2)
    service.refresh_aliases()
    service.registry.delete_version("iris", 1)
    with pytest.raises(Conflict, match=r"ran iris:1, which is no longer in the registry"):
        service.rollback("default", "iris", None, created_by="alice")
    assert [r.number for r in service.revisions("default", "iris")] == [1, 2]


def test_deleting_deployments_are_not_refreshed(service: DeploymentService) -> None:
    service.apply("default", FOLLOW, "alice")
    service.delete("default", "iris")
    service.registry.set_alias("iris", "production", 2)
    assert service.refresh_aliases() == []
    assert reasons(service)[-1] == "DeletionRequested"


def test_default_outputs_the_model_lacks_are_refused_on_apply(service: DeploymentService, tmp_path: Path) -> None:
    from modelpier.errors import InvalidSpec
    from modelpier.spec.signature import Signature, TensorSpec

    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    signature = Signature(inputs=(TensorSpec(name="x", datatype="FP64", shape=(-1, 4)),),
                          outputs=(TensorSpec(name="predict", datatype="INT64", shape=(-1,)),))
    service.registry.register(NewVersion(model="labels", flavor=Flavor.PYTHON, signature=signature,
                                         files=service.registry.store_files(folder)))
    wanted = {"metadata": {"name": "labels"}, "spec": {"predictors": [{"model": "labels:1", "outputs": ["proba"]}]}}
    with pytest.raises(InvalidSpec, match=r"spec\.predictors\.0\.outputs: model labels:1 has no output 'proba'"):
        service.apply("default", wanted, "alice")
    wanted["spec"]["predictors"][0]["outputs"] = ["predict"]  # type: ignore[index]
    assert service.apply("default", wanted, "alice").revision.spec.predictors[0].outputs == ("predict",)


def test_a_predictor_image_is_refused_by_the_local_backend_naming_the_field(service: DeploymentService) -> None:
    from modelpier.errors import InvalidSpec

    document = {"metadata": {"name": "iris"}, "spec": {"predictors": [
        {"model": "iris:1", "image": "127.0.0.1:5000/iris@sha256:" + "a" * 64}]}}
    with pytest.raises(InvalidSpec, match=r"spec\.predictors\.0\.image: .* only the Kubernetes backend") as refused:
        service.apply("default", document, "alice")
    assert refused.value.details["field"] == "spec.predictors.0.image"
    assert service.list_deployments("default") == []



def test_the_backend_given_decides_what_is_refused(service: DeploymentService) -> None:
    from modelpier.backends.kubernetes.backend import refuse_kubernetes
    from modelpier.errors import InvalidSpec

    pods = DeploymentService(service.store, service.registry, refuse=refuse_kubernetes)
    image = {"metadata": {"name": "iris"}, "spec": {"predictors": [
        {"model": "iris:1", "image": "127.0.0.1:5000/iris@sha256:" + "a" * 64}]}}
    assert pods.apply("default", image, "alice").revision.number == 1  # model-in-image runs in pods
    isolated = {"metadata": {"name": "other"}, "spec": {"predictors": [{"model": "iris:1", "isolated": True}]}}
    with pytest.raises(InvalidSpec) as refused:
        pods.apply("default", isolated, "alice")
    assert refused.value.details["field"] == "spec.predictors.0.isolated"
