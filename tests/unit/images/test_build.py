"""The pure plan of an image: layer order, config without time, the base's settings kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from modelpier.errors import InvalidArtifact
from modelpier.images.build import (
    BasePython,
    BuiltLayer,
    model_settings,
    plan_image,
    venv_entries,
)
from modelpier.images.builder import find_python
from modelpier.images.environment import locked_requirements
from modelpier.images.oci.layout import OCI_LAYER_GZIP, Descriptor, ImageConfig, Manifest
from modelpier.registry.domain import FileEntry, Flavor, ModelVersion

BASE_LAYER = Descriptor(OCI_LAYER_GZIP, "sha256:" + "0" * 64, 100)
BASE = ImageConfig({"architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
                    "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["python3"],
                               "Labels": {"maintainer": "debian"}, "Healthcheck": {"Test": ["true"]}},
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
                    "history": [{"created": "2025-01-01T00:00:00Z", "created_by": "debootstrap"}]})


def _layer(n: int, what: str) -> BuiltLayer:
    return BuiltLayer(digest=f"sha256:{n:064x}", size=n, diff_id=f"sha256:{n + 100:064x}", created_by=what)


def _run() -> object:
    return model_settings("iris", 3, "sha256:" + "9" * 64, environment_digest="sha256:" + "8" * 64,
                          modelpier_version="0.1.0", base="127.0.0.1:5000/base/debian:bookworm",
                          base_digest="sha256:" + "7" * 64)


def test_layers_are_base_then_environment_modelpier_model() -> None:
    layers = [_layer(1, "environment"), _layer(2, "modelpier"), _layer(3, "model")]
    plan = plan_image(BASE, [BASE_LAYER], layers, _run())  # type: ignore[arg-type]
    manifest = Manifest.parse(plan.manifest)
    assert [d.digest for d in manifest.layers] == [BASE_LAYER.digest, *(layer.digest for layer in layers)]
    config = json.loads(plan.config)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "1" * 64, *(layer.diff_id for layer in layers)]
    assert manifest.config.digest == plan.config_descriptor.digest


def test_the_config_has_no_time_and_runs_pier_serve_as_a_non_root_user() -> None:
    config = json.loads(plan_image(BASE, [BASE_LAYER], [_layer(1, "env")], _run()).config)  # type: ignore[arg-type]
    assert "created" not in config
    assert all("created" not in h for h in config["history"])
    container = config["config"]
    assert container["Entrypoint"] == ["/opt/pier/venv/bin/pier", "serve", "iris=/opt/pier/model"]
    assert container["Cmd"] == ["--host", "0.0.0.0", "--http-port", "8080", "--grpc-port", "8081"]  # noqa: S104  # a container's address
    assert container["User"] == "10001:10001"
    assert container["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}
    assert "Healthcheck" not in container
    env = dict(item.split("=", 1) for item in container["Env"])
    assert env["PATH"] == "/opt/pier/venv/bin:/usr/bin:/bin"
    assert env["LANG"] == "C.UTF-8"  # the base's environment is kept
    assert container["Labels"]["maintainer"] == "debian"
    assert container["Labels"]["io.modelpier.model"] == "iris"


def test_equal_inputs_plan_equal_bytes() -> None:
    layers = [_layer(1, "env"), _layer(2, "model")]
    one = plan_image(BASE, [BASE_LAYER], layers, _run())  # type: ignore[arg-type]
    two = plan_image(ImageConfig(dict(BASE.raw)), [BASE_LAYER], list(layers), _run())  # type: ignore[arg-type]
    assert one == two


def test_a_base_whose_config_and_manifest_disagree_is_refused() -> None:
    with pytest.raises(InvalidArtifact, match="1 diff_ids"):
        plan_image(BASE, [BASE_LAYER, BASE_LAYER], [], _run())  # type: ignore[arg-type]


def test_the_venv_points_at_the_bases_python() -> None:
    entries = {e.path: e for e in venv_entries(BasePython("/usr/local/bin/python3.11", "3.11"))}
    assert entries["opt/pier/venv/bin/python"].link == "/usr/local/bin/python3.11"
    cfg = entries["opt/pier/venv/pyvenv.cfg"].data or b""
    assert b"home = /usr/local/bin\n" in cfg
    assert b"version = 3.11\n" in cfg
    assert "opt/pier/venv/lib/python3.11/site-packages" in entries


@pytest.mark.parametrize(("names", "expected"), [
    (["usr/bin/python3", "usr/bin/python3.11", "usr/lib/python3.11/os.py"], BasePython("/usr/bin/python3.11", "3.11")),
    (["./usr/bin/python3.11", "usr/local/bin/python3.12"], BasePython("/usr/local/bin/python3.12", "3.12")),
    (["usr/bin/python3.9", "usr/bin/python3.11"], BasePython("/usr/bin/python3.11", "3.11")),
    (["bin/sh", "usr/bin/perl"], None),
])
def test_find_python_in_the_bases_files(names: list[str], expected: BasePython | None) -> None:
    assert find_python(names) == expected


def _version(requirements: list[str]) -> ModelVersion:
    return ModelVersion(model="iris", version=1, flavor=Flavor.SKLEARN, digest="sha256:" + "a" * 64, size=1,
                        files=(FileEntry("model.joblib", "sha256:" + "b" * 64, 1),), signature=None,
                        input_example=None, metrics={}, params={}, tags={}, description="",
                        environment={"requirements": requirements}, created_by="t",
                        created_at=datetime.now(UTC), source=None)


def test_locked_requirements_are_exact_pins_sorted_by_name() -> None:
    assert locked_requirements(_version(["scikit-learn==1.5.2", "Joblib==1.4.2", "numpy==2.1.0"])) == (
        "Joblib==1.4.2", "numpy==2.1.0", "scikit-learn==1.5.2")


def test_an_unpinned_requirement_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArtifact, match=r"without an exact pin \(scikit-learn>=1\.3\)"):
        locked_requirements(_version(["numpy==2.1.0", "scikit-learn>=1.3"]))


def test_the_versions_lock_wins_over_the_older_requirements_record() -> None:
    from modelpier.registry.lock import EnvironmentLock, LockedPackage, with_lock

    lock = EnvironmentLock.of("3.11.2", [LockedPackage("scipy", "1.17.1", ("sha256:" + "a" * 64,)),
                                         LockedPackage("Scikit_Learn", "1.9.1")])
    version = _version(["scikit-learn>=1"])  # an unpinned record, ignored once a lock is there
    locked = ModelVersion(**{**{f: getattr(version, f) for f in version.__slots__},  # type: ignore[arg-type]
                             "environment": with_lock(version.environment, lock)})
    assert locked_requirements(locked) == ("scikit-learn==1.9.1", "scipy==1.17.1")


def test_modelpiers_requirements_expand_its_own_extras_and_refuse_unknown_ones() -> None:
    from modelpier.errors import InvalidInput
    from modelpier.images.environment import modelpier_requirements

    core = modelpier_requirements()
    assert any(r.startswith("fastapi") for r in core)
    assert not any(r.startswith("scikit-learn") for r in core)
    with_all = modelpier_requirements(["all"])  # "all" is modelpier[sklearn,xgboost,...]
    assert any(r.startswith("scikit-learn") for r in with_all)
    assert not any(r.startswith("modelpier") for r in with_all)
    with pytest.raises(InvalidInput, match="no extra 'nope'"):
        modelpier_requirements(["nope"])
