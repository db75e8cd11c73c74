"""``AuthService`` over a real SQLite store: bootstrap, expiry, revocation, invocation keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelpier.auth.access import Principal, Role
from modelpier.auth.service import AuthService
from modelpier.auth.sql import SqlAuthStore
from modelpier.errors import Conflict, Forbidden, NotFound, Unauthenticated


class FakeClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.t.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(tmp_path: Path, clock: FakeClock) -> Iterator[AuthService]:
    store = SqlAuthStore.open(f"sqlite:///{tmp_path / 'pier.db'}", clock=clock)
    yield AuthService(store, b"k" * 32, clock=clock)
    store.close()


def test_the_first_start_mints_an_admin_token_once(auth: AuthService) -> None:
    token = auth.bootstrap_admin(None)
    assert token is not None
    assert auth.bootstrap_admin(None) is None
    assert auth.authenticate(token) == Principal("admin", admin=True, roles={})


def test_a_configured_admin_token_is_accepted_from_the_start(auth: AuthService) -> None:
    assert auth.bootstrap_admin("pier_configured-admin-token") is None
    assert auth.authenticate("pier_configured-admin-token").admin


def test_expired_and_revoked_tokens_are_refused_saying_why(auth: AuthService, clock: FakeClock) -> None:
    admin = Principal("admin", admin=True)
    auth.store.ensure_user("admin", admin=True)
    short = auth.create_token(admin, "short", user="bob", expires_in_s=60)
    assert auth.authenticate(short.secret).user == "bob"
    clock.t += timedelta(seconds=61)
    with pytest.raises(Unauthenticated, match="expired") as expired:
        auth.authenticate(short.secret)
    assert short.secret not in str(expired.value)
    kept = auth.create_token(admin, "kept", user="bob")
    auth.revoke(Principal("bob"), kept.info.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        auth.authenticate(kept.secret)


def test_only_admins_mint_tokens_for_others(auth: AuthService) -> None:
    auth.store.ensure_user("bob")
    with pytest.raises(Forbidden):
        auth.create_token(Principal("bob"), "x", user="eve")


def test_invocation_keys_invoke_one_deployment_and_nothing_else(auth: AuthService) -> None:
    auth.store.ensure_user("eve")
    auth.set_member("acme", "eve", Role.editor)
    eve = auth.authenticate(auth.create_token(Principal("eve"), "mine").secret)
    key = auth.create_invocation_key(eve, "acme", "iris", "client").secret
    assert key.startswith("pierk_")
    assert auth.may_invoke(key, "acme", "iris")
    assert not auth.may_invoke(key, "acme", "other")
    with pytest.raises(Unauthenticated):
        auth.authenticate(key)  # not an API token
    user_token = auth.create_token(eve, "t").secret
    assert auth.may_invoke(user_token, "acme", "anything")
    assert not auth.may_invoke(user_token, "other", "iris")
    assert not auth.may_invoke("pier_nope", "acme", "iris")


def test_tokens_list_by_prefix_and_name_without_secrets(auth: AuthService) -> None:
    auth.store.ensure_user("bob")
    bob = Principal("bob")
    made = auth.create_token(bob, "laptop")
    auth.create_token(bob, "ci")
    assert [t.name for t in auth.list_tokens(bob, search="lap")] == ["laptop"]
    assert [t.name for t in auth.list_tokens(bob, search=made.info.prefix)] == ["laptop"]
    assert made.secret not in repr(auth.list_tokens(bob))


# -- the auth epoch ---------------------------------------------------------------------------------


def test_every_loss_of_access_advances_the_epoch_and_nothing_else_does(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'pier.db'}"
    store = SqlAuthStore.open(url, clock=clock)
    auth = AuthService(store, b"k" * 32, clock=clock)
    heard: list[int] = []
    auth.epoch.subscribe(heard.append)
    admin = Principal("admin", admin=True)
    auth.store.ensure_user("admin", admin=True)
    start = auth.epoch.value
    # Granting access changes nothing a gateway cached.
    token = auth.create_token(admin, "bob", user="bob")
    auth.set_member("acme", "bob", Role.viewer)
    auth.set_member("acme", "bob", Role.owner)  # a promotion
    auth.create_token(admin, "carol", user="carol")
    assert auth.epoch.value == start
    assert heard == []
    # Taking it away does, once per change, in the order it happened.
    auth.set_member("acme", "bob", Role.editor)  # a demotion
    auth.revoke(admin, token.info.id)
    auth.revoke(admin, token.info.id)  # revoking twice changes nothing the second time
    auth.remove_member("acme", "bob")
    auth.set_member("beta", "carol", Role.viewer)
    auth.forget_project("beta")
    auth.delete_user(admin, "carol")
    assert heard == [start + 1, start + 2, start + 3, start + 4, start + 5]
    store.close()
    # The epoch is stored: a restarted control plane continues from it, never back.
    again = AuthService(SqlAuthStore.open(url, clock=clock), b"k" * 32, clock=clock)
    assert again.epoch.value == start + 5
    again.store.close()


def test_a_failed_change_does_not_advance_the_epoch(auth: AuthService) -> None:
    auth.store.ensure_user("admin", admin=True)
    before = auth.epoch.value
    with pytest.raises(NotFound):
        auth.remove_member("acme", "nobody")
    with pytest.raises(NotFound):
        auth.revoke(Principal("admin", admin=True), 12345)
    assert auth.epoch.value == before == auth.store.auth_epoch()


# -- users ------------------------------------------------------------------------------------------


def test_deleting_a_user_takes_their_tokens_and_memberships(auth: AuthService) -> None:
    admin = Principal("admin", admin=True)
    auth.store.ensure_user("admin", admin=True)
    bob = auth.create_token(admin, "laptop", user="bob")
    auth.set_member("acme", "bob", Role.editor)
    assert [(u.name, roles) for u, roles in auth.list_users()] == [
        ("admin", {}), ("bob", {"acme": Role.editor})]
    assert auth.delete_user(admin, "bob").name == "bob"
    with pytest.raises(Unauthenticated, match="not valid"):
        auth.authenticate(bob.secret)
    assert not auth.may_invoke(bob.secret, "acme", "iris")
    assert auth.store.members("acme") == []
    assert [u.name for u, _ in auth.list_users()] == ["admin"]
    # A new user of that name starts with nothing.
    auth.store.ensure_user("bob")
    assert auth.store.roles_of("bob") == {}
    assert auth.list_tokens(Principal("bob")) == []


def test_users_that_cannot_be_deleted(auth: AuthService) -> None:
    admin = Principal("admin", admin=True)
    auth.store.ensure_user("admin", admin=True)
    auth.store.ensure_user("bob")
    with pytest.raises(Forbidden, match="only a platform admin"):
        auth.delete_user(Principal("bob"), "admin")
    with pytest.raises(Conflict, match="your own user"):
        auth.delete_user(admin, "admin")
    with pytest.raises(NotFound, match="user 'nobody' does not exist"):
        auth.delete_user(admin, "nobody")
    auth.store.ensure_user("root", admin=True)
    auth.delete_user(Principal("root", admin=True), "admin")  # another admin remains: fine
    with pytest.raises(Conflict, match="'root' is the last platform admin"):
        auth.store.delete_user("root")  # the only way back in stays
