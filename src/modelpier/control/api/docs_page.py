"""The control plane's ``/docs``: Swagger UI from the vendored assets, so the page works offline.

FastAPI's own page loads Swagger UI from a CDN: blank without internet access. The replicas already
serve a vendored copy (``server/static/swagger``, the ``swagger-ui-dist`` npm package, Apache-2.0);
the control plane serves the same files under ``/docs/static/``. They are read as package data of
``modelpier`` (the control plane does not import the model server; the files are shared, not code).
The routes are plain Starlette routes, like FastAPI's ``/openapi.json``: public, and outside the
documented API the access rules cover.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import Response

STATIC_PREFIX = "/docs/static"
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
}


@cache
def _asset(name: str) -> bytes:
    return (resources.files("modelpier") / "server" / "static" / "swagger" / name).read_bytes()


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI of ``app.openapi_url``) and its assets; build ``app`` with ``docs_url=None``."""

    async def page(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
                                   swagger_favicon_url="data:,")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        content_type = _ASSETS.get(name)
        if content_type is None:
            return Response(b'{"error": {"code": "not_found", "message": "no such file"}}', status_code=404,
                            media_type="application/json")
        return Response(_asset(name), media_type=content_type,
                        headers={"cache-control": "public, max-age=86400"})

    app.add_route("/docs", page, include_in_schema=False)
    app.add_route(STATIC_PREFIX + "/{name}", static, include_in_schema=False)
