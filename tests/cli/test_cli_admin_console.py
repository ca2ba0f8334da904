"""`docstore admin …`: the admin console's operations over HTTP, as real processes."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.cli.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_admin_console")]


def test_admin_commands_go_through_the_admin_api(cli: Cli) -> None:
    api = f"{cli.server.url}/api/v1"
    r = httpx.post(
        f"{api}/auth/register",
        json={"email": "eve-cli@example.com", "name": "Eve", "password": PASSWORD},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    eve = {"Authorization": f"Bearer {r.json()['token']}"}
    cli.ok(
        "login", "--url", cli.server.url, "--email", ADMIN_EMAIL, "--password-stdin",
        input=ADMIN_PASSWORD + "\n",
    )  # fmt: skip

    found = cli.json("admin", "users", "eve-cli")
    assert [(u["email"], u["is_active"]) for u in found] == [("eve-cli@example.com", True)]
    assert "eve-cli@example.com" in cli.ok("admin", "users").stdout

    assert "disabled" in cli.ok("admin", "disable", "eve-cli@example.com").stdout
    assert httpx.get(f"{api}/users/me", headers=eve, timeout=30).status_code == 401
    me = cli.json("admin", "users", ADMIN_EMAIL)[0]
    refused = cli.run("admin", "disable", str(me["id"]))
    assert refused.returncode == 4 and "own account" in refused.stderr
    assert cli.run("admin", "enable", "nobody@example.com").returncode == 3
    cli.ok("admin", "enable", "eve-cli@example.com")
    assert httpx.get(f"{api}/users/me", headers=eve, timeout=30).status_code == 200

    storage = cli.json("admin", "storage")
    assert storage["users"] >= 2 and "dedup_saved_bytes" in storage
    assert "saved by deduplication" in cli.ok("admin", "storage").stdout
    assert cli.json("admin", "retention-preview")["items"] == []
    assert "audit log intact" in cli.ok("admin", "audit-verify").stdout
    lines = cli.ok("admin", "audit-export").stdout.splitlines()
    assert any(json.loads(line)["action"] == "LOGIN" for line in lines)


def test_admin_commands_refuse_a_non_admin(user: Cli) -> None:
    proc = user.run("admin", "storage")
    assert proc.returncode == 6 and "Traceback" not in proc.stderr
