"""The examples in examples/ and the README's commands run as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.procs import pier_env, run_pier

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_example_runs(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=pier_env(tmp_path),
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "registered forest:1" in r.stdout
    assert "('input-0', 'FP64', [-1, 4])" in r.stdout
    assert "predictions match" in r.stdout
    listed = json.loads(run_pier(["models", "list", "-o", "json"], tmp_path, check=True).stdout)
    assert [m["name"] for m in listed] == ["forest"]
