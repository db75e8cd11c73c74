"""``make up`` installs what the platform needs, ``make test`` the developer stack (issue 14, item 7).

Read with ``make -n`` (print, do not run) against a throwaway venv path, so nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(target: str, venv: Path, *extra: str) -> str:
    command = ["make", "-n", "--no-print-directory", "-C", str(ROOT), target, f"VENV={venv}", *extra]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout


def test_make_up_installs_the_platform_not_the_developer_stack(tmp_path: Path) -> None:
    plan = planned("up", tmp_path / "venv")
    assert "pip install -e '.[sklearn]'" in plan
    assert "[dev]" not in plan
    assert plan.strip().endswith(f"{tmp_path / 'venv'}/bin/pier up")


def test_make_up_takes_more_extras_on_request(tmp_path: Path) -> None:
    assert "pip install -e '.[sklearn,xgboost]'" in planned("up", tmp_path / "venv", "UP_EXTRAS=sklearn,xgboost")


def test_make_test_installs_the_developer_stack_with_its_own_stamp(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    plan = planned("test", venv)
    assert "pip install -e '.[dev]'" in plan
    # After `make up` (its stamp present), `make test` still installs the developer stack.
    venv.mkdir()
    (venv / "bin").mkdir()
    (venv / "bin" / "python").touch()
    (venv / ".installed-up-sklearn").touch()
    assert "pip install -e '.[dev]'" in planned("test", venv)
    assert "python3 -m venv" not in planned("up", venv)


def test_make_test_unpacks_the_shared_kubernetes_once_when_the_machine_has_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "k8s"
    shared.mkdir(parents=True)
    (shared / "test-cluster.sh").touch()
    cache = tmp_path / "cache"
    # As in a fresh shell: `make test` itself exports these, and a folder already named is kept.
    clean = {k: v for k, v in os.environ.items() if k not in ("KUBEBUILDER_ASSETS", "PIER_TEST_CLUSTER_SCRIPT")}
    with mock.patch.dict(os.environ, clean, clear=True):
        plan = planned("test", tmp_path / "venv", f"K8S_SHARED={shared}", f"K8S_ASSETS={cache}")
        assert f'[ -x "{cache}/kube-apiserver" ] || "{shared}/test-cluster.sh" assets "{cache}"' in plan
        assert "test-cluster.sh" not in planned("test", tmp_path / "venv", f"K8S_SHARED={tmp_path / 'none'}")
