"""Real WebDAV clients against a real `docstore serve`, on SQLite + local storage and on
PostgreSQL + Redis + S3: litmus (Debian's conformance suite; every suite, basic, copymove,
props, locks and http, must pass with no failure, warning or skipped check) and rclone
(vendor=other: a tree synced up and down byte-identical, an idle second sync, one edit
making exactly one new version)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.dav.conftest import DavServer
from tests.fixtures.services import missing

# The size (1,000 small files and one 256 MiB file) on PostgreSQL + Redis + S3, where
# the big file goes through S3's multipart path; a smaller tree on SQLite + local storage
# keeps the suite's time in bounds (the full size costs ~50 s more per backend).
SIZES = {"postgres-redis-s3": (1000, 256), "sqlite-local": (200, 8)}
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
        # litmus echoes what servers answer: a stray non-UTF-8 byte must not hide its report.
        encoding="utf-8",
        errors="replace",
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
    # Low-level retries (one HTTP request again) ride out a 503 from moto on a loaded
    # machine; they do not change the transfer counts the test reads.
    return subprocess.run(
        ["rclone", "--config", str(config), "--transfers", "8", "--checkers", "8",
         "--tpslimit", "0", "--retries", "1", "--low-level-retries", "5", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _sync_stats(config: Path, *args: str) -> dict[str, int]:
    """`rclone sync` with its JSON log: the counters of its final stats line (transfers,
    checks, deletes, errors), as rclone itself counted them."""
    done = _rclone(config, "sync", *args, "-v", "--use-json-log")
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    stats = [line["stats"] for line in lines if "stats" in line]
    assert stats, done.stderr[-4000:]
    return {k: v for k, v in stats[-1].items() if isinstance(v, int)}


def _tree(root: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under root."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out[str(p.relative_to(root))] = h.hexdigest()
    return out


def _rclone_round_trip(dav_server: DavServer, tmp_path: Path) -> None:
    """The issue's proof: rclone (vendor=other) syncs 1,000 small files and one 256 MiB file
    (SIZES) up, then down into an empty directory, byte-identical (`rclone check --download` and our
    own hashes); a second sync transfers nothing (rclone's own stats); one file modified
    locally makes exactly one new version on the server."""
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
    small_files, big_mib = SIZES[dav_server.backend]
    up = tmp_path / "up"
    for d in range(10):
        (up / f"dir {d}").mkdir(parents=True)
        for f in range(small_files // 10):
            (up / f"dir {d}" / f"file-{f}.txt").write_bytes(f"{d}/{f} ".encode() * (f + 1))
    with (up / "big.bin").open("wb") as out:
        for _ in range(big_mib):
            out.write(os.urandom(1 << 20))
    files = small_files + 1

    first = _sync_stats(config, str(up), remote)
    assert (first["transfers"], first["errors"]) == (files, 0), first
    down = tmp_path / "down"
    down.mkdir()
    back = _sync_stats(config, remote, str(down))
    assert (back["transfers"], back["errors"]) == (files, 0), back
    assert _tree(down) == _tree(up)
    check = _rclone(config, "check", "--download", str(up), remote)
    assert check.returncode == 0, check.stderr[-4000:]
    assert f"{files} matching files" in check.stderr, check.stderr[-4000:]

    again = _sync_stats(config, str(up), remote)
    assert again["transfers"] == 0 and again["deletes"] == 0, again
    assert again["checks"] == files and again["errors"] == 0, again

    api = httpx.Client(base_url=f"{dav_server.url}/api/v1", timeout=30,
                       headers={"Authorization": f"Bearer {account.token}"})  # fmt: skip
    used_before = api.get("/users/me").json()["used_bytes"]
    changed = up / "dir 3" / "file-7.txt"
    changed.write_bytes(b"changed on the laptop\n" * 5)
    third = _sync_stats(config, str(up), remote)
    assert (third["transfers"], third["deletes"], third["errors"]) == (1, 0, 0), third
    # Only that file's new version was charged: no other file was sent again.
    assert api.get("/users/me").json()["used_bytes"] - used_before == changed.stat().st_size
    folder = _child(api, "root", "tree")
    folder = _child(api, folder, "dir 3")
    doc = _child(api, folder, "file-7.txt")
    versions = api.get(f"/documents/{doc}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [2, 1]
    assert versions[0]["size_bytes"] == changed.stat().st_size
    untouched = _child(api, folder, "file-6.txt")
    assert len(api.get(f"/documents/{untouched}/versions").json()["items"]) == 1


def _child(api: httpx.Client, folder: object, name: str) -> object:
    items = api.get(f"/folders/{folder}/children", params={"limit": 1000}).json()["items"]
    return next(i["id"] for i in items if i["name"] == name)
