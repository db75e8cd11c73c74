"""The examples of docs/client.md marked ``tested: serve`` run, in order, against a real ``pier serve``
(the ``tested: gateway`` ones run in ``test_client_platform.py``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.integration.server.conftest import Served, start_server

from .client_support import doc_blocks


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("docs")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), home / "iris.joblib")
    with start_server([f"iris={home / 'iris.joblib'}"], home) as served:
        yield served


def test_the_server_examples_run(server: Served, tmp_path: Path) -> None:
    blocks = doc_blocks("serve")
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    for block in blocks:
        code = block.replace("http://127.0.0.1:8080", server.url).replace("127.0.0.1:8081", server.grpc)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/client.md", "exec"), namespace)  # noqa: S102  # the doc's own examples
    printed = out.getvalue()
    assert "[0 2]" in printed
    assert "(2, 3)" in printed
    assert "expected shape [-1, 4], got [1, 3]" in printed
    assert "[[0, 2], [0, 2]]" in printed
