"""A real mount of /dav/files/ with davfs2 (FUSE): a file written, overwritten, renamed and
deleted through the mount shows on the server through the API, and a document uploaded
through the API reads back through the mount. Where FUSE or mount(2) is refused (no
/dev/fuse, no privilege, a container without the fuse module) the test skips with the
reason a real probe found, in CI too, as the issue asks; a missing davfs2 package is a
missing service like litmus or rclone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.dav.conftest import DavAccount, DavServer
from tests.fixtures.services import missing

MOUNT_DAVFS = "/sbin/mount.davfs"
# What mount.davfs says when the machine, not the server, refuses the mount.
REFUSALS = ("fuse", "permission", "not permitted", "mount(2)", "no such device", "denied")


def _fuse_or_skip() -> None:
    """Skip (with the reason) where this process cannot mount a FUSE file system."""
    if not Path(MOUNT_DAVFS).exists():
        missing("davfs2", "the Debian package davfs2 is not installed")
    if os.geteuid() != 0:
        pytest.skip(f"FUSE mount not available: mount.davfs needs root here (uid {os.geteuid()})")
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        pytest.skip(f"FUSE not available: opening /dev/fuse failed: {e.strerror}")


@contextmanager
def _mounted(url: str, account: DavAccount, where: Path) -> Iterator[Path]:
    """/dav/files/ of `account` mounted with davfs2 at where/mnt, unmounted on exit."""
    mnt = where / "mnt"
    mnt.mkdir()
    secrets = where / "secrets"
    secrets.write_text(f'{url} "{account.email}" "{account.token}"\n')
    secrets.chmod(0o600)
    # mount.davfs drops to the davfs2 user for its cache: a directory it may write to.
    cache = Path(tempfile.mkdtemp(prefix="docstore-davfs2-"))
    cache.chmod(0o777)
    conf = where / "davfs2.conf"
    conf.write_text(
        f"secrets {secrets}\ncache_dir {cache}\n"
        # Upload on close, not 10 s later; re-read directories at once.
        "delay_upload 0\ndir_refresh 1\nfile_refresh 1\nuse_locks 1\n"
        # davfs2 < 1.7.2 on Linux >= 6.16: readdir fails with EINVAL unless the buffer is
        # at least 64 KiB (alisarctl/davfs2#22).
        "buf_size 64\n"
    )
    done = subprocess.run(
        ["mount", "-t", "davfs", url, str(mnt), "-o", f"conf={conf}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(cache, ignore_errors=True)
        reason = (done.stderr or done.stdout).strip()
        if any(word in reason.lower() for word in REFUSALS):
            pytest.skip(f"FUSE mount refused by this machine: {reason}")
        pytest.fail(f"mount.davfs failed: {reason}")
    try:
        yield mnt
    finally:
        # umount.davfs waits for mount.davfs to upload what is still dirty.
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=120).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)
        shutil.rmtree(cache, ignore_errors=True)


def _eventually(what: str, probe: Callable[[], object]) -> object:
    """The probe's first truthy answer within 30 s (davfs2 uploads after close)."""
    deadline = time.monotonic() + 30
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            assert got, f"not seen on the server within 30 s: {what}"
            return got
        time.sleep(0.2)


def test_davfs2_mount_write_rename_delete(dav_server: DavServer, tmp_path: Path) -> None:
    _fuse_or_skip()
    account = dav_server.account()
    api = httpx.Client(base_url=f"{dav_server.url}/api/v1", timeout=30,
                       headers={"Authorization": f"Bearer {account.token}"})  # fmt: skip

    def children(folder: object = "root") -> dict[str, dict[str, object]]:
        r = api.get(f"/folders/{folder}/children", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return {i["name"]: i for i in r.json()["items"]}

    def content(doc: object) -> bytes:
        r = api.get(f"/documents/{doc}/download", follow_redirects=True)
        assert r.status_code == 200, r.text
        return r.content

    r = api.post("/files", params={"name": "from-api.txt"}, content=b"uploaded by the API\n")
    assert r.status_code == 201, r.text

    with _mounted(f"{dav_server.url}/dav/files/", account, tmp_path) as mnt:
        assert (mnt / "from-api.txt").read_bytes() == b"uploaded by the API\n"

        (mnt / "notes.txt").write_bytes(b"first draft\n")
        # davfs2 creates (and, with locks, LOCKs) the file empty, then PUTs it on close.
        first = _eventually(
            "notes.txt with its bytes",
            lambda: (
                (children().get("notes.txt") or {}).get("size_bytes") == 12
                and children()["notes.txt"]
            ),
        )
        assert isinstance(first, dict)
        doc = first["id"]
        assert content(doc) == b"first draft\n"
        saved = len(api.get(f"/documents/{doc}/versions").json()["items"])

        (mnt / "notes.txt").write_bytes(b"second draft, longer\n")
        _eventually(
            "the second draft",
            lambda: content(doc) == b"second draft, longer\n",
        )
        # Overwriting through the mount made exactly one new version.
        assert len(api.get(f"/documents/{doc}/versions").json()["items"]) == saved + 1

        (mnt / "Projects").mkdir()
        folder = _eventually("the folder", lambda: children().get("Projects"))
        assert isinstance(folder, dict)
        (mnt / "notes.txt").rename(mnt / "Projects" / "renamed.txt")
        moved = _eventually("the rename", lambda: children(folder["id"]).get("renamed.txt"))
        assert isinstance(moved, dict) and moved["id"] == doc  # the same document, moved
        assert "notes.txt" not in children()
        assert len(api.get(f"/documents/{doc}/versions").json()["items"]) == saved + 1

        (mnt / "Projects" / "renamed.txt").unlink()
        _eventually("the delete", lambda: "renamed.txt" not in children(folder["id"]))
        trash = api.get("/trash").json()["items"]
        assert any(i["id"] == doc for i in trash), trash
