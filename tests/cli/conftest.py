"""Running the real `docstore` executable against a real server, as a user would.

One server per test module (SQLite, local storage); each test gets its own HOME, config
and cache directories, so the saved token and resumable-upload state land in tmp_path.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.mail import verify_over_http
from tests.fixtures.server import ServerProcess, start_server

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "admin pass phrase"
PASSWORD = "correct horse battery"
DOCSTORE = Path(sys.executable).with_name("docstore")
_names = itertools.count()


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A `docstore serve` on SQLite for the whole module, with an admin account."""
    env = {"DOCSTORE_ADMIN_EMAIL": ADMIN_EMAIL, "DOCSTORE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    # The background jobs play no part here; `docstore worker --once` is tested on its own.
    env["DOCSTORE_RUN_JOBS_IN_SERVER"] = "false"
    srv = start_server(tmp_path_factory.mktemp("cli-server"), None, env)
    yield srv
    srv.stop()


class Cli:
    """The `docstore` executable with a private HOME; `run` returns the finished process."""

    def __init__(self, server: ServerProcess | None, home: Path) -> None:
        self._server = server
        self.home = home
        self.email: str | None = None
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
        self.env.update(
            {
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "COLUMNS": "200",
                "NO_COLOR": "1",
            }
        )

    @property
    def server(self) -> ServerProcess:
        assert self._server is not None, "this Cli has no server"
        return self._server

    @property
    def config_dir(self) -> Path:
        return self.home / ".config" / "docstore"

    @property
    def admin_env(self) -> dict[str, str]:
        """What the admin commands need to work on the server's own database."""
        return {
            "DOCSTORE_DATA_DIR": str(self.server.data_dir),
            "DOCSTORE_SECRET_KEY": "e2e-secret",
        }

    def run(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docstore ARGS` to completion; no controlling terminal, so prompts read stdin."""
        return subprocess.run(
            [str(DOCSTORE), *args],
            input=input,
            env={**self.env, **(env or {})},
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run and insist on exit code 0."""
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, f"docstore {' '.join(args)} → {proc.returncode}\n{proc.stderr}"
        return proc

    def json(self, *args: str, **kw: Any) -> Any:
        """Run with --json and parse stdout."""
        return json.loads(self.ok(*args, "--json", **kw).stdout)

    def signup(self, name: str | None = None) -> str:
        """Register an account over the API and log in with `docstore login`; the email."""
        name = name or f"user{next(_names)}"
        email = f"{name}@example.com"
        r = httpx.post(
            f"{self.server.url}/api/v1/auth/register",
            json={"email": email, "name": name.title(), "password": PASSWORD},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        verify_over_http(self.server.url, email)
        self.ok(
            "login", "--url", self.server.url, "--email", email, "--password-stdin",
            input=PASSWORD + "\n",
        )  # fmt: skip
        self.email = email
        return email


@pytest.fixture
def cli(cli_server: ServerProcess, tmp_path: Path) -> Cli:
    """The CLI with its own HOME, not logged in yet."""
    return Cli(cli_server, tmp_path / "home")


@pytest.fixture
def user(cli: Cli) -> Cli:
    """The CLI logged in as a new user."""
    cli.signup()
    return cli
