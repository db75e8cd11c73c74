"""Isolated environments: what goes in (the lock wins), the cache key, one build under concurrency."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelpier.backends.local.environments import EnvironmentCache, plan_environment
from modelpier.errors import InvalidSpec
from modelpier.registry.lock import parse_requirements

LOCK = parse_requirements("scikit-learn==1.5.2\nnumpy==2.1.3 --hash=sha256:" + "a" * 64, python="3.11.4")


def test_the_lock_wins_over_the_servers_own_versions() -> None:
    plan = plan_environment(LOCK, {"numpy": "2.4.6", "FastAPI": "0.165.0"})
    assert plan.requirements.splitlines() == [
        "numpy==2.1.3 --hash=sha256:" + "a" * 64, "scikit-learn==1.5.2", "fastapi==0.165.0"]
    assert plan.python == "3.11"
    assert plan.key == plan_environment(LOCK, {"fastapi": "0.165.0"}).key  # what the lock pins is not counted
    assert plan.key != plan_environment(LOCK, {"fastapi": "0.166.0"}).key


FAKE_UV = """#!{python}
import os, sys, time
from pathlib import Path
log = Path({log!r})
with log.open("a") as f:
    f.write(" ".join(sys.argv[1:3]) + "\\n")
if sys.argv[1] == "venv":
    Path(sys.argv[-1], "bin").mkdir(parents=True)
    time.sleep(0.5)  # long enough for the other builders to queue on the lock
elif "scikit-learn==99" in Path(sys.argv[-1]).read_text():
    sys.stderr.write("\\x1b[31merror\\x1b[0m: Because there is no version of scikit-learn==99 ...\\nhint: x\\n")
    sys.exit(1)
"""


def fake_uv(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "uv.log"
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable, log=str(log)))
    uv.chmod(0o755)
    return uv, log


def test_concurrent_builders_build_once_and_share_the_result(tmp_path: Path) -> None:
    uv, log = fake_uv(tmp_path)
    root = tmp_path / "envs"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from modelpier.backends.local.environments import EnvironmentCache, plan_environment
        from modelpier.registry.lock import parse_requirements
        lock = parse_requirements("scikit-learn==1.5.2", python="3.11")
        print(EnvironmentCache(Path({str(root)!r}), uv={str(uv)!r}).ensure(plan_environment(lock, {{}})))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    paths = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1
    assert (Path(paths.pop()) / ".pier-ready").is_file()
    assert log.read_text().splitlines() == ["venv --relocatable", "pip install"]  # one build, not three
    assert not [p for p in root.iterdir() if p.name.startswith(".staging")]


def test_a_lock_uv_cannot_install_names_the_package_and_leaves_nothing(tmp_path: Path) -> None:
    uv, _log = fake_uv(tmp_path)
    cache = EnvironmentCache(tmp_path / "envs", uv=str(uv))
    plan = plan_environment(parse_requirements("scikit-learn==99", python="3.11"), {})
    with pytest.raises(InvalidSpec, match=r"no version of scikit-learn==99") as raised:
        cache.ensure(plan)
    assert "\x1b" not in raised.value.message
    assert "hint" not in raised.value.message
    assert not cache.path(plan).exists()
    assert [p.name for p in (tmp_path / "envs").iterdir()] == [f"{plan.key}.lock"]
