"""``decide_access``: the one pure decision of who may do what in which project.

No I/O: the caller resolves the bearer token into a ``Principal`` (user, admin flag, roles per
project) and names the action and the project; the answer is ``Allow`` or ``Deny`` with the reason
and the HTTP-neutral status class the transport maps (401 is decided earlier, by authentication).

Guarantee: a principal without any role in a project is told the project does not exist (404), so
tokens cannot be used to discover other tenants; a member whose role is too low gets 403.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    """Project roles, ordered: each includes the rights of those below it."""

    viewer = 1
    editor = 2
    owner = 3


class Action(enum.Enum):
    """What a call does, by the least role it needs (``admin`` needs the platform admin)."""

    read = "read"          # list and get models, deployments, events, logs
    invoke = "invoke"      # call a deployment through the gateway
    write = "write"        # register/push models, apply/delete/rollback deployments
    manage = "manage"      # members, quotas, delete the project, read its audit log
    admin = "admin"        # users, projects, the routing table, the whole audit log


REQUIRED_ROLE: Mapping[Action, Role] = {
    Action.read: Role.viewer,
    Action.invoke: Role.viewer,
    Action.write: Role.editor,
    Action.manage: Role.owner,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token stands for. ``roles`` maps project name to role."""

    user: str
    admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)

    def role_in(self, project: str) -> Role | None:
        return self.roles.get(project)


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str
    status: int  # 403 (known, not allowed) or 404 (not visible to this principal)


Decision = Allow | Deny


def decide_access(principal: Principal, action: Action, project: str | None) -> Decision:
    """May ``principal`` do ``action`` in ``project`` (None: a platform-wide call)?

    Platform-wide reads (listings) are allowed to everyone authenticated; the caller filters them to
    the principal's projects. Platform-wide writes (blob uploads, which are content-addressed and
    shared) need editor somewhere.
    """
    if principal.admin:
        return Allow()
    if action is Action.admin:
        return Deny("this call needs the platform admin role", 403)
    needed = REQUIRED_ROLE[action]
    if project is None:
        allowed = action is Action.read or any(r >= needed for r in principal.roles.values())
        return Allow() if allowed else Deny(f"this call needs the {needed.name} role in at least one project", 403)
    role = principal.role_in(project)
    if role is None:
        return Deny(f"project {project!r} does not exist", 404)
    if role < needed:
        return Deny(f"this call needs the {needed.name} role in project {project!r}; "
                    f"{principal.user!r} is {role.name}", 403)
    return Allow()

def visible_projects(principal: Principal, projects: list[str]) -> list[str]:
    """The projects of ``projects`` a listing may show to ``principal``."""
    return list(projects) if principal.admin else [p for p in projects if p in principal.roles]
