"""The admin commands, run as real processes on the server's own database and storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.fixtures.server import start_server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_admin")]


def test_user_and_plan_commands_then_the_account_works_over_http(cli: Cli) -> None:
    env = cli.admin_env
    assert "latest schema" in cli.ok("migrate", env=env).stdout
    made = cli.ok(
        "user", "create", "carol@example.com", "--name", "Carol", "--password", "carol pass 1",
        env=env,
    )  # fmt: skip
    assert "carol@example.com" in made.stdout and "┃" in made.stdout  # a table by default
    again = cli.run(
        "user", "create", "carol@example.com", "--name", "C", "--password", "carol pass 2",
        env=env,
    )  # fmt: skip
    assert again.returncode == 4 and "Traceback" not in again.stderr

    cli.ok(
        "plan", "set", "team", "--quota-bytes", "1000000", "--max-versions", "5",
        "--retention-days", "7", env=env,
    )  # fmt: skip
    plans = {p["name"]: p for p in cli.json("plan", "list", env=env)}
    assert plans["team"] == {
        "name": "team",
        "quota_bytes": 1000000,
        "max_versions": 5,
        "retention_days": 7,
    }
    cli.ok("user", "set-plan", "carol@example.com", "team", env=env)
    assert cli.run("user", "set-plan", "carol@example.com", "no-such-plan", env=env).returncode == 2
    cli.ok("user", "set-quota", "carol@example.com", "2000000", env=env)
    users = {u["email"]: u for u in cli.json("user", "list", env=env)}
    assert (users["carol@example.com"]["plan"], users["carol@example.com"]["quota_bytes"]) == (
        "team",
        2000000,
    )

    cli.ok(
        "login", "--url", cli.server.url, "--email", "carol@example.com", "--password-stdin",
        input="carol pass 1\n",
    )  # fmt: skip
    me = cli.json("whoami")
    assert (me["plan"], me["quota_bytes"]) == ("team", 2000000)

    retention = cli.json("retention", "run", "--dry-run", env=env)
    assert retention["versions_deleted"] == 0 and retention["dry_run"] is True
    assert cli.run("worker", "--once", env=env).returncode == 0
    # The worker sealed with the key in the data dir and anchored each head next to it.
    verdict = cli.json("audit", "verify", "--anchor", env=env)
    assert verdict["ok"] and verdict["checked"] > 0, verdict
    assert verdict["anchored"] > 0 and verdict["anchored_head_id"] == verdict["head_id"], verdict


def test_fsck_is_clean_on_a_healthy_store_and_fails_on_a_damaged_one(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path / "fsck", None, {"DOCSTORE_RUN_JOBS_IN_SERVER": "false"})
    try:
        cli = Cli(srv, tmp_path / "home")
        cli.signup()
        data = os.urandom(200_000)
        f = tmp_path / "keep.bin"
        f.write_bytes(data)
        cli.ok("upload", str(f), "/")
        healthy = cli.run("fsck", env=cli.admin_env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr

        stored = [p for p in (srv.data_dir / "blobs").rglob("*") if p.is_file()]
        victim = [p for p in stored if p.read_bytes() == data]
        assert len(victim) == 1
        victim[0].unlink()
        damaged = cli.run("fsck", "--json", env=cli.admin_env)
        assert damaged.returncode != 0
        report = json.loads(damaged.stdout)
        assert report["findings"], report
    finally:
        srv.stop()
