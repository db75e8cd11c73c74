"""`pier models ...` and `pier config show` as a user runs them: real processes, real stores."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.support.procs import ADMIN_TOKEN, run_pier


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    (path.parent / "example.json").write_text(json.dumps(x[:3].tolist()))
    return path


def pier_json(args: list[str], home: Path) -> object:
    r = run_pier([*args, "-o", "json"], home, check=True)
    return json.loads(r.stdout)


def test_save_list_get_alias_tag_delete(model_file: Path, tmp_path: Path) -> None:
    example = model_file.parent / "example.json"
    saved = pier_json(["models", "save", str(model_file), "--name", "iris", "--tag", "team=ml",
                       "--metric", "acc=0.97", "--input-example", str(example)], tmp_path)
    assert isinstance(saved, dict)
    assert (saved["ref"], saved["flavor"], saved["tags"], saved["metrics"]) == \
        ("iris:1", "sklearn", {"team": "ml"}, {"acc": 0.97})
    assert saved["signature"]["inputs"][0]["shape"] == [-1, 4]
    assert saved["environment"]["requirements"]
    listed = pier_json(["models", "list"], tmp_path)
    assert [m["name"] for m in listed] == ["iris"]  # type: ignore[union-attr]
    run_pier(["models", "alias", "iris", "production", "1"], tmp_path, check=True)
    got = pier_json(["models", "get", "iris:production"], tmp_path)
    assert got["aliases"] == ["production"]  # type: ignore[index]
    yaml_out = yaml.safe_load(run_pier(["models", "get", "iris", "-o", "yaml"], tmp_path, check=True).stdout)
    assert yaml_out["digest"].startswith("sha256:")
    run_pier(["models", "tag", "iris:1", "stage=qa"], tmp_path, check=True)
    assert pier_json(["models", "get", "iris:1"], tmp_path)["tags"] == {"team": "ml", "stage": "qa"}  # type: ignore[index]
    run_pier(["models", "tag", "iris:1", "--delete", "stage"], tmp_path, check=True)
    human = run_pier(["models", "get", "iris:1"], tmp_path, check=True).stdout
    assert "scikit-learn" in human  # environment capture is shown to people too
    run_pier(["models", "delete", "iris:1", "--yes"], tmp_path, check=True)
    assert pier_json(["models", "list"], tmp_path)[0]["version_count"] == 0  # type: ignore[index]


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["models", "save", "missing.joblib", "--name", "iris"], 3, "does not exist"),
    (["models", "save", "{model}", "--name", "Iris_Model"], 3, "DNS-1123"),
    (["models", "save", "{model}", "--name", "iris", "--flavor", "onnx"], 3, "onnx"),
    (["models", "save", "{model}", "--name", "iris", "--flavor", "tensorflow"], 3, "tensorflow"),
    (["models", "save", "{model}", "--name", "iris", "--metric", "acc=high"], 3, "not a number"),
    (["models", "save", "{model}", "--name", "iris", "--tag", "novalue"], 3, "key=value"),
    (["models", "get", "nope"], 4, "nope"),
    (["models", "get", "iris:"], 3, "ends with ':'"),
    (["models", "alias", "nope", "production", "1"], 4, "nope"),
    (["models", "alias", "nope", "production"], 3, "VERSION"),
    (["models", "push", "iris:1"], 3, "--remote"),
    (["models", "delete", "nope", "--yes"], 4, "nope"),
])
def test_bad_input_exits_non_zero_with_a_message(
        model_file: Path, tmp_path: Path, args: list[str], code: int, fragment: str) -> None:
    r = run_pier([a.replace("{model}", str(model_file)) for a in args], tmp_path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_unknown_version_lists_the_existing_ones(model_file: Path, tmp_path: Path) -> None:
    run_pier(["models", "save", str(model_file), "--name", "iris"], tmp_path, check=True)
    r = run_pier(["models", "get", "iris:7"], tmp_path)
    assert r.returncode == 4
    assert "7" in r.stderr
    assert "1" in r.stderr.split("7", 1)[1]


def test_saving_the_same_file_twice_returns_the_same_version(model_file: Path, tmp_path: Path) -> None:
    first = pier_json(["models", "save", str(model_file), "--name", "iris"], tmp_path)
    second = pier_json(["models", "save", str(model_file), "--name", "iris"], tmp_path)
    assert first["version"] == second["version"] == 1  # type: ignore[index]


def test_config_show_reflects_env_and_masks_passwords(tmp_path: Path) -> None:
    shown = pier_json(["config", "show"], tmp_path)
    assert shown["home"] == str(tmp_path)  # type: ignore[index]
    assert shown["database_url"] == f"sqlite:///{tmp_path / 'pier.db'}"  # type: ignore[index]
    masked = run_pier(["config", "show", "-o", "json"], tmp_path,
                      PIER_DATABASE_URL="postgresql+psycopg://bob:hunter2@db:5432/pier")
    assert "hunter2" not in masked.stdout
    assert ADMIN_TOKEN not in masked.stdout  # PIER_TOKEN and PIER_ADMIN_TOKEN are set: secrets stay masked
    assert "bob:***@db" in masked.stdout


def test_invalid_setting_is_a_clear_error(tmp_path: Path) -> None:
    r = run_pier(["config", "show"], tmp_path, PIER_CONTROL__PORT="notaport")
    assert r.returncode == 3
    assert "control.port" in r.stderr


def test_help_explains_every_command(tmp_path: Path) -> None:
    out = run_pier(["models", "--help"], tmp_path, check=True).stdout
    for command in ("list", "get", "save", "push", "pull", "alias", "tag", "delete", "import-mlflow"):
        assert command in out
    push_help = run_pier(["models", "push", "--help"], tmp_path, check=True).stdout
    assert "resumable" in push_help


def test_a_saved_version_is_locked_and_can_be_relocked(model_file: Path, tmp_path: Path) -> None:
    import sklearn

    saved = pier_json(["models", "save", str(model_file), "--name", "iris"], tmp_path)
    lock = saved["environment"]["lock"]  # type: ignore[index]
    pins = {p["name"]: p["version"] for p in lock["packages"]}
    # The saving environment, transitively: the framework and what it needs, exactly pinned.
    assert pins["scikit-learn"] == sklearn.__version__
    assert {"numpy", "scipy", "joblib", "threadpoolctl"} <= set(pins)
    assert lock["source"] == "saved"
    assert lock["digest"].startswith("sha256:")
    assert "lock" in run_pier(["models", "get", "iris"], tmp_path, check=True).stdout

    hashed = "sha256:" + "0" * 64
    req = tmp_path / "req.txt"
    req.write_text(f"scikit-learn==1.5.2 --hash={hashed}\nnumpy==1.26.4\n")
    relocked = pier_json(["models", "lock", "iris:1", "--requirements", str(req), "--python", "3.11"], tmp_path)
    got = pier_json(["models", "get", "iris:1"], tmp_path)
    assert got == relocked
    assert [(p["name"], p["version"], p["hashes"]) for p in got["environment"]["lock"]["packages"]] == [  # type: ignore[index]
        ("numpy", "1.26.4", []), ("scikit-learn", "1.5.2", [hashed])]
    assert got["digest"] == saved["digest"]  # type: ignore[index]  # the artifact is unchanged

    req.write_text("scikit-learn>=1.5\n")
    bad = run_pier(["models", "lock", "iris:1", "--requirements", str(req)], tmp_path)
    assert bad.returncode == 3
    assert "not an exact pin" in bad.stderr
    # Without a file: re-locked from this environment again.
    again = pier_json(["models", "lock", "iris"], tmp_path)
    assert again["environment"]["lock"]["digest"] == lock["digest"]  # type: ignore[index]
