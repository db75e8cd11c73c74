"""`pier serve`'s options: each defaults to its setting (serve.*, limits.*, log_level); a flag given wins."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest
from typer.models import OptionInfo

from modelpier.cli.serve import resolve_config, resolve_settings, serve
from modelpier.errors import InvalidSpec
from modelpier.server.config import BatchingConfig, ModelOptions, ModelSource, ServerConfig
from modelpier.settings import LimitSettings, ServeSettings, load_settings
from modelpier.spec.deployment import Batching

# Parameters of `serve` that are not a setting: the models, and the per-model overrides.
NOT_SETTINGS = {"ctx", "refs", "model_option"}
OPTIONS = [p for p in inspect.signature(serve).parameters.values() if p.name not in NOT_SETTINGS]
NO_FLAGS = {p.name: None for p in OPTIONS}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in [v for v in os.environ if v.startswith("PIER_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PIER_HOME", str(tmp_path))


def _config(*refs: str, model_options: tuple[str, ...] = (), **flags: Any) -> ServerConfig:
    return resolve_config(resolve_settings(load_settings(), {**NO_FLAGS, **flags}), refs or ("iris:1",),
                          model_options)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda p: p.name)
def test_every_option_is_a_setting_and_defines_no_default(option: inspect.Parameter) -> None:
    assert isinstance(option.default, OptionInfo)
    assert option.default.default is None, f"--{option.name} defines its own default; give it to a setting"
    assert option.name in ServeSettings.model_fields or option.name in LimitSettings.model_fields \
        or option.name == "log_level"
    assert "Default: " in (option.default.help or ""), "the help names the setting the option defaults to"


def test_every_serve_setting_has_an_option() -> None:
    assert set(ServeSettings.model_fields) <= {p.name for p in OPTIONS}


def test_the_defaults_are_the_ones_pier_serve_always_had() -> None:
    config = _config()
    assert config == ServerConfig(models=(ModelSource("iris:1"),))
    assert (config.host, config.http_port, config.grpc_port, config.workers) == ("127.0.0.1", 8080, 8081, 1)
    assert config.defaults == ModelOptions(BatchingConfig(True, 64, 5.0), max_queue=1024, outputs=())
    assert (config.max_body_bytes, config.request_timeout_s, config.shutdown_grace_s) == (16 * 1024**2, 30.0, 30.0)
    assert (config.inline_predict_us, config.log_level, config.access_log, config.repository_api) == \
        (1000.0, "info", False, False)
    assert (config.max_request_elements, config.max_headers, config.head_timeout_s, config.body_timeout_s) == \
        (16 * 1024**2, 100, 30.0, 300.0)


def test_a_deployment_and_a_bare_pier_serve_batch_alike() -> None:
    spec, serve = Batching(), ServeSettings()
    assert (spec.max_batch_size, spec.max_latency_ms) == (serve.max_batch_size, serve.max_latency_ms)


@pytest.mark.parametrize(("variable", "value", "read"), [
    ("PIER_SERVE__WORKERS", "3", lambda c: c.workers == 3),
    ("PIER_SERVE__WORKERS", "0", lambda c: c.workers == (os.cpu_count() or 1)),
    ("PIER_SERVE__HOST", "0.0.0.0", lambda c: c.host == "0.0.0.0"),  # noqa: S104  # a value, nothing binds
    ("PIER_SERVE__GRPC", "false", lambda c: c.grpc_port is None),
    ("PIER_SERVE__BATCHING", "false", lambda c: not c.defaults.batching.enabled),
    ("PIER_SERVE__MAX_BATCH_SIZE", "16", lambda c: c.defaults.batching.max_batch_size == 16),
    ("PIER_SERVE__MAX_QUEUE", "7", lambda c: c.defaults.max_queue == 7),
    ("PIER_SERVE__OUTPUTS", "predict,predict_proba", lambda c: c.defaults.outputs == ("predict", "predict_proba")),
    ("PIER_SERVE__TIMEOUT_S", "2.5", lambda c: c.request_timeout_s == 2.5),
    ("PIER_SERVE__REPOSITORY_API", "true", lambda c: c.repository_api),
    ("PIER_LIMITS__MAX_HEADERS", "20", lambda c: c.max_headers == 20),
    ("PIER_LOG_LEVEL", "debug", lambda c: c.log_level == "debug"),
])
def test_a_setting_changes_what_pier_serve_uses(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                 read: Any) -> None:
    monkeypatch.setenv(variable, value)
    assert read(_config())


def test_a_flag_given_beats_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_SERVE__WORKERS", "3")
    monkeypatch.setenv("PIER_SERVE__OUTPUTS", "predict")
    monkeypatch.setenv("PIER_LIMITS__MAX_HEADERS", "20")
    config = _config(workers=2, outputs="", max_headers=50, grpc=False, log_level="warning")
    assert (config.workers, config.defaults.outputs, config.max_headers) == (2, (), 50)
    assert (config.grpc_port, config.log_level) == (None, "warning")


def test_model_options_apply_over_the_resolved_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_SERVE__MAX_QUEUE", "7")
    config = _config("iris:1", "wine:2", model_options=("iris:batching=off", "iris:max_batch_size=8"),
                     max_latency_ms=2.0)
    iris = config.options_for("iris")
    assert (iris.batching, iris.max_queue) == (BatchingConfig(False, 8, 2.0), 7)
    assert config.options_for("wine") == config.defaults
    with pytest.raises(InvalidSpec, match="expected NAME:KEY=VALUE"):
        _config(model_options=("iris-batching",))


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(InvalidSpec, match="--max-queue"):
        _config(max_queue=0)


def test_a_flag_without_a_setting_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="colour"):
        resolve_settings(load_settings(), {"colour": "red"})
