"""`pier deploy|get|describe|rollout|delete|logs` as a user runs them, against a real `pier server`.

No reconciler runs here, so these tests cover desired state (revisions, rollbacks, listings) and
`--no-wait`; `--wait` against live replicas belongs to the end-to-end suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.procs import control_plane, free_port, run_pier

from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings

SPEC = """\
apiVersion: modelpier.io/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  predictors:
    - name: main
      model: iris:production
      replicas: {replicas}
      resources: {{cpu: 500m, memory: 512Mi}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("cli-home")
    registry = build_registry(load_settings(home=home))
    try:
        for version in (1, 2):
            folder = home / f"artifact-{version}"
            folder.mkdir()
            (folder / "model.bin").write_bytes(f"weights {version}".encode())
            registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
        registry.set_alias("iris", "production", 1)
    finally:
        registry.close()
    with control_plane(home) as url:
        yield home, url


def pier(server: tuple[Path, str], *args: str, check: bool = True) -> Any:
    home, url = server
    return run_pier(list(args), home, check=check, PIER_REMOTE=url)


def pier_json(server: tuple[Path, str], *args: str) -> Any:
    return json.loads(pier(server, *args, "-o", "json").stdout)


def spec_file(tmp_path: Path, replicas: int = 1, text: str | None = None) -> str:
    path = tmp_path / f"iris-{replicas}.yaml"
    path.write_text(text if text is not None else SPEC.format(replicas=replicas))
    return str(path)


def test_deploy_get_describe_rollout_delete(server: tuple[Path, str], tmp_path: Path) -> None:
    first = pier(server, "deploy", "-f", spec_file(tmp_path), "--no-wait")
    assert "default/iris" in first.stdout
    assert "revision 1 created" in first.stdout
    assert "main=iris:1" in first.stdout
    again = pier_json(server, "deploy", "-f", spec_file(tmp_path))
    assert (again["created"], again["revision"]["number"]) == (False, 1)
    assert "revision 2 created" in pier(server, "deploy", "-f", spec_file(tmp_path, replicas=2)).stdout

    table = pier(server, "get", "deployments").stdout
    for column in ("NAME", "READY", "REVISION", "URL", "AGE", "STATUS", "iris", "Pending"):
        assert column in table
    listed = pier_json(server, "get", "deployments")
    assert [d["metadata"]["name"] for d in listed] == ["iris"]
    one = yaml.safe_load(pier(server, "get", "deployment", "iris", "-o", "yaml").stdout)
    assert (one["metadata"]["revision"], one["spec"]["predictors"][0]["replicas"]) == (2, 2)
    assert one["status"]["desiredRevision"] == 2

    for args in (("describe", "iris"), ("describe", "deployment", "iris")):
        page = pier(server, *args).stdout
        for fragment in ("Name:", "Predictors", "iris:production", "iris:1", "cpu 500m", "Events", "RevisionCreated"):
            assert fragment in page, page
    described = pier_json(server, "describe", "iris")
    assert [e["reason"] for e in described["events"]] == ["RevisionCreated", "RevisionCreated"]

    history = pier(server, "rollout", "history", "iris").stdout
    assert "applied" in history
    assert "main=iris:1" in history
    undo = pier(server, "rollout", "undo", "iris")
    assert "revision 3 created (rollback to revision 1)" in undo.stdout
    undone = pier_json(server, "rollout", "undo", "iris", "--to-revision", "2")
    assert (undone["created"], undone["revision"]["cause"]) == (True, "rollback to revision 2")
    assert [r["number"] for r in pier_json(server, "get", "revisions", "iris")] == [1, 2, 3, 4]

    pending = pier(server, "rollout", "status", "iris", "--no-watch", check=False)
    assert pending.returncode == 1
    assert "waiting for revision 4" in pending.stdout

    logs = pier(server, "logs", "iris", "--tail", "5", check=False)
    assert logs.returncode == 4
    assert "logs are not available" in logs.stderr

    assert "deletion requested" in pier(server, "delete", "deployment", "iris").stdout
    assert pier_json(server, "get", "deployment", "iris")["metadata"]["deleting"] is True
    assert "Deleting" in pier(server, "get", "deployments").stdout


def test_deploy_a_model_reference_writes_the_spec(server: tuple[Path, str]) -> None:
    out = pier_json(server, "deploy", "iris:2", "--name", "quick", "--replicas", "2")
    assert out["revision"]["resolved"] == {"main": "iris:2"}
    assert out["deployment"]["spec"]["predictors"][0]["replicas"] == 2


def test_deploying_a_reference_onto_a_deployment_changes_only_the_model(server: tuple[Path, str],
                                                                        tmp_path: Path) -> None:
    spec = SPEC.replace("model: iris:production", "model: iris:production\n      followAlias: true")
    pier(server, "deploy", "-f", spec_file(tmp_path, text=spec.format(replicas=2).replace("name: iris", "name: kept")))
    moved = " ".join(pier(server, "deploy", "iris:2", "--name", "kept").stdout.split())  # unwrapped
    assert "revision 2 created" in moved
    assert "changed: model iris:production -> iris:2; followAlias off (iris:2 names no alias)" in moved
    kept = pier_json(server, "get", "deployment", "kept")["spec"]
    assert kept["predictors"][0]["replicas"] == 2  # kept, not reset to 1
    assert kept["predictors"][0]["resources"]["cpu"] == "500m"
    assert kept["predictors"][0]["model"] == "iris:2"
    back = " ".join(pier(server, "deploy", "iris:production", "--name", "kept", "--follow-alias").stdout.split())
    assert "changed: model iris:2 -> iris:production; followAlias on" in back
    replaced = pier(server, "deploy", "iris:1", "--name", "kept", "--replace").stdout
    assert "changed: replaced the whole spec" in replaced
    assert pier_json(server, "get", "deployment", "kept")["spec"]["predictors"][0]["replicas"] == 1


def test_deploying_a_reference_onto_several_predictors_is_refused(server: tuple[Path, str], tmp_path: Path) -> None:
    two = SPEC.format(replicas=1).replace("name: iris", "name: ab") + "      weight: 90\n" + \
        '    - {name: b, model: "iris:2", weight: 10}\n'
    pier(server, "deploy", "-f", spec_file(tmp_path, text=two))
    refused = pier(server, "deploy", "iris:2", "--name", "ab", check=False)
    assert refused.returncode == 5, refused.stderr
    assert "deployment ab has 2 predictors (main, b)" in " ".join(refused.stderr.split())
    assert "--replace" in refused.stderr


def test_projects_from_the_cli(server: tuple[Path, str], tmp_path: Path) -> None:
    missing = pier(server, "deploy", "-f", spec_file(tmp_path), "-p", "team-a", check=False)
    assert missing.returncode == 4
    assert "project 'team-a' does not exist" in missing.stderr
    pier(server, "create", "project", "team-a")
    assert "revision 1 created" in pier(server, "deploy", "-f", spec_file(tmp_path), "-p", "team-a").stdout
    assert "team-a" in pier(server, "get", "deployments", "-A").stdout
    assert {"name": "team-a"} in pier_json(server, "get", "projects")


@pytest.mark.parametrize(("content", "extra", "code", "fragment"), [
    (SPEC.format(replicas=1).replace("replicas: 1", "replicas: -1"), [], 3, "spec.predictors.0.replicas"),
    (SPEC.format(replicas=1).replace("model: iris:production", "model: iris:production\n      weight: 40"), [], 3,
     "must add up to 100"),
    ("spec: [oops", [], 3, "neither YAML nor JSON"),
    ("- just\n- a list\n", [], 3, "one ModelDeployment mapping"),
    (SPEC.format(replicas=1).replace("iris:production", "ghost:1"), [], 4, "model 'ghost' does not exist"),
    (SPEC.format(replicas=1).replace("name: iris", "name: iris\n  project: other"), ["-p", "default"], 3,
     "does not match metadata.project"),
])
def test_bad_files_exit_with_a_clear_message(server: tuple[Path, str], tmp_path: Path, content: str,
                                             extra: list[str], code: int, fragment: str) -> None:
    result = pier(server, "deploy", "-f", spec_file(tmp_path, text=content), *extra, check=False)
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors(server: tuple[Path, str], tmp_path: Path) -> None:
    missing = pier(server, "deploy", "-f", str(tmp_path / "nope.yaml"), check=False)
    assert (missing.returncode, "does not exist" in missing.stderr) == (3, True)
    neither = pier(server, "deploy", check=False)
    assert neither.returncode == 3
    assert "-f FILE or a MODEL_REF" in neither.stderr
    unknown = pier(server, "get", "deployment", "ghost", check=False)
    assert unknown.returncode == 4
    assert "deployment 'ghost' does not exist" in unknown.stderr
    home, _ = server
    down = run_pier(["get", "deployments", "--remote", f"http://127.0.0.1:{free_port()}"], home)
    assert down.returncode == 9
    assert "cannot reach the modelpier control plane" in down.stderr


def test_help_names_the_commands(server: tuple[Path, str]) -> None:
    top = pier(server, "--help").stdout
    for command in ("deploy", "get", "describe", "rollout", "delete", "logs"):
        assert command in top
    assert "--wait" in pier(server, "deploy", "--help").stdout
