"""Every `docstore` command's --help shows an example; the exit codes are documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from docstore.cli.main import app
from tests.cli.conftest import DOCSTORE, Cli

pytestmark = pytest.mark.xdist_group("cli_help")


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path; groups count when they do something of their own."""
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(command, "commands"):  # a group (typer ships its own copy of click)
            if command.invoke_without_command:
                found.append(path)
            found.extend(_commands(command, path))
        elif not command.hidden:
            found.append(path)
    return found


COMMANDS = _commands(typer.main.get_group(app))


def test_the_user_and_admin_commands_are_all_there() -> None:
    names = {" ".join(c) for c in COMMANDS}
    wanted = {
        "serve", "migrate", "user create", "user list", "user set-quota", "user set-plan",
        "plan set", "plan list", "login", "logout", "whoami", "ls", "mkdir", "upload",
        "download", "mv", "rm", "versions", "restore", "share", "link", "unshare", "shares",
        "access", "shared", "trash", "trash restore", "trash purge", "comment", "comments",
    }  # fmt: skip
    assert wanted <= names, wanted - names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example: docstore " in result.output or "Example: DOCSTORE_" in result.output


def test_the_real_executable_documents_its_exit_codes(tmp_path: Path) -> None:
    cli = Cli(None, tmp_path / "home")  # --help needs no server
    assert DOCSTORE.exists()
    top = cli.ok("--help").stdout
    assert "Exit codes: 0 ok, 1 error, 2 usage" in " ".join(top.split())
    upload = " ".join(cli.ok("upload", "--help").stdout.split())
    assert "Example: docstore upload ./reports /projects/q1" in upload
    assert "3 not found, 4 conflict, 5 quota exceeded, 6 not logged in" in upload
