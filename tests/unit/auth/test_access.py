"""The access matrix: every role against every action, in a member project and another one."""

from __future__ import annotations

import pytest

from modelpier.auth.access import Action, Allow, Deny, Principal, Role, decide_access, visible_projects

ALLOWED = {  # role → actions allowed in a project where the principal has that role
    Role.viewer: {Action.read, Action.invoke},
    Role.editor: {Action.read, Action.invoke, Action.write},
    Role.owner: {Action.read, Action.invoke, Action.write, Action.manage},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_a_member_may_do_what_their_role_includes_and_gets_403_otherwise(role: Role, action: Action) -> None:
    decision = decide_access(Principal("u", roles={"acme": role}), action, "acme")
    if action in ALLOWED[role]:
        assert decision == Allow()
    else:
        assert isinstance(decision, Deny)
        assert decision.status == 403


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", [a for a in Action if a is not Action.admin])
def test_another_projects_resources_are_not_found(role: Role, action: Action) -> None:
    decision = decide_access(Principal("u", roles={"acme": role}), action, "other")
    assert isinstance(decision, Deny)
    assert decision.status == 404
    assert "does not exist" in decision.reason


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("project", ["acme", None])
def test_the_platform_admin_may_do_anything(action: Action, project: str | None) -> None:
    assert decide_access(Principal("root", admin=True), action, project) == Allow()


@pytest.mark.parametrize(("roles", "action", "allowed"), [
    ({}, Action.read, True),                         # listings, filtered by the caller
    ({}, Action.write, False),                       # blob uploads need editor somewhere
    ({"a": Role.viewer}, Action.write, False),
    ({"a": Role.viewer, "b": Role.editor}, Action.write, True),
    ({"a": Role.owner}, Action.admin, False),
])
def test_platform_wide_calls(roles: dict[str, Role], action: Action, allowed: bool) -> None:
    decision = decide_access(Principal("u", roles=roles), action, None)
    assert (decision == Allow()) is allowed
    if not allowed:
        assert isinstance(decision, Deny)
        assert decision.status == 403


def test_listings_show_only_member_projects() -> None:
    assert visible_projects(Principal("u", roles={"b": Role.viewer}), ["a", "b", "c"]) == ["b"]
    assert visible_projects(Principal("r", admin=True), ["a", "b"]) == ["a", "b"]
