"""The `docstore sync` command as a user runs it: JSON events, exit codes, status, audit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from docstore.client import DocstoreClient
from tests.fixtures.server import ServerProcess
from tests.fixtures.services import missing
from tests.sync.helpers import local_tree, new_client, remote_tree

DOCSTORE = Path(sys.executable).with_name("docstore")


def cli_env(tmp_path: Path, ds: DocstoreClient) -> dict[str, str]:
    """The environment of a `docstore` process logged in as `ds` (private HOME)."""
    assert ds.token is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(
        {
            "DOCSTORE_URL": ds.base_url,
            "DOCSTORE_TOKEN": ds.token,
            "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
            "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"),
            "NO_COLOR": "1",
        }
    )
    return env


def _run(tmp_path: Path, ds: DocstoreClient, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCSTORE), *args],
        env=cli_env(tmp_path, ds),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_command_reports_per_path_and_exits_non_zero_on_failure(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    assert ds.token is not None
    a = tmp_path / "a"
    a.mkdir()
    (a / "one.txt").write_bytes(b"1")
    (a / "two.txt").write_bytes(b"2")

    dry = _run(tmp_path, ds, "sync", str(a), "/Cli", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = [json.loads(line) for line in dry.stdout.splitlines()]
    assert {(e["action"], e["path"]) for e in planned[:-1]} == {
        ("upload", "one.txt"),
        ("upload", "two.txt"),
    }
    assert remote_tree(ds, "/Cli") == {}  # dry run: nothing sent

    (a / "bad\x01name.txt").write_bytes(b"refused")
    done = _run(tmp_path, ds, "sync", str(a), "/Cli", "--once", "--json")
    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    errors = [e for e in events if e["action"] == "error"]
    assert [e["path"] for e in errors] == ["bad\x01name.txt"]
    assert "validation_error" in errors[0]["error"]
    assert events[-1]["action"] == "summary" and list(events[-1]["errors"]) == ["bad\x01name.txt"]
    tree = local_tree(a)
    tree.pop("bad\x01name.txt")
    assert tree == remote_tree(ds, "/Cli")

    status = _run(tmp_path, ds, "sync", "status", str(a), "--json")
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    assert summary["files"] == 2 and summary["remote_path"] == "/Cli"

    # The activity log shows who uploaded with which client.
    uploads = ds.audit(action="UPLOAD").items
    agents = {e.user_agent for e in uploads}
    assert agents and all(a and a.startswith("docstore-sync/") for a in agents)


def test_unreadable_files_and_folders_are_reported_and_the_rest_syncs(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """A file and a folder the sync process may not read: each reported by path, exit 1,
    everything else synced. The tests run as root, which reads anything, so the sync runs
    as root without the capabilities that override file permissions (util-linux setpriv)."""
    if shutil.which("setpriv") is None:
        missing(
            "setpriv", "util-linux's setpriv is not installed: no way to drop root's file access"
        )
    ds = new_client(sync_server)
    a = tmp_path / "a"
    (a / "locked").mkdir(parents=True)
    (a / "locked" / "inside.txt").write_bytes(b"in")
    (a / "ok.txt").write_bytes(b"ok")
    (a / "secret.txt").write_bytes(b"secret")
    (a / "secret.txt").chmod(0)
    (a / "locked").chmod(0)
    (tmp_path / "home").mkdir()
    try:
        done = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search",
                *(str(DOCSTORE), "sync", str(a), "/Unreadable", "--once", "--json"),
            ],
            env=cli_env(tmp_path, ds),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        (a / "secret.txt").chmod(0o644)
        (a / "locked").chmod(0o755)
    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    errors = {e["path"]: e["error"] for e in events if e["action"] == "error"}
    assert set(errors) == {"secret.txt", "locked"}, events
    assert "cannot read" in errors["secret.txt"] and "cannot list" in errors["locked"]
    # The readable file went up; nothing else did, and nothing local was touched.
    assert remote_tree(ds, "/Unreadable") == {"ok.txt": b"ok"}
    assert (a / "secret.txt").read_bytes() == b"secret"
    assert (a / "locked" / "inside.txt").read_bytes() == b"in"


def test_quiet_mode_prints_failures_only(sync_server: ServerProcess, tmp_path: Path) -> None:
    """`--quiet` (for services): nothing on stdout, each failure on stderr, exit 1 then 0."""
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    (a / "fine.txt").write_bytes(b"fine")
    (a / "bad\x02.txt").write_bytes(b"a name the server refuses")
    failed = _run(tmp_path, ds, "sync", str(a), "/Quiet", "--quiet")
    assert failed.returncode == 1
    assert failed.stdout == ""
    [line] = failed.stderr.splitlines()
    assert "bad\x02.txt" in line and "validation_error" in line
    assert remote_tree(ds, "/Quiet") == {"fine.txt": b"fine"}
    (a / "bad\x02.txt").unlink()
    done = _run(tmp_path, ds, "sync", str(a), "/Quiet", "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
