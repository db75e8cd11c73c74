from pathlib import Path

import pytest

from modelpier.errors import InvalidSpec
from modelpier.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("PIER_DATABASE_URL", "PIER_BLOB_URL", "PIER_CONFIG", "PIER_CONTROL__PORT", "PIER_REMOTE"):
        monkeypatch.delenv(var, raising=False)
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
