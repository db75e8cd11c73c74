"""The suite's ``--dist loadfile`` scheduler finishes a run in which a worker dies (tests/support/xdist_recovery.py).

Each case runs a real pytest with real xdist workers over a small tree in which one test ends its worker
(``os._exit``, as pytest-timeout's thread method does). With xdist 3.8's own scheduler every case stalls
until the subprocess's deadline; with ours the run ends, the crashed test failed, every other test run once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """\
from typing import Any
import pytest
from tests.support.xdist_recovery import make_scheduler

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
    return make_scheduler(config, log)
"""
PASSING = "def test_one():\n    pass\n\ndef test_two():\n    pass\n"


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("workers", "crashing", "crash_at"), [(1, "b", 0), (2, "e", 0), (2, "e", 1), (2, "g", 1)])
def test_a_run_with_a_dead_worker_ends(tmp_path: Path, workers: int, crashing: str, crash_at: int) -> None:
    files = "abcdefg"
    for name in files:
        (tmp_path / f"test_{name}.py").write_text(PASSING)
    tests = ["def test_before():\n    pass\n", "def test_after():\n    pass\n"]
    tests.insert(crash_at, "def test_crash():\n    import os\n    os._exit(1)\n")
    (tmp_path / f"test_{crashing}.py").write_text("\n".join(tests))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(workers),
                           "--dist", "loadfile", "-q", "-o", "addopts=", "-o", "timeout=0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    summary = done.stdout.strip().splitlines()[-1]
    passing = (len(files) - 1) * 2 + 2  # two in each other file; before and after the crash in its own
    assert done.returncode == 1, done.stdout + done.stderr
    assert summary.startswith(f"1 failed, {passing} passed"), done.stdout
    assert f"crashed while running 'test_{crashing}.py::test_crash'" in done.stdout
