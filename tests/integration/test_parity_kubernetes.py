"""The parity table's kubernetes column: the same rows as test_parity.py, on a control plane whose backend
is Kubernetes (a real API server and controller manager; the test plays the node, so pods are real model
servers on loopback pod IPs). A file of its own so that ``--dist loadfile`` runs it on another worker
than the local column; the rows, the checks and the table are test_parity.py's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_parity import cluster, platform_on, test_row
from tests.support.parity import Platform

__all__ = ["cluster", "test_row"]  # collected here: the rows run against this module's `platform`


@pytest.fixture(scope="module", params=["kubernetes"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             environments_dir: Path) -> Iterator[Platform]:
    yield from platform_on(request.param, request, tmp_path_factory, environments_dir)
