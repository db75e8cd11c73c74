"""`pier render`: the operator's manifests on stdout, byte-identical run to run, for GitOps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelpier.backends.kubernetes.options import RenderOptions
from modelpier.backends.kubernetes.render import render, to_yaml
from modelpier.spec.deployment import parse_deployment
from tests.support.procs import run_pier
from tests.unit.backends.kubernetes.validation import validate

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
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "iris.yaml"
    path.write_text(SPEC)
    return path


def test_render_prints_the_same_manifests_as_the_library(spec_file: Path, tmp_path: Path) -> None:
    first = run_pier(["render", "-f", str(spec_file)], tmp_path, check=True).stdout
    second = run_pier(["render", "-f", str(spec_file)], tmp_path, check=True).stdout
    assert first == second
    expected = render(parse_deployment(yaml.safe_load(SPEC)), RenderOptions(managed_by="pier-render"))
    assert first == to_yaml(expected)
    for obj in yaml.safe_load_all(first):
        validate(obj, "1.30")


@pytest.mark.parametrize(("flags", "kind", "namespace"), [
    (["--routing", "istio"], "VirtualService", "acme"),
    (["--namespace", "team-a", "--kubernetes-version", "1.25"], "HTTPRoute", "team-a"),
    (["--custom-resource"], "ModelDeployment", "acme"),
])
def test_render_options(spec_file: Path, tmp_path: Path, flags: list[str], kind: str, namespace: str) -> None:
    out = run_pier(["render", "-f", str(spec_file), *flags], tmp_path, check=True).stdout
    objects = list(yaml.safe_load_all(out))
    assert objects[-1]["kind"] == kind
    assert {o["metadata"]["namespace"] for o in objects} == {namespace}
    for obj in objects:
        validate(obj, "1.30")


@pytest.mark.parametrize(("flags", "message"), [
    (["--routing", "nginx"], "choose one of gateway-api, istio"),
    (["--kubernetes-version", "1.20"], "1.23 or newer"),
])
def test_render_refuses_bad_options(spec_file: Path, tmp_path: Path, flags: list[str], message: str) -> None:
    result = run_pier(["render", "-f", str(spec_file), *flags], tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_render_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("weight: 10", "weight: 20"))
    result = run_pier(["render", "-f", str(path)], tmp_path)
    assert result.returncode != 0
    assert "weight must add up to 100" in result.stderr
