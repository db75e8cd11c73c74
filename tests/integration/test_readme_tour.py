"""The README's tour, run from the README's own code blocks, so the README cannot drift (issue 14).

What runs: every fenced ``sh`` or ``python`` block of README.md whose line before is ``<!-- tour -->``,
in order, in one working folder that holds a ``.venv`` link to this interpreter's environment (so the
tour's ``source .venv/bin/activate`` works as in a clone), against a fresh ``PIER_HOME``. Nothing of
the outer ``PIER_*`` environment is passed on: no token either, so the CLI works with the credentials
the first ``pier up`` saved, as a newcomer's does.

What is changed, and why:

* Ports. The README's 8600 (API), 8700 (gateway), 8701 (gateway gRPC), 8080 and 8081 (``pier serve``)
  are replaced in the blocks' text by free ports, and ``PIER_CONTROL__PORT`` points the commands
  without ``--remote`` at the test's API, so parallel runs and a developer's own platform do not clash.
  Replicas get a port range of their own (``PIER_PLATFORM__REPLICA_PORT_MIN/MAX``).
* ``make up``, the first block, is the one not run as written: it would install into the shared
  environment first. The test runs what it runs after installing, ``pier up`` (with the free ports), in
  the background until the tour's last block (``pier down``) stops it, and goes on once ``pier up``
  printed "modelpier is up". Its output is checked: the admin token shown once, no traceback, no
  migration chatter.

``sh`` blocks run with ``bash -eo pipefail``, ``python`` blocks with this interpreter; each is bounded in
time. Blocks run one after the other as in one terminal: after the block that activates ``.venv``, its
``bin`` is on the ``PATH`` of the next ones. A block fails the test when it exits non-zero or prints a
traceback or an error envelope.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.platform_support import pier_down
from tests.support.procs import BIN, free_port, wait_until

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_MARK = "<!-- tour -->"
README_PORTS = (8600, 8700, 8701, 8080, 8081)
BLOCK_TIMEOUT_S = 300


def tour_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every block marked as part of the tour, in order."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != TOUR_MARK:
            continue
        fence = lines[i + 1].strip()
        assert fence in ("```sh", "```python"), f"README line {i + 2}: a tour block must be ```sh or ```python"
        end = lines.index("```", i + 2)
        blocks.append((fence[3:], "\n".join(lines[i + 2:end]) + "\n"))
    return blocks


def with_ports(code: str, ports: dict[int, int]) -> str:
    return re.sub(r"\b(" + "|".join(map(str, ports)) + r")\b", lambda m: str(ports[int(m.group(1))]), code)


def run_block(language: str, code: str, cwd: Path, env: dict[str, str]) -> str:
    """Run one block to its end (its own process group, killed whole on timeout); its output."""
    argv = ["bash", "-eo", "pipefail", "-c", code] if language == "sh" else [sys.executable, "-c", code]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"this tour block did not finish in {BLOCK_TIMEOUT_S} s:\n{code}\n--- output:\n{out}"
                             ) from None
    assert proc.returncode == 0, f"this tour block failed ({proc.returncode}):\n{code}\n--- output:\n{out}"
    assert "Traceback" not in out, f"this tour block printed a traceback:\n{code}\n--- output:\n{out}"
    assert not re.search(r'"error":\s*\{', out), f"this tour block met an error:\n{code}\n--- output:\n{out}"
    return out


def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text())
    assert blocks[0][0] == "sh"
    assert blocks[0][1].split("#")[0].strip() == "make up"
    assert [i for i, (_, code) in enumerate(blocks) if "pier down" in code] == [len(blocks) - 1]  # at the end
    assert any(language == "python" for language, _ in blocks)

    ports = {port: free_port() for port in README_PORTS}
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(BIN.parent)
    low = 40000 + os.getpid() % 50 * 100
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update({"PIER_HOME": str(home), "PIER_CONTROL__PORT": str(ports[8600]),
                "PIER_PLATFORM__REPLICA_PORT_MIN": str(low), "PIER_PLATFORM__REPLICA_PORT_MAX": str(low + 99)})
    up_log = tmp_path / "up.out"
    transcript: list[str] = []
    up: subprocess.Popen[bytes] | None = None
    try:
        with up_log.open("wb") as log:  # `make up`, minus the install: see the module docstring
            up = subprocess.Popen([str(BIN / "pier"), "up", "--port", str(ports[8600]), "--gateway-port",
                                   str(ports[8700]), "--gateway-grpc-port", str(ports[8701])],
                                  cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: up.poll() is not None or "modelpier is up" in up_log.read_text(), timeout=120,
                   what="pier up")
        assert up.poll() is None, up_log.read_text()
        for language, code in blocks[1:]:
            transcript.append(f"$ {code}{run_block(language, with_ports(code, ports), work, env)}")
            if "source .venv/bin/activate" in code:  # the terminal stays activated for the blocks after
                env["PATH"] = f"{work / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        assert up.wait(timeout=60) == 0  # `pier down` stopped it
    finally:
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                up.wait(timeout=30)
        (tmp_path / "transcript.txt").write_text("\n".join(transcript))
        pier_down(home, {"PIER_CONTROL__PORT": str(ports[8600])})  # whatever a failed tour left running

    first_start = up_log.read_text()
    assert "created the platform admin; its API token, shown once" in first_start
    assert "Traceback" not in first_start
    assert "alembic" not in first_start.lower()
    told = "\n".join(transcript)
    assert '"status": "queued"' in told or '"status":"queued"' in told  # the async job was accepted
    assert "iris:2" in told
