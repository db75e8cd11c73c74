"""``DeploymentPort``: the control plane's side of the CR synchroniser, over a real ``DeploymentService``
(SQLite, a real registry); no cluster needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpier.control.deployments.custom_resources import DeploymentPort
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.store import SqlDeploymentStore
from modelpier.errors import InvalidInput, NotFound
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings
from modelpier.spec.deployment import parse_deployment_spec

SPEC = parse_deployment_spec({"predictors": [{"model": "iris:1"}]})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DeploymentService]:
    settings = load_settings(home=tmp_path)
    registry = build_registry(settings)
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    yield DeploymentService(store, registry)
    store.close()
    registry.close()


def test_apply_creates_the_namespaces_project_and_revisions_like_pier_deploy(service: DeploymentService) -> None:
    port = DeploymentPort(service)
    assert port.status("team-a", "iris") is None
    applied = port.apply("team-a", "iris", SPEC, "kubernetes/kubectl")
    assert (applied.revision, applied.created) == (1, True)
    assert port.apply("team-a", "iris", SPEC, "kubernetes/kubectl").created is False  # same spec: nothing new
    [revision] = service.revisions("team-a", "iris")
    assert (revision.created_by, revision.cause) == ("kubernetes/kubectl", "applied")
    view = port.status("team-a", "iris")
    assert view is not None
    assert (view.revision, view.deleting, view.bound) == (1, False, True)  # a CR made it: bound


def test_binding_is_remembered_by_the_control_plane(service: DeploymentService) -> None:
    service.create_project("acme")
    service.apply("acme", {"metadata": {"name": "iris"}, "spec": {"predictors": [{"model": "iris:1"}]}}, "alice")
    assert DeploymentPort(service).status("acme", "iris").bound is False  # type: ignore[union-attr]
    DeploymentPort(service).bind("acme", "iris", "ModelDeployment acme/iris (uid u1)")
    assert [v.bound for v in DeploymentPort(service).list()] == [True]  # a new process knows it too


def test_refusals_are_the_error_tree(service: DeploymentService) -> None:
    port = DeploymentPort(service)
    with pytest.raises(NotFound, match="does not resolve"):
        port.apply("acme", "iris", parse_deployment_spec({"predictors": [{"model": "nosuch:1"}]}), "kubernetes/x")
    with pytest.raises(InvalidInput, match="deployment name"):  # the synchroniser reports it as InvalidSpec
        port.apply("acme", "Not_A_Name", SPEC, "kubernetes/x")
    port.delete("acme", "absent")  # absent already is fine
    port.apply("acme", "iris", SPEC, "kubernetes/x")
    port.delete("acme", "iris")
    assert port.status("acme", "iris").deleting is True  # type: ignore[union-attr]
