"""``EventRecorder``: one Event per object, reason and message; repeats bump its count; failures are logged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from modelpier.backends.kubernetes.events import EventRecorder
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError

CR = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
      "metadata": {"name": "iris", "namespace": "acme", "uid": "u1", "resourceVersion": "5"}}


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 12, 6, 8, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return 0.0


class FakeApi(KubeApi):
    def __init__(self, fail: int | None = None) -> None:  # no HTTP client: every request is recorded
        self.calls: list[tuple[str, str, Any]] = []
        self.fail = fail

    async def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        self.calls.append((method, path, body))
        if self.fail is not None:
            raise KubeApiError(self.fail, "Forbidden", "no")
        return {}


def test_repeats_bump_the_count() -> None:
    api = FakeApi()
    recorder = EventRecorder(api, clock=FixedClock())

    async def scenario() -> None:
        for _ in range(3):
            await recorder.record(CR, "Warning", "InvalidSpec", "weights add up to 200")
        await recorder.record(CR, "Warning", "InvalidSpec", "another problem")

    asyncio.run(scenario())
    methods = [(m, p.rsplit("/", 1)[-1] if m == "PATCH" else p) for m, p, _ in api.calls]
    assert [m for m, _ in methods] == ["POST", "PATCH", "PATCH", "POST"]
    first = api.calls[0][2]
    assert first["involvedObject"] == {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                                       "name": "iris", "namespace": "acme", "uid": "u1", "resourceVersion": "5"}
    assert (first["type"], first["reason"], first["count"]) == ("Warning", "InvalidSpec", 1)
    assert api.calls[0][1] == "/api/v1/namespaces/acme/events"
    assert api.calls[2][2] == {"count": 3, "lastTimestamp": "2026-12-06T08:00:00Z"}


def test_a_refused_event_is_logged_not_raised() -> None:
    api = FakeApi(fail=403)
    asyncio.run(EventRecorder(api, clock=FixedClock()).record(CR, "Warning", "ApplyFailed", "x"))
    assert len(api.calls) == 1
