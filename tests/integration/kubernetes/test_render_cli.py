"""`pier render`: the ModelDeployment custom resource of a file, byte-identical run to run, for GitOps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.procs import run_pier

SPEC = """
apiVersion: modelpier.io/v1alpha1
kind: ModelDeployment
metadata: {name: iris, project: acme}
spec:
  predictors:
    - {name: main, model: "iris:production", weight: 90, autoscaling: {minReplicas: 2, maxReplicas: 6}}
    - {name: canary, model: "iris:7", weight: 10}
  routes:
    - {match: {headers: {x-segment: beta}}, predictor: canary}
  auth: {mode: token}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "iris.yaml"
    path.write_text(SPEC)
    return path


def test_render_prints_the_custom_resource(spec_file: Path, tmp_path: Path) -> None:
    first = run_pier(["render", "-f", str(spec_file)], tmp_path, check=True).stdout
    assert first == run_pier(["render", "-f", str(spec_file)], tmp_path, check=True).stdout
    [cr] = yaml.safe_load_all(first)
    assert cr["metadata"] == {"name": "iris", "namespace": "acme"}  # the project is the namespace
    assert cr["spec"] == yaml.safe_load(SPEC)["spec"]  # every field, as written (auth too)
    # The output is a pier file as well: metadata.namespace reads as the project.
    again = tmp_path / "cr.yaml"
    again.write_text(first)
    assert run_pier(["render", "-f", str(again)], tmp_path, check=True).stdout == first


@pytest.mark.parametrize(("flags", "namespace"), [
    ([], "acme"), (["--namespace", "acme"], "acme"), (["--custom-resource"], "acme")])
def test_render_namespace(spec_file: Path, tmp_path: Path, flags: list[str], namespace: str) -> None:
    out = run_pier(["render", "-f", str(spec_file), *flags], tmp_path, check=True).stdout
    assert yaml.safe_load(out)["metadata"]["namespace"] == namespace


def test_render_refuses_a_namespace_that_is_not_the_project(spec_file: Path, tmp_path: Path) -> None:
    result = run_pier(["render", "-f", str(spec_file), "--namespace", "team-a"], tmp_path)
    assert result.returncode != 0
    assert "does not match metadata.namespace/project 'acme'" in result.stderr


def test_render_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("weight: 10", "weight: 20"))
    result = run_pier(["render", "-f", str(path)], tmp_path)
    assert result.returncode != 0
    assert "weight must add up to 100" in result.stderr


def test_pier_operator_says_where_its_work_went(tmp_path: Path) -> None:
    result = run_pier(["operator", "--namespace", "x"], tmp_path)
    assert result.returncode == 2
    assert "pier server --backend kubernetes" in result.stderr
