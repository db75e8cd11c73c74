import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from modelpier.cli.config import config_rows
from modelpier.cli.main import app
from modelpier.errors import InvalidSpec
from modelpier.settings import Settings, load_settings, setting_fields

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in [v for v in os.environ if v.startswith("PIER_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PIER_HOME", str(tmp_path))


def test_embedded_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings()
    assert s.home == tmp_path
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'pier.db'}"
    assert s.resolved_blob_url == str(tmp_path / "blobs")
    assert s.resolved_cache_dir == tmp_path / "cache"


def test_env_vars_override_including_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("PIER_CONTROL__PORT", "9001")
    s = load_settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.control.port == 9001


def test_config_file_in_home_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("remote: http://a:1\ncontrol:\n  port: 7000\n")
    assert load_settings().remote == "http://a:1"
    monkeypatch.setenv("PIER_CONTROL__PORT", "7001")
    assert load_settings().control.port == 7001


def test_toml_config_file_named_by_pier_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pier.toml"
    path.write_text('log_level = "debug"\n[registry]\nchunk_bytes = 1048576\n')
    monkeypatch.setenv("PIER_CONFIG", str(path))
    s = load_settings()
    assert s.log_level == "debug"
    assert s.registry.chunk_bytes == 1048576


@pytest.mark.parametrize(("content", "fragment"), [
    ("control:\n  port: 99999\n", "control.port"),
    ("bogus_setting: 1\n", "bogus_setting"),
    ("- a list\n", "must hold a mapping"),
    ("control: [unclosed\n", "not valid"),
])
def test_bad_config_is_an_invalid_spec_naming_the_field(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "config.yaml").write_text(content)
    with pytest.raises(InvalidSpec, match=fragment):
        load_settings()


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIER_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(InvalidSpec, match="does not exist"):
        load_settings()


def test_every_setting_is_documented_with_its_variable() -> None:
    fields = list(setting_fields())
    assert len(fields) > 50
    for field in fields:
        assert field.info.description, f"{field.path} has no description (its unit and why its default)"
        assert field.env_var == "PIER_" + field.path.upper().replace(".", "__")


def test_each_variable_sets_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_SERVE__WORKERS", "3")
    monkeypatch.setenv("PIER_BENCH__CONCURRENCY", "16")
    monkeypatch.setenv("PIER_LIMITS__MAX_HEADERS", "20")
    s = load_settings()
    assert (s.serve.workers, s.bench.concurrency, s.limits.max_headers) == (3, 16, 20)


def test_pier_config_show_lists_every_setting_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one row per line, nothing cut
    monkeypatch.setenv("PIER_SERVE__WORKERS", "3")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for field in setting_fields():
        assert any(f" {field.path} " in line and f" {field.env_var} " in line for line in lines), field.path
    assert any(" serve.workers " in line and " 3 " in line for line in lines)
    assert any(" PIER_CONFIG " in line for line in lines)


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    settings = Settings(token=SecretStr("pier_hunter2"), admin_token=SecretStr("pier_hunter2"),
                        auth={"secret": "hunter2"}, database_url="postgresql+psycopg://app:hunter2@db:5432/pier",
                        remote="https://ci:hunter2@pier.example.com", gateway={"redis_url": "redis://:hunter2@r:6379/0",
                                                                                "metrics_token": "hunter2"})
    rows = {path: value for path, value, _ in config_rows(settings)}
    assert rows.keys() == {f.path for f in setting_fields()}
    assert "hunter2" not in repr(rows)
    assert rows["database_url"] == "postgresql+psycopg://app:***@db:5432/pier"
    assert rows["registry.environments_dir"] == str(tmp_path / "envs")


def _generate_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pier_generate", ROOT / "scripts" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_list_every_setting_as_generated() -> None:
    generate = _generate_script()
    committed = generate.CONFIGURATION_PATH.read_text()
    assert committed == generate.render_configuration(committed), "docs/configuration.md is stale: make generate"
    for field in setting_fields():
        assert f"`{field.env_var}`" in committed
