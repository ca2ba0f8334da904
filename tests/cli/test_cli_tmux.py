"""An interactive session in a real terminal (tmux): prompts, the progress bar, the tables.

The captured screen is kept as a test artifact: artifacts/cli-tmux-session.txt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import DOCSTORE, PASSWORD, Cli
from tests.fixtures.services import missing

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_tmux")]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class Tmux:
    """One tmux server on a private socket, one 120x50 window running bash."""

    def __init__(self, exe: str, env: dict[str, str], cwd: Path) -> None:
        self.exe = exe
        self.socket = f"docstore-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.cmd([
            "new-session", "-d", "-s", "demo", "-x", "120", "-y", "50", "-c", str(cwd),
            "bash --norc --noprofile",
        ])  # fmt: skip

    def cmd(self, args: list[str]) -> str:
        done = subprocess.run(
            [self.exe, "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def type(self, text: str, enter: bool = True) -> None:
        """Type `text` literally, then Enter."""
        self.cmd(["send-keys", "-t", "demo", "-l", text])
        if enter:
            self.cmd(["send-keys", "-t", "demo", "Enter"])

    def screen(self) -> str:
        return self.cmd(["capture-pane", "-t", "demo", "-p", "-J", "-S", "-200"])

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(
            [self.exe, "-L", self.socket, "kill-server"], env=self.env, timeout=30, check=False
        )


@pytest.fixture
def tmux(cli: Cli, tmp_path: Path) -> Iterator[Tmux]:
    exe = shutil.which("tmux")
    if exe is None:
        missing("tmux", "not installed (apt-get install tmux)")
        raise AssertionError("unreachable")
    env = {k: v for k, v in cli.env.items() if k not in ("COLUMNS", "NO_COLOR")}
    env |= {"PS1": "$ ", "TERM": "xterm-256color", "PATH": f"{DOCSTORE.parent}:{env['PATH']}"}
    session = Tmux(exe, env, tmp_path)
    yield session
    session.kill()


def test_interactive_session_shows_prompts_progress_and_tables(
    cli: Cli, tmux: Tmux, tmp_path: Path
) -> None:
    email = "tmux-user@example.com"
    r = httpx.post(
        f"{cli.server.url}/api/v1/auth/register",
        json={"email": email, "name": "Tmux User", "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    (tmp_path / "report.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    (tmp_path / "notes.txt").write_text("interactive\n")

    tmux.type(f"docstore login --url {cli.server.url} --email {email}")
    tmux.wait_for("Password:")
    tmux.type(PASSWORD)
    tmux.wait_for("Logged in to")
    tmux.type("docstore upload report.bin /demo && docstore upload notes.txt /demo")
    tmux.wait_for("1 file: 1 uploaded, 0 new version(s)", timeout=120)
    tmux.type("docstore ls /demo; docstore versions /demo/notes.txt; echo __END__")
    screen = tmux.wait_for("\n__END__\n")

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cli-tmux-session.txt").write_text(screen)
    assert PASSWORD not in screen  # the password prompt does not echo
    assert "uploading 1 file " in screen and "━━━━━━━━━━" in screen  # the progress bar
    assert "24.0/24.0 MiB" in screen
    assert "┃ name" in screen and "report.bin" in screen and "24.0 MiB" in screen  # ls table
    assert "┃ version" in screen and "✓" in screen  # versions table
