"""``pier login``, ``pier token …``, ``pier user …``, ``pier audit``, ``pier project …`` members and
``pier quota …``.

Clients of the control plane's API (``ControlClient`` sending ``sdk/control_api/access.py``'s calls)
with the token from settings; ``login`` checks a token against the server (``/whoami``) before
storing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from modelpier.auth.access import Role
from modelpier.auth.wire import QuotaBody
from modelpier.cli.context import CliContext, get_context
from modelpier.cli.credentials import save_credentials
from modelpier.cli.deploy_support import remote_url
from modelpier.cli.output import OutputFormat, emit, simple_table
from modelpier.errors import InvalidInput
from modelpier.sdk.control_api import ControlClient, access

REMOTE = typer.Option(None, "--remote", help="Control-plane URL (default: settings.remote, then localhost).")
OUTPUT = typer.Option(OutputFormat.table, "--output", "-o", help="table, json or yaml.")

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="List and delete users (platform admins).", no_args_is_help=True)
project_app = typer.Typer(help="Project members.", no_args_is_help=True)
quota_app = typer.Typer(help="Per-project quotas.", no_args_is_help=True)


@contextmanager
def _client(c: CliContext, remote: str | None, token: str | None = None) -> Iterator[ControlClient]:
    with c.control(remote_url(c, remote), token=token) as client:
        yield client


def login(ctx: typer.Context, remote: str = typer.Option(..., "--remote", help="Control-plane URL."),
          token: str = typer.Option(..., "--token", help="API token (pier_...).", prompt=True, hide_input=True)
          ) -> None:
    """Check a token against the control plane and store it (and the URL) in the config file, mode 0600."""
    c = get_context(ctx)
    with _client(c, remote, token) as client:
        me = client.send(access.whoami())
    path = save_credentials(remote, token)
    c.out.print(f"logged in to {remote} as [bold]{me.user}[/]{' (admin)' if me.admin else ''}; saved to {path}")


@token_app.command("create")
def token_create(ctx: typer.Context, name: str = typer.Argument(..., help="Label of the token."),
                 user: str = typer.Option(None, help="Owner (admins only; default you)."),
                 expires_in_s: float = typer.Option(None, "--expires-in-s", min=1, help="Lifetime in seconds."),
                 remote: str = REMOTE, output: OutputFormat = OUTPUT) -> None:
    """Create a token; its secret is printed this once."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        made = client.send(access.create_token(name, user=user, expires_in_s=expires_in_s))
    emit(c.out, made.model_dump(mode="json"), output,
         lambda: f"token {made.id} ({made.name}) for {made.user}; shown once, store it now:\n{made.token}")


@token_app.command("list")
def token_list(ctx: typer.Context, search: str = typer.Option(None, help="Prefix or part of the name."),
               all_users: bool = typer.Option(False, "--all", help="Every user's tokens (admins)."),
               remote: str = REMOTE, output: OutputFormat = OUTPUT) -> None:
    """List tokens by prefix and name (never their secrets)."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        found = client.send(access.list_tokens(search=search, all_users=all_users))
    emit(c.out, [t.model_dump(mode="json") for t in found], output, lambda: simple_table(
        None, ["ID", "USER", "NAME", "PREFIX", "EXPIRES", "REVOKED"],
        [[t.id, t.user, t.name, t.prefix, t.expires_at or "-", t.revoked_at or "-"] for t in found]))


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int = typer.Argument(..., help="The token's ID."),
                 remote: str = REMOTE) -> None:
    """Revoke a token: it stops working at once."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        t = client.send(access.revoke_token(token_id))
    c.out.print(f"revoked token {t.id} ({t.name}, {t.prefix}…)")


