"""The control plane's HTTP face: the FastAPI app (``app``), its routes (``routes/``), the wire bodies
(``wire``, ``canary_wire``, ``traffic_wire``), the access rules every route needs (``policy``,
``security``), errors on the wire (``errors``, ``openapi_errors``), metrics and the docs page. A new
endpoint goes in ``routes/`` with its rule in ``policy``; the calls the CLI and dashboard make to it go
in ``calls``."""
