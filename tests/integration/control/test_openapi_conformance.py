"""The control plane against its own OpenAPI document: a bounded schemathesis run on a real ``pier server``.

Every operation is called with generated parameters and bodies (as the platform admin, so access
control lets the calls through to the handlers): no answer may be a 5xx, and every answer's status,
content type, headers and body must be what the document says. Bounded: 5 examples per operation and
phase, a fixed seed (the same cases each run), 40 s of generation at most.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, BIN, control_plane

pytestmark = pytest.mark.slow  # about 45 s

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "unsupported_method",
])


def test_every_operation_answers_as_documented_and_never_5xx(tmp_path: Path) -> None:
    with control_plane(tmp_path / "home") as url:
        # Something to find besides 404s: a project and a model with a version.
        assert httpx.post(f"{url}/api/v1/projects", json={"name": "acme"}, headers=ADMIN_HEADERS).status_code == 201
        result = subprocess.run(
            [str(BIN / "st"), "run", f"{url}/openapi.json", "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
             "--checks", CHECKS, "--max-examples", "5", "--seed", "20261206", "--max-time", "40",
             "--workers", "1", "--no-color", "--warnings", "off", "--report-dir", str(tmp_path / "reports")],
            capture_output=True, text=True, timeout=110, check=False, cwd=tmp_path)  # its cache stays there
        log = (tmp_path / "home" / "server.log").read_text()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert "Traceback" not in log, log[-4000:]