@user_app.command("list")
def user_list(ctx: typer.Context, remote: str = REMOTE, output: OutputFormat = OUTPUT) -> None:
    """Every user, whether they are a platform admin, and their role in each project."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        found = client.send(access.list_users())
    emit(c.out, [u.model_dump(mode="json") for u in found], output, lambda: simple_table(
        None, ["USER", "ADMIN", "CREATED", "ROLES"],
        [[u.name, "yes" if u.admin else "-", u.created_at.isoformat(timespec="seconds"),
          ", ".join(f"{p}={r}" for p, r in u.roles.items()) or "-"] for u in found]))


@user_app.command("delete")
def user_delete(ctx: typer.Context, user: str = typer.Argument(..., help="The user's name."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                remote: str = REMOTE) -> None:
    """Delete a user with their tokens and memberships; the tokens stop working at once (gateways too)."""
    c = get_context(ctx)
    if not yes and not typer.confirm(f"delete user {user}, their tokens and memberships?"):
        raise typer.Exit(1)
    with _client(c, remote) as client:
        client.send(access.delete_user(user))
    c.out.print(f"deleted user {user}; their tokens no longer work")


def audit(ctx: typer.Context, project: str = typer.Option(None, "--project", "-p", help="One project only."),
          limit: int = typer.Option(100, min=1, max=1000), remote: str = REMOTE,
          output: OutputFormat = OUTPUT) -> None:
    """The audit log of mutating calls: who, what, when, result (admins; owners with --project)."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        entries = client.send(access.audit(project, limit=limit))
    emit(c.out, [e.model_dump(mode="json") for e in entries], output, lambda: simple_table(
        None, ["TIME", "USER", "METHOD", "PATH", "STATUS"],
        [[e.at.isoformat(timespec="seconds"), e.user, e.method, e.path, e.status] for e in entries]))


@project_app.command("add-member")
def add_member(ctx: typer.Context, project: str, user: str,
               role: str = typer.Option("viewer", help="owner, editor or viewer."),
               remote: str = REMOTE) -> None:
    """Add a member to a project, or change their role (owners)."""
    c = get_context(ctx)
    if role not in Role.__members__:
        raise InvalidInput(f"--role must be one of {', '.join(Role.__members__)}, not {role!r}")
    with _client(c, remote) as client:
        m = client.send(access.set_member(project, user, Role[role]))
    c.out.print(f"{m.user} is {m.role} of {project}")


@project_app.command("remove-member")
def remove_member(ctx: typer.Context, project: str, user: str, remote: str = REMOTE) -> None:
    """Remove a member from a project (owners)."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        client.send(access.remove_member(project, user))
    c.out.print(f"{user} is no longer a member of {project}")


@project_app.command("members")
def members(ctx: typer.Context, project: str, remote: str = REMOTE, output: OutputFormat = OUTPUT) -> None:
    """List a project's members and roles."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        found = client.send(access.members(project))
    emit(c.out, [m.model_dump(mode="json") for m in found], output,
         lambda: simple_table(None, ["USER", "ROLE"], [[m.user, m.role] for m in found]))


@quota_app.command("get")
def quota_get(ctx: typer.Context, project: str, remote: str = REMOTE, output: OutputFormat = OUTPUT) -> None:
    """A project's limits (empty: unlimited)."""
    c = get_context(ctx)
    with _client(c, remote) as client:
        q = client.send(access.quota(project))
    data = q.model_dump(mode="json")
    emit(c.out, data, output, lambda: simple_table(
        None, ["QUOTA", "LIMIT"], [[k, "unlimited" if v is None else v] for k, v in data.items()]))


@quota_app.command("set")
def quota_set(ctx: typer.Context, project: str,
              replicas: int = typer.Option(None, min=0), cpu_millis: int = typer.Option(None, min=0),
              memory_bytes: int = typer.Option(None, min=0), gpus: int = typer.Option(None, min=0),
              storage_bytes: int = typer.Option(None, min=0), deployments: int = typer.Option(None, min=0),
              remote: str = REMOTE) -> None:
    """Set limits; the ones not given stay as they are (owners)."""
    c = get_context(ctx)
    given = {"replicas": replicas, "cpu_millis": cpu_millis, "memory_bytes": memory_bytes, "gpus": gpus,
             "storage_bytes": storage_bytes, "deployments": deployments}
    with _client(c, remote) as client:
        current = client.send(access.quota(project)).model_dump()
        current.update({k: v for k, v in given.items() if v is not None})
        q = client.send(access.set_quota(project, QuotaBody(**current)))
    c.out.print(f"quota of {project}: " + ", ".join(f"{k}={v}" for k, v in q.model_dump().items() if v is not None))
