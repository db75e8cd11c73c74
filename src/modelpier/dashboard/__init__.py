"""The web dashboard: server-rendered pages over the control plane's own API, under ``/ui``.

Models, deployments (status, revisions, events, logs, live traffic charts), try-it and projects,
with Jinja2 templates, htmx and uPlot vendored as static files (no build step, nothing loaded from
the internet). The composition roots (``pier server``, ``pier up``) call ``mount_dashboard``;
docs/dashboard.md describes the pages and the session design.
"""

from modelpier.dashboard.app import mount_dashboard

__all__ = ["mount_dashboard"]
