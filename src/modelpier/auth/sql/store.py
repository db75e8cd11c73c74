"""``SqlAuthStore``: users, token hashes, members, quotas and the audit log in the metadata database.

Each public method is one short transaction returning frozen objects from ``auth/domain.py``; the
store never sees a token secret, only its HMAC. SQLAlchemy errors leave as ``modelpier.errors``.

Every write that takes access away (a token revoked, a member removed or demoted, a user deleted, a
project forgotten) also increments the auth epoch in the same transaction, so the epoch a reader
sees is never older than the change it stands for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from modelpier.auth.access import Role
from modelpier.auth.domain import AuditEntry, Member, TokenInfo, User
from modelpier.auth.sql.tables import AuditRow, AuthEpochRow, MemberRow, QuotaRow, TokenRow, UserRow
from modelpier.errors import Conflict, NotFound
from modelpier.registry.sql.base import SqlStore, guarded

P = ParamSpec("P")
R = TypeVar("R")
MAX_AUDIT = 1000



def quota_limits(session: Session, project: str) -> dict[str, Any]:
    """The project's limits as stored (an empty dict: unlimited), read inside the caller's transaction:
    the deployment store checks quotas in the same transaction as its write."""
    row = session.get(QuotaRow, project)
    return dict(row.limits) if row is not None else {}


def _user(row: UserRow) -> User:
    return User(name=row.name, admin=row.admin, created_at=row.created_at)


def _token(row: TokenRow, user: str) -> TokenInfo:
    return TokenInfo(id=row.id, user=user, name=row.name, prefix=row.prefix, created_at=row.created_at,
                     expires_at=row.expires_at, revoked_at=row.revoked_at, project=row.project,
                     deployment=row.deployment)


class SqlAuthStore(SqlStore):
    """Thread-safe; share one per process."""

    @staticmethod
    def _user_row(session: Session, name: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"user {name!r} does not exist", details={"user": name})
        return row

    @staticmethod
    def _bump_epoch(session: Session) -> None:
        bumped = session.execute(update(AuthEpochRow).where(AuthEpochRow.id == 1)
                                 .values(epoch=AuthEpochRow.epoch + 1).execution_options(synchronize_session=False))
        if not getattr(bumped, "rowcount", 0):  # the migration inserts the row; be robust if it went missing
            session.add(AuthEpochRow(id=1, epoch=1))

    # -- the auth epoch -------------------------------------------------------------------------

    @guarded
    def auth_epoch(self) -> int:
        with self._read() as s:
            return int(s.scalar(select(AuthEpochRow.epoch).where(AuthEpochRow.id == 1)) or 0)

    # -- users ----------------------------------------------------------------------------------

    @guarded
    def list_users(self) -> list[User]:
        with self._read() as s:
            return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]

    @guarded
    def all_roles(self) -> dict[str, dict[str, Role]]:
        """Every user's roles by project, by user name (users without any are absent)."""
        with self._read() as s:
            rows = s.execute(select(UserRow.name, MemberRow.project, MemberRow.role)
                             .join(UserRow, MemberRow.user_id == UserRow.id)).all()
        out: dict[str, dict[str, Role]] = {}
        for user, project, role in rows:
            out.setdefault(user, {})[project] = Role[role]
        return out

    @guarded
    def delete_user(self, name: str) -> User:
        """Delete a user; their tokens and memberships go with them (ON DELETE CASCADE). ``Conflict``
        for the last platform admin, who is the only way back in."""
        with self._write() as s:
            row = self._user_row(s, name)
            if row.admin and (s.scalar(select(func.count()).select_from(UserRow).where(UserRow.admin.is_(True)))
                              or 0) <= 1:
                raise Conflict(f"{name!r} is the last platform admin and cannot be deleted",
                               details={"user": name})
            deleted = _user(row)
            # Explicit deletes rather than trusting the cascade alone: SQLite enforces it only with
            # foreign_keys on, and a stale token must never outlive its user.
            s.execute(delete(TokenRow).where(TokenRow.user_id == row.id))
            s.execute(delete(MemberRow).where(MemberRow.user_id == row.id))
            s.execute(delete(UserRow).where(UserRow.id == row.id))
            self._bump_epoch(s)
            return deleted


    @guarded
    def has_admin(self) -> bool:
        with self._read() as s:
            return s.scalar(select(UserRow.id).where(UserRow.admin.is_(True)).limit(1)) is not None

    @guarded
    def ensure_user(self, name: str, *, admin: bool = False) -> User:
        with self._write() as s:
            row = s.scalar(select(UserRow).where(UserRow.name == name))
            if row is None:
                row = UserRow(name=name, admin=admin, created_at=self._clock.now())
                s.add(row)
            elif admin and not row.admin:
                row.admin = True
            return _user(row)

    # -- tokens ---------------------------------------------------------------------------------

    @guarded
    def add_token(self, user: str, name: str, *, prefix: str, token_hash: str, expires_at: datetime | None,
                  project: str | None = None, deployment: str | None = None) -> TokenInfo:
        with self._write() as s:
            owner = self._user_row(s, user)
            row = TokenRow(user_id=owner.id, name=name, prefix=prefix, hash=token_hash, project=project,
                           deployment=deployment, created_at=self._clock.now(), expires_at=expires_at,
                           revoked_at=None)
            s.add(row)
            s.flush()
            return _token(row, user)

    @guarded
    def find_token(self, token_hash: str) -> tuple[TokenInfo, User] | None:
        with self._read() as s:
            found = s.execute(select(TokenRow, UserRow).join(UserRow, TokenRow.user_id == UserRow.id)
                              .where(TokenRow.hash == token_hash)).first()
            if found is None:
                return None
            token, user = found
            return _token(token, user.name), _user(user)

    @guarded
    def list_tokens(self, user: str | None = None, *, search: str | None = None) -> list[TokenInfo]:
        with self._read() as s:
            query = select(TokenRow, UserRow.name).join(UserRow, TokenRow.user_id == UserRow.id)
            if user is not None:
                query = query.where(UserRow.name == user)
            rows = s.execute(query.order_by(TokenRow.id)).all()
        out = [_token(t, name) for t, name in rows]
        if search:
            out = [t for t in out if t.prefix.startswith(search) or search in t.name]
        return out

    @guarded
    def revoke_token(self, token_id: int, *, user: str | None = None) -> TokenInfo:
        """Revoke; ``user`` limits it to that user's tokens (others look absent)."""
        with self._write() as s:
            found = s.execute(select(TokenRow, UserRow.name).join(UserRow, TokenRow.user_id == UserRow.id)
                              .where(TokenRow.id == token_id)).first()
            if found is None or (user is not None and found[1] != user):
                raise NotFound(f"token {token_id} does not exist", details={"token": token_id})
            row, name = found
            if row.revoked_at is None:
                row.revoked_at = self._clock.now()
                self._bump_epoch(s)
            return _token(row, name)

    # -- members --------------------------------------------------------------------------------

    @guarded
    def roles_of(self, user: str) -> dict[str, Role]:
        with self._read() as s:
            rows = s.execute(select(MemberRow.project, MemberRow.role).join(UserRow, MemberRow.user_id == UserRow.id)
                             .where(UserRow.name == user)).all()
        return {project: Role[role] for project, role in rows}

    @guarded
    def set_member(self, project: str, user: str, role: Role) -> Member:
        with self._write() as s:
            owner = self._user_row(s, user)
            row = s.scalar(select(MemberRow).where(MemberRow.project == project, MemberRow.user_id == owner.id))
            if row is None:
                s.add(MemberRow(project=project, user_id=owner.id, role=role.name))
            else:
                if role < Role[row.role]:  # a demotion takes rights away
                    self._bump_epoch(s)
                row.role = role.name
            return Member(project, user, role)

    @guarded
    def remove_member(self, project: str, user: str) -> None:
        with self._write() as s:
            owner = self._user_row(s, user)
            gone = s.execute(delete(MemberRow).where(MemberRow.project == project, MemberRow.user_id == owner.id))
            if not getattr(gone, "rowcount", 0):
                raise NotFound(f"{user!r} is not a member of project {project!r}",
                               details={"project": project, "user": user})
            self._bump_epoch(s)

    @guarded
    def members(self, project: str) -> list[Member]:
        with self._read() as s:
            rows = s.execute(select(UserRow.name, MemberRow.role).join(UserRow, MemberRow.user_id == UserRow.id)
                             .where(MemberRow.project == project).order_by(UserRow.name)).all()
        return [Member(project, name, Role[role]) for name, role in rows]

    @guarded
    def forget_project(self, project: str) -> None:
        """Drop a deleted project's members and quota, so a new project of that name starts empty."""
        with self._write() as s:
            gone = s.execute(delete(MemberRow).where(MemberRow.project == project))
            s.execute(delete(QuotaRow).where(QuotaRow.project == project))
            if getattr(gone, "rowcount", 0):
                self._bump_epoch(s)

    # -- quotas ---------------------------------------------------------------------------------

    @guarded
    def limits(self, project: str) -> dict[str, Any]:
        with self._read() as s:
            return quota_limits(s, project)

    @guarded
    def set_limits(self, project: str, limits: dict[str, Any]) -> None:
        with self._write() as s:
            row = s.get(QuotaRow, project)
            if row is None:
                s.add(QuotaRow(project=project, limits=limits))
            else:
                row.limits = limits

    # -- audit ----------------------------------------------------------------------------------

    @guarded
    def record(self, *, user: str, method: str, path: str, project: str | None, status: int) -> None:
        with self._write() as s:
            s.add(AuditRow(at=self._clock.now(), user=user[:255], method=method[:16], path=path[:1024],
                           project=project, status=status))

    @guarded
    def audit(self, *, project: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest last; ``project`` limits to one project's entries."""
        with self._read() as s:
            query = select(AuditRow)
            if project is not None:
                query = query.where(AuditRow.project == project)
            rows = list(s.scalars(query.order_by(AuditRow.id.desc()).limit(min(limit, MAX_AUDIT))))
        return [AuditEntry(r.id, r.at, r.user, r.method, r.path, r.project, r.status) for r in reversed(rows)]
