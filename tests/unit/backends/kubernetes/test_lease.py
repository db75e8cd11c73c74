"""``decide_lease``: when to create, renew, take over or wait (pure, our monotonic clock only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from modelpier._lib.leadership import while_leading
from modelpier.backends.kubernetes.lease import (
    SERVICE_ACCOUNT_NAMESPACE,
    LeaseLeadership,
    LeaseRecord,
    candidate_identity,
    decide_lease,
    own_namespace,
    parse_lease,
)


def record(holder: str | None, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_s=duration, renew_time=None, acquire_time=None, transitions=0,
                       resource_version="7")


@pytest.mark.parametrize(("lease", "now", "observed_at", "action"), [
    (None, 100.0, 100.0, "create"),               # no Lease yet
    (record("me"), 100.0, 0.0, "renew"),          # ours, even if we were slow: renew
    (record(None), 100.0, 99.0, "take_over"),     # released by its holder: at once
    (record(""), 100.0, 99.0, "take_over"),
    (record("other"), 100.0, 90.0, "wait"),       # held, changed 10 s ago, 15 s lease
    (record("other"), 105.0, 90.0, "take_over"),  # no change for a whole lease: expired
    (record("other", duration=0), 104.0, 90.0, "wait"),  # no duration on the Lease: ours (15 s)
    (record("other", duration=5), 96.0, 90.0, "take_over"),  # its own duration counts
])
def test_decide(lease: LeaseRecord | None, now: float, observed_at: float, action: str) -> None:
    decision = decide_lease(lease, "me", now=now, observed_at=observed_at, lease_duration_s=15, retry_period_s=2)
    assert decision.action == action


def test_a_follower_looks_again_when_the_lease_would_expire() -> None:
    decision = decide_lease(record("other"), "me", now=104.0, observed_at=90.0, lease_duration_s=15,
                            retry_period_s=2)
    assert decision.action == "wait"
    assert decision.retry_in_s == pytest.approx(1.0)


def test_parse_lease() -> None:
    parsed = parse_lease({"metadata": {"resourceVersion": "42"}, "spec": {
        "holderIdentity": "pod-a", "leaseDurationSeconds": 15, "renewTime": "2026-12-06T08:00:00.123456Z",
        "leaseTransitions": 3}})
    assert parsed == LeaseRecord("pod-a", 15, datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC), None, 3, "42")


def test_while_leading_runs_work_during_a_term_only() -> None:
    class Gate(LeaseLeadership):
        def __init__(self) -> None:  # no elector: terms are driven by the test
            self.leading, self.follower = asyncio.Event(), asyncio.Event()
            self.follower.set()

        async def acquire(self) -> None:
            await self.leading.wait()

        async def lost(self) -> None:
            await self.follower.wait()

    async def scenario() -> list[str]:
        gate, seen = Gate(), []

        async def work() -> None:
            seen.append("start")
            try:
                await asyncio.Event().wait()
            finally:
                seen.append("stop")

        task = asyncio.create_task(while_leading(gate, work, restart_s=0))
        await asyncio.sleep(0.01)
        gate.leading.set()
        gate.follower.clear()
        await asyncio.sleep(0.01)
        gate.leading.clear()
        gate.follower.set()  # the term ends: the work is cancelled
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    assert asyncio.run(scenario()) == ["start", "stop"]


def test_a_released_leadership_never_campaigns_again() -> None:
    """At shutdown: the reconciler's and the synchroniser's next acquire wait for ever, so no new campaign
    takes the Lease back from the standby."""
    async def scenario() -> None:
        leadership = LeaseLeadership(None)  # type: ignore[arg-type]  # never reached: released first
        await leadership.release()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(leadership.acquire(), 0.05)

    asyncio.run(scenario())


def test_identities_are_unique_per_process_and_the_namespace_has_a_default() -> None:
    assert candidate_identity() != candidate_identity()
    assert own_namespace("fallback") in {"fallback", SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
                                          if SERVICE_ACCOUNT_NAMESPACE.exists() else "fallback"}
