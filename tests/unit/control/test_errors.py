"""The control plane's error mapping: an unexpected exception is one 500 envelope, logged once."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI

from modelpier.control.api.errors import install_error_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    @app.get("/aboom")
    async def aboom() -> None:
        raise KeyError("x")

    return app


@pytest.mark.parametrize("path", ["/boom", "/aboom"])
def test_an_unexpected_error_is_a_500_envelope_logged_once(path: str, caplog: pytest.LogCaptureFixture) -> None:
    async def call() -> httpx.Response:
        # raise_app_exceptions: an exception that left the app (the server would log it again) fails here.
        transport = httpx.ASGITransport(_app(), raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
            return await client.get(path)

    with caplog.at_level(logging.ERROR):
        r = asyncio.run(call())
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "internal"
    assert "Traceback" not in r.text
    records = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(records) == 1
    assert error["details"]["error_id"] in records[0].getMessage()
    assert records[0].exc_info is not None
