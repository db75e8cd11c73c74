"""``pier login``, ``pier token``, ``pier user``, ``pier project add-member``, ``pier quota``, ``pier audit``
against a real server."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import yaml
from tests.support.procs import ADMIN_TOKEN, BIN, control_plane, pier_env, run_pier


def test_login_tokens_members_quota_and_audit(tmp_path: Path) -> None:
    with control_plane(tmp_path / "server") as url:
        client = tmp_path / "client"
        client.mkdir()
        # A user who has only logged in: no PIER_TOKEN in the environment.
        bad = run_pier(["login", "--remote", url, "--token", "pier_wrong"], client, PIER_TOKEN="")
        assert bad.returncode != 0
        assert "not valid" in bad.stderr
        assert "pier_wrong" not in bad.stderr + bad.stdout
        run_pier(["login", "--remote", url, "--token", ADMIN_TOKEN], client, check=True, PIER_TOKEN="")
        config = client / "config.yaml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert yaml.safe_load(config.read_text()) == {"remote": url, "token": ADMIN_TOKEN}

        def pier(*args: str) -> str:
            return run_pier(list(args), client, check=True, PIER_TOKEN="").stdout

        made = json.loads(pier("token", "create", "ci", "--user", "bob", "-o", "json"))
        assert made["token"].startswith("pier_")
        listed = json.loads(pier("token", "list", "--all", "-o", "json"))
        assert {t["name"] for t in listed} >= {"bootstrap", "ci"}
        assert made["token"] not in json.dumps(listed)
        pier("create", "project", "acme")
        pier("project", "add-member", "acme", "bob", "--role", "editor")
        assert json.loads(pier("project", "members", "acme", "-o", "json")) == [{"user": "bob", "role": "editor"}]
        pier("quota", "set", "acme", "--replicas", "4", "--gpus", "0")
        quota = json.loads(pier("quota", "get", "acme", "-o", "json"))
        assert quota["replicas"] == 4
        assert quota["gpus"] == 0
        assert quota["deployments"] is None
        # bob's token works for bob, not for the admin's calls
        bob = run_pier(["quota", "set", "acme", "--replicas", "9"], client, PIER_TOKEN=made["token"])
        assert bob.returncode != 0
        assert "owner" in bob.stderr
        pier("token", "revoke", str(made["id"]))
        gone = run_pier(["get", "projects"], client, PIER_TOKEN=made["token"])
        assert gone.returncode != 0
        assert "revoked" in gone.stderr
        audit = json.loads(pier("audit", "-o", "json"))
        assert any(e["path"] == "/api/v1/projects/acme/quota" and e["status"] == 403 and e["user"] == "bob"
                   for e in audit)
        pier("project", "remove-member", "acme", "bob")


def test_user_list_and_delete(tmp_path: Path) -> None:
    with control_plane(tmp_path / "server") as url:
        client = tmp_path / "client"
        client.mkdir()

        def pier(*args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
            return run_pier([*args, "--remote", url], client, PIER_TOKEN=token)

        made = json.loads(pier("token", "create", "ci", "--user", "carol", "-o", "json").stdout)
        assert pier("project", "add-member", "default", "carol", "--role", "viewer").returncode == 0
        table = pier("user", "list")
        assert table.returncode == 0
        assert "carol" in table.stdout
        assert "default=viewer" in table.stdout
        users = json.loads(pier("user", "list", "-o", "json").stdout)
        assert {u["name"]: u["roles"] for u in users} == {"admin": {}, "carol": {"default": "viewer"}}
        assert made["token"] not in table.stdout + json.dumps(users)
        # Not an admin: refused, and nothing deleted.
        refused = pier("user", "delete", "admin", "--yes", token=made["token"])
        assert refused.returncode != 0
        assert "admin" in refused.stderr
        # Without --yes it asks; "no" keeps the user.
        kept = subprocess.run([str(BIN / "pier"), "user", "delete", "carol", "--remote", url], input="n\n",
                              env=pier_env(client), capture_output=True, text=True, timeout=60, check=False)
        assert kept.returncode != 0
        assert pier("token", "list", token=made["token"]).returncode == 0  # carol still works
        done = pier("user", "delete", "carol", "--yes")
        assert done.returncode == 0, done.stderr
        assert "deleted user carol" in done.stdout
        gone = pier("token", "list", token=made["token"])
        assert gone.returncode != 0
        assert "not valid" in gone.stderr
        again = pier("user", "delete", "carol", "--yes")
        assert again.returncode != 0
        assert "user 'carol' does not exist" in again.stderr
        myself = pier("user", "delete", "admin", "--yes")
        assert myself.returncode != 0
        assert "your own user" in myself.stderr
        assert "--yes" in pier("user", "delete", "--help").stdout
