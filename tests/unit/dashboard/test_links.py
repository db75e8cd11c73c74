"""Where sign-in may send the browser (no open redirect), and a deployment's URLs."""

from __future__ import annotations

import pytest

from modelpier.dashboard.links import docs_url, endpoint_url, login_url, safe_next


@pytest.mark.parametrize(("value", "expected"), [
    ("/ui/models?q=iris", "/ui/models?q=iris"),
    ("/ui/projects/default/deployments/iris", "/ui/projects/default/deployments/iris"),
    (None, "/ui/"),
    ("", "/ui/"),
    ("https://evil.example/ui/", "/ui/"),
    ("//evil.example/ui/", "/ui/"),
    ("/\\evil.example", "/ui/"),
    ("/ui/../api/v1/tokens", "/ui/"),
    ("/api/v1/whoami", "/ui/"),
    ("/uix/models", "/ui/"),
    ("/ui/models\r\nSet-Cookie: x=1", "/ui/"),
    ("javascript:alert(1)", "/ui/"),
])
def test_safe_next_stays_inside_the_dashboard(value: str | None, expected: str) -> None:
    assert safe_next(value, "/ui") == expected


def test_login_url_carries_where_to_return() -> None:
    assert login_url("/ui", "/ui/models") == "/ui/login?next=%2Fui%2Fmodels"
    assert login_url("/ui", "/ui/", expired=True) == "/ui/login?expired=1"  # home needs no next
    assert login_url("/ui", "/ui") == "/ui/login"


def test_endpoint_prefers_the_reported_url_then_the_gateway() -> None:
    assert endpoint_url("http://gw/default/iris/", "http://other", "default", "iris") == "http://gw/default/iris"
    assert endpoint_url(None, "http://gw:8700/", "acme", "fraud") == "http://gw:8700/acme/fraud"
    assert endpoint_url(None, None, "acme", "fraud") is None
    assert docs_url("http://gw/acme/fraud") == "http://gw/acme/fraud/docs"
    assert docs_url(None) is None
