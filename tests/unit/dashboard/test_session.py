"""Sessions: signed ids, expiry (idle and absolute), capacity, one-time flashes, CSRF comparison."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelpier.dashboard.session import Flash, SessionSigner, SessionStore, same_secret


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t


def test_a_signed_id_round_trips_and_tampering_is_refused() -> None:
    signer = SessionSigner(b"server secret")
    value = signer.sign("abc")
    assert signer.unsign(value) == "abc"
    session_id, mac = value.split(".")
    assert signer.unsign(f"abd.{mac}") is None
    assert signer.unsign(f"{session_id}.{'0' * len(mac)}") is None
    assert SessionSigner(b"another secret").unsign(value) is None


@pytest.mark.parametrize("value", [None, "", "abc", "a.b.c", ".", ".mac"])
def test_malformed_cookies_are_no_session(value: str | None) -> None:
    assert SessionSigner(b"s").unsign(value) is None


def test_sessions_expire_when_idle_and_at_their_maximum_age() -> None:
    clock = FakeClock()
    store = SessionStore(clock, idle_s=10, max_age_s=25)
    session = store.create("pier_token", user="ann", admin=False)
    for _ in range(2):  # each request keeps it alive for another idle period...
        clock.t += 9
        assert store.get(session.id) is session
    clock.t += 9  # ...but not past its maximum age (27 s after sign-in)
    assert store.get(session.id) is None
    idle = store.create("pier_token", user="ann", admin=False)
    clock.t += 11
    assert store.get(idle.id) is None
    assert len(store) == 0


def test_each_sign_in_is_a_new_session_and_the_store_is_bounded() -> None:
    clock = FakeClock()
    store = SessionStore(clock, capacity=2)
    first, second = (store.create("t", user="u", admin=False) for _ in range(2))
    assert first.id != second.id
    assert first.csrf != second.csrf
    store.get(first.id)  # seen last: the least recently seen (second) goes first
    third = store.create("t", user="u", admin=True)
    assert store.get(second.id) is None
    assert store.get(first.id) is first
    assert store.get(third.id) is third
    store.drop(first.id)
    assert store.get(first.id) is None


def test_flashes_show_once_and_the_token_never_appears_in_repr() -> None:
    session = SessionStore(FakeClock()).create("pier_secret-token", user="ann", admin=False)
    session.flash("ok", "saved")
    assert session.take_flashes() == [Flash("ok", "saved")]
    assert session.take_flashes() == []
    assert "pier_secret-token" not in repr(session)
    assert session.csrf not in repr(session)


@pytest.mark.parametrize(("given", "ok"), [("abc", True), ("abd", False), ("", False), (None, False)])
def test_csrf_tokens_compare_exactly(given: str | None, ok: bool) -> None:
    assert same_secret("abc", given) is ok
