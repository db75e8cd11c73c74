"""Where the dashboard sends a browser after sign-in, and the URLs of a deployment. Pure.

``safe_next`` keeps the ``next`` parameter of the sign-in page inside the dashboard: anything else
(another host, ``//evil.example``, a backslash trick, a path outside the mount) becomes the home
page, so the sign-in form cannot be used as an open redirect.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit


def safe_next(value: str | None, base: str) -> str:
    """``value`` if it is a path under ``base`` (the mount, e.g. ``/ui``) on this host, else ``base/``."""
    home = f"{base}/"
    if not value:
        return home
    parts = urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or "\\" in value or not path.startswith(home) or path.startswith("//") \
            or any(ord(c) < 0x20 for c in value) or "/.." in path:
        return home
    return path + (f"?{parts.query}" if parts.query else "")


def login_url(base: str, next_path: str, *, expired: bool = False) -> str:
    params = {"next": next_path} if next_path and next_path.rstrip("/") != base else {}
    if expired:
        params["expired"] = "1"
    return f"{base}/login" + (f"?{urlencode(params)}" if params else "")


def endpoint_url(status_url: str | None, gateway_url: str | None, project: str, deployment: str) -> str | None:
    """The deployment's URL through the gateway: the one the reconciler reports, else the gateway's."""
    if status_url:
        return status_url.rstrip("/")
    if gateway_url:
        return f"{gateway_url.rstrip('/')}/{project}/{deployment}"
    return None


def docs_url(endpoint: str | None) -> str | None:
    """The replica server's Swagger UI, through the gateway."""
    return f"{endpoint}/docs" if endpoint else None
