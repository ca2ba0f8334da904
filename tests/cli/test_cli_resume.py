"""An upload killed halfway resumes: only the parts storage does not have are sent again."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.cli.conftest import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_resume")]

MiB = 1024 * 1024


def test_killed_upload_resumes_with_only_the_missing_parts(user: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = os.urandom(4 * 8 * MiB + MiB)  # five parts of (at most) 8 MiB
    big.write_bytes(data)

    # One part at a time, and the process SIGKILLs itself once two parts are stored.
    killed = user.run("upload", str(big), "/resume", "--parallel", "1", "--kill-after-parts", "2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    states = list((user.home / ".cache" / "docstore" / "uploads").glob("*.json"))
    assert len(states) == 1
    state = json.loads(states[0].read_text())
    assert sorted(state["done"]) == ["1", "2"]
    assert len(state["session"]["parts"]) == 5
    parts_path = urlsplit(state["session"]["parts"][0]["url"]).path.rsplit("/", 1)[0]
    assert user.run("ls", "/resume/big.bin").returncode == 3  # nothing was completed

    resumed = user.json("upload", str(big), "/resume")
    item = resumed["items"][0]
    assert (item["action"], item["parts_resumed"], item["parts_sent"]) == (
        "uploaded",
        2,
        [3, 4, 5],
    )
    assert item["bytes_sent"] == len(data) - 2 * 8 * MiB
    assert not states[0].exists()

    # The server saw every part exactly once, across both runs.
    log = user.server.log.read_text()
    puts = re.findall(rf'"PUT {re.escape(parts_path)}/(\d+)\?[^"]*" 200', log)
    assert sorted(puts) == ["1", "2", "3", "4", "5"]

    user.ok("download", "/resume/big.bin", "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert user.json("whoami")["used_bytes"] == len(data)
