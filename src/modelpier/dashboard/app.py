"""``mount_dashboard``: the web dashboard under ``/ui`` of a control-plane app.

The dashboard is its own small Starlette app mounted into the control plane's: its pages are not
API routes (they are outside ``/api/v1``, absent from the OpenAPI document and from the access
rules in ``control/api/policy.py``), and it reaches the API the way any client does, over HTTP with the
signed-in user's token, in-process through an ASGI transport. Unauthenticated requests to a page
are sent to the sign-in page; static assets (vendored, see ``static/vendor/README.md``) are public.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelpier._lib.clock import Clock, SystemClock
from modelpier.auth.secret import load_or_create_secret
from modelpier.dashboard.pages.auth import auth_routes
from modelpier.dashboard.pages.deployments import deployment_routes
from modelpier.dashboard.pages.models import model_routes
from modelpier.dashboard.pages.projects import project_routes
from modelpier.dashboard.pages.tryit import tryit_routes
from modelpier.dashboard.session import SessionSigner, SessionStore
from modelpier.dashboard.web import STATIC, Dashboard, SecurityHeaders, base_path
from modelpier.errors import NotFound, PierError
from modelpier.settings import Settings

MOUNT = "/ui"


def build_dashboard_app(dash: Dashboard) -> Starlette:
    async def home(request: Request) -> Response:
        return RedirectResponse(f"{base_path(request)}/deployments", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: PierError
        if exc.status_code == 404:
            error = NotFound(f"there is no page at {request.url.path}")
        else:
            error = PierError(f"{request.method} is not allowed on {request.url.path}" if exc.status_code == 405
                              else str(exc.detail))
        return dash.error_page(request, error, dash.session_of(request), status=exc.status_code)

    routes = [Route("/", home, methods=["GET"]), *auth_routes(dash), *model_routes(dash), *deployment_routes(dash),
              *tryit_routes(dash), *project_routes(dash),
              Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                     exception_handlers={HTTPException: http_error})


def mount_dashboard(app: Starlette, settings: Settings, *, gateway_url: str | None,
                    clock: Clock | None = None) -> Dashboard:
    """Serve the dashboard under ``/ui`` of ``app`` (the control plane's API app, which it calls).

    ``gateway_url`` is where try-it sends requests and where deployment links point (``pier up``
    knows it; ``pier server`` passes None and uses the URL each deployment reports). Sessions are
    signed with a key derived from the server secret (``PIER_AUTH__SECRET`` or ``$PIER_HOME/secret``).
    """
    configured = settings.auth.secret.get_secret_value() if settings.auth.secret else None
    secret = load_or_create_secret(settings.home, configured)
    dash = Dashboard(control=app, sessions=SessionStore(clock or SystemClock()), signer=SessionSigner(secret),
                     gateway_url=gateway_url)
    app.mount(MOUNT, build_dashboard_app(dash), name="dashboard")

    async def to_dashboard(_: Request) -> Response:
        return RedirectResponse(f"{MOUNT}/", status_code=307)

    app.add_route("/", to_dashboard, methods=["GET"], include_in_schema=False)
    return dash
