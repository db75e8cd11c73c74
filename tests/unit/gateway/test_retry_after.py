"""The gateway's final 503 invites a retry (Retry-After) only when no replica can have run the request."""

from __future__ import annotations

import pytest

from modelpier.gateway.compose import build_gateway
from modelpier.gateway.proxy import Retryable
from modelpier.spec.routing import PredictorRoute
from tests.unit.gateway.fakes import FakeProxy, refused, request, run
from tests.unit.gateway.test_dispatch import INFER, MAIN, MAIN_B, table


@pytest.mark.parametrize(("failures", "retry_after"), [
    ((refused(), refused()), "1"),  # never connected: safe to send again
    ((Retryable("reset by peer"), refused()), None),  # the first replica may have run it
    ((refused(), Retryable("closed before answering")), None),
    ((Retryable("cannot connect", delivered=False), Retryable("idle close, then refused", delivered=True)), None),
])
def test_retry_after_only_when_nothing_was_delivered(failures: tuple[Retryable, Retryable],
                                                      retry_after: str | None) -> None:
    proxy = FakeProxy({"http://main-a": failures[0], "http://main-b": failures[1]})
    app = build_gateway(table(PredictorRoute("main", 100, (MAIN, MAIN_B))), proxy=proxy)
    r = run(lambda: request(app, "POST", INFER))
    assert r.status_code == 503
    assert r.headers.get("retry-after") == retry_after
    assert len(proxy.calls) == 2
