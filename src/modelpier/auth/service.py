"""``AuthService``: authenticate bearer tokens into principals; mint, list and revoke tokens; members;
users.

Wires the pure parts (``tokens``, ``access``) to the store. Messages never contain a token: a
rejected token is described by why it was rejected, not by what it was. After every change that
takes access away the store has incremented the auth epoch; the service then advances ``epoch``,
which tells the routing feed (and through it every gateway) to forget cached token checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from modelpier._lib.clock import Clock, SystemClock
from modelpier.auth import tokens
from modelpier.auth.access import Action, Allow, Principal, Role, decide_access
from modelpier.auth.domain import Member, TokenInfo, User
from modelpier.auth.epoch import AuthEpoch
from modelpier.auth.sql.store import SqlAuthStore
from modelpier.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from modelpier.spec.names import validate_name

ADMIN_USER = "admin"
BOOTSTRAP_TOKEN_NAME = "bootstrap"  # noqa: S105 - a label, not a secret


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token: ``secret`` is shown to the caller once and never stored."""

    secret: str
    info: TokenInfo


class AuthService:
    def __init__(self, store: SqlAuthStore, secret: bytes, *, clock: Clock | None = None) -> None:
        self.store = store
        self._secret = secret
        self._clock = clock or SystemClock()
        self.epoch = AuthEpoch(store.auth_epoch())

    def _access_shrank(self) -> None:
        """Catch up with the epoch the store just incremented (and tell the listeners)."""
        self.epoch.advance(self.store.auth_epoch())

    # -- authentication -------------------------------------------------------------------------

    def lookup(self, token: str | None) -> tuple[TokenInfo, User]:
        """The valid token record for ``token``, or ``Unauthenticated`` saying why not."""
        if not token:
            raise Unauthenticated("this call needs an API token: send `Authorization: Bearer pier_...` "
                                  "(`pier login` stores one for the CLI)")
        if not tokens.plausible(token):
            raise Unauthenticated("the API token is malformed")
        found = self.store.find_token(tokens.hash_token(self._secret, token))
        if found is None:
            raise Unauthenticated("the API token is not valid")
        info, user = found
        if info.revoked_at is not None:
            raise Unauthenticated(f"the API token {info.prefix}… was revoked")
        if info.expires_at is not None and self._clock.now() >= info.expires_at:
            raise Unauthenticated(f"the API token {info.prefix}… has expired")
        return info, user

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a valid user token (invocation keys only invoke, through the gateway)."""
        info, user = self.lookup(token)
        if info.deployment is not None:
            raise Unauthenticated("an invocation key only invokes its deployment through the gateway")
        return Principal(user=user.name, admin=user.admin, roles=self.store.roles_of(user.name))

    def may_invoke(self, token: str, project: str, deployment: str) -> bool:
        """For the gateway: a user token with a role in ``project``, or this deployment's invocation key."""
        try:
            info, user = self.lookup(token)
        except Unauthenticated:
            return False
        if info.deployment is not None:
            return (info.project, info.deployment) == (project, deployment)
        principal = Principal(user=user.name, admin=user.admin, roles=self.store.roles_of(user.name))
        return isinstance(decide_access(principal, Action.invoke, project), Allow)

    # -- tokens ---------------------------------------------------------------------------------

    def bootstrap_admin(self, admin_token: str | None) -> str | None:
        """Make sure an admin exists. With ``admin_token`` (``PIER_ADMIN_TOKEN``) that token is the
        admin's; without, the first start mints one and returns it so the caller prints it once."""
        if admin_token:
            if not admin_token.startswith(tokens.TOKEN_PREFIX) or not tokens.plausible(admin_token):
                raise InvalidInput(f"PIER_ADMIN_TOKEN must start with {tokens.TOKEN_PREFIX!r} and be printable")
            self.store.ensure_user(ADMIN_USER, admin=True)
            token_hash = tokens.hash_token(self._secret, admin_token)
            if self.store.find_token(token_hash) is None:
                self.store.add_token(ADMIN_USER, BOOTSTRAP_TOKEN_NAME, prefix=tokens.display_prefix(admin_token),
                                     token_hash=token_hash, expires_at=None)
            return None
        if self.store.has_admin():
            return None
        self.store.ensure_user(ADMIN_USER, admin=True)
        return self._mint(ADMIN_USER, BOOTSTRAP_TOKEN_NAME, None).secret

    def _mint(self, user: str, name: str, expires_in_s: float | None, *, key: bool = False,
              project: str | None = None, deployment: str | None = None) -> Minted:
        secret = tokens.new_token(tokens.KEY_PREFIX if key else tokens.TOKEN_PREFIX)
        expires = self._clock.now() + timedelta(seconds=expires_in_s) if expires_in_s else None
        info = self.store.add_token(user, name, prefix=tokens.display_prefix(secret),
                                    token_hash=tokens.hash_token(self._secret, secret), expires_at=expires,
                                    project=project, deployment=deployment)
        return Minted(secret, info)

    def create_token(self, principal: Principal, name: str, *, user: str | None = None,
                     expires_in_s: float | None = None) -> Minted:
        """A token for the caller, or (admins only) for ``user``, who is created if new."""
        validate_name(name, what="token name")
        owner = user or principal.user
        if owner != principal.user:
            if not principal.admin:
                raise Forbidden("only a platform admin creates tokens for other users")
            self.store.ensure_user(owner)
        return self._mint(owner, name, expires_in_s)

    def create_invocation_key(self, principal: Principal, project: str, deployment: str, name: str,
                              *, expires_in_s: float | None = None) -> Minted:
        validate_name(name, what="key name")
        return self._mint(principal.user, name, expires_in_s, key=True, project=project, deployment=deployment)

    def list_tokens(self, principal: Principal, *, search: str | None = None, all_users: bool = False
                    ) -> list[TokenInfo]:
        if all_users and not principal.admin:
            raise Forbidden("only a platform admin lists every user's tokens")
        return self.store.list_tokens(None if all_users else principal.user, search=search)

    def revoke(self, principal: Principal, token_id: int) -> TokenInfo:
        revoked = self.store.revoke_token(token_id, user=None if principal.admin else principal.user)
        self._access_shrank()
        return revoked

    # -- members --------------------------------------------------------------------------------

    def set_member(self, project: str, user: str, role: Role) -> Member:
        self.store.ensure_user(user)
        member = self.store.set_member(project, user, role)
        self._access_shrank()  # a demotion
        return member

    def remove_member(self, project: str, user: str) -> None:
        self.store.remove_member(project, user)
        self._access_shrank()

    def forget_project(self, project: str) -> None:
        """A deleted project's members and quota go, so a new project of that name starts empty."""
        self.store.forget_project(project)
        self._access_shrank()

    # -- users ----------------------------------------------------------------------------------

    def list_users(self) -> list[tuple[User, dict[str, Role]]]:
        roles = self.store.all_roles()
        return [(u, roles.get(u.name, {})) for u in self.store.list_users()]

    def delete_user(self, principal: Principal, name: str) -> User:
        """Delete a user with their tokens and memberships (admins); their tokens stop working at
        once, on the control plane and, through the auth epoch, on every gateway."""
        if not principal.admin:
            raise Forbidden("only a platform admin deletes users")
        if name == principal.user:
            raise Conflict("you cannot delete your own user; ask another admin", details={"user": name})
        deleted = self.store.delete_user(name)
        self._access_shrank()
        return deleted
