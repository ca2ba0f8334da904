"""Real WebDAV clients against a real `docstore serve`, on SQLite + local storage and on
PostgreSQL + Redis + S3: litmus (Debian's conformance suite; every suite, basic, copymove,
props, locks and http, must pass with no failure, warning or skipped check) and rclone
(vendor=other: a tree synced up and down byte-identical, an idle second sync, one edit
making exactly one new version)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.dav.conftest import DavServer
from tests.fixtures.services import missing

SUITES = ("basic", "copymove", "props", "locks", "http")
SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


def test_litmus_and_rclone(dav_server: DavServer, tmp_path: Path) -> None:
    """Both real clients against one server (one server per backend, whatever the xdist
    scheduling): litmus first, then the rclone round trip on a fresh account."""
    _litmus(dav_server, tmp_path / "litmus")
    _rclone_round_trip(dav_server, tmp_path / "rclone")


def _litmus(dav_server: DavServer, tmp_path: Path) -> None:
    """Every litmus suite passes: no failure, no warning, no skipped check."""
    tmp_path.mkdir()
    if shutil.which("litmus") is None:
        missing("litmus", "the Debian package litmus is not installed")
    account = dav_server.account()
    url = f"{dav_server.url}/dav/files/"
    result = subprocess.run(
        ["litmus", "-k", url, account.email, account.token],
        env={"TESTS": " ".join(SUITES), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    summaries = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in SUMMARY.findall(out)}
    assert set(summaries) == set(SUITES), out[-4000:]
    for suite, (run, passed, failed) in summaries.items():
        assert failed == 0 and passed == run, f"{suite}: {passed}/{run}\n{out[-4000:]}"
    # litmus says "WARNING:" for a check that passed with a warning, "SKIPPED" for one it
    # could not run: neither counts as a pass here.
    assert "WARNING" not in out and "warning" not in out.lower(), out[-4000:]
    assert "SKIPPED" not in out.upper(), out[-4000:]
    assert result.returncode == 0, out[-4000:]
    assert sum(run for run, _, _ in summaries.values()) == 104


def _rclone(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rclone", "--config", str(config), "--transfers", "8", "--checkers", "8",
         "--tpslimit", "0", "--retries", "1", "--low-level-retries", "2", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _rclone_round_trip(dav_server: DavServer, tmp_path: Path) -> None:
    """rclone (vendor=other) syncs a tree up and down byte-identical, a second sync moves
    nothing, and one modified file makes exactly one new version on the server."""
    if shutil.which("rclone") is None:
        missing("rclone", "the Debian package rclone is not installed")
    tmp_path.mkdir()
    account = dav_server.account()
    config = tmp_path / "rclone.conf"
    config.write_text("")
    obscured = _rclone(config, "obscure", "--", account.token).stdout.strip()
    remote = (
        f":webdav,url='{dav_server.url}/dav/files/',vendor=other,"
        f"user='{account.email}',pass='{obscured}':tree"
    )
    up = tmp_path / "up"
    for d in range(10):
        (up / f"dir {d}").mkdir(parents=True)
        for f in range(20):
            (up / f"dir {d}" / f"file-{f}.txt").write_bytes(f"{d}/{f} ".encode() * (f + 1))
    big = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    (up / "big.bin").write_bytes(big)

    first = _rclone(config, "sync", str(up), remote, "-v")
    assert first.returncode == 0, first.stderr[-4000:]
    down = tmp_path / "down"
    down.mkdir()
    back = _rclone(config, "sync", remote, str(down))
    assert back.returncode == 0, back.stderr[-4000:]
    assert _tree(down) == _tree(up)
    check = _rclone(config, "check", "--download", str(up), remote)
    assert check.returncode == 0, check.stderr[-4000:]

    again = _rclone(config, "sync", str(up), remote, "-v")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "Copied" not in again.stderr, again.stderr[-4000:]

    api = httpx.Client(base_url=f"{dav_server.url}/api/v1", timeout=30,
                       headers={"Authorization": f"Bearer {account.token}"})  # fmt: skip
    used_before = api.get("/users/me").json()["used_bytes"]
    changed = up / "dir 3" / "file-7.txt"
    changed.write_bytes(b"changed on the laptop\n" * 5)
    third = _rclone(config, "sync", str(up), remote, "-v")
    assert third.returncode == 0, third.stderr[-4000:]
    assert third.stderr.count("Copied") == 1, third.stderr[-4000:]
    # Only that file's new version was charged: no other file was sent again.
    assert api.get("/users/me").json()["used_bytes"] - used_before == changed.stat().st_size
    folder = _child(api, "root", "tree")
    folder = _child(api, folder, "dir 3")
    doc = _child(api, folder, "file-7.txt")
    versions = api.get(f"/documents/{doc}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [2, 1]
    assert versions[0]["size_bytes"] == changed.stat().st_size


def _child(api: httpx.Client, folder: object, name: str) -> object:
    items = api.get(f"/folders/{folder}/children", params={"limit": 1000}).json()["items"]
    return next(i["id"] for i in items if i["name"] == name)
