"""`docstore sync` as a process: killed (-9) during an upload and during a download, then
run again; and `--watch` picking up local and remote changes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from docstore.client import DocstoreClient
from docstore.client.sync.engine import CRASH_ENV
from docstore.client.sync.state import STATE_DIR
from tests.fixtures.server import ServerProcess
from tests.sync.helpers import (
    local_tree,
    new_client,
    remote_files,
    remote_tree,
    same_user,
    sync,
)
from tests.sync.test_sync_cli import DOCSTORE, cli_env

BIG = 48 * 1024 * 1024  # above the multipart threshold: a transfer that takes a moment


def _start(
    tmp_path: Path, ds: DocstoreClient, *args: str, crash_at: str | None = None
) -> subprocess.Popen[bytes]:
    """`docstore sync ARGS`; `crash_at` ('<point>:<n>') makes it kill -9 itself at that step."""
    env = cli_env(tmp_path, ds)
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.Popen(
        [str(DOCSTORE), "sync", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(proc: subprocess.Popen[bytes], seen: object, timeout: float = 60.0) -> bool:
    """kill -9 the process as soon as `seen()` is true; whether it was caught in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if seen():  # type: ignore[operator]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return True
        time.sleep(0.005)
    proc.wait(60)
    return False


def test_killed_during_upload_and_download_leaves_no_partial_file_and_converges(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    uploads, downloads = a / STATE_DIR / "uploads", b / STATE_DIR / "tmp"
    caught_up = caught_down = False
    for attempt in range(3):  # the kill must land inside the transfer; bounded retries
        name = f"big-{attempt}.bin"
        (a / name).write_bytes(os.urandom(BIG))
        proc = _start(tmp_path, ds, str(a), "/K", "--quiet")
        caught_up = caught_up or _kill_when(
            proc, lambda: uploads.is_dir() and any(uploads.iterdir())
        )
        proc = _start(tmp_path, ds, str(a), "/K", "--quiet")  # resumes, completes
        assert proc.wait(120) == 0
        proc = _start(tmp_path, ds, str(b), "/K", "--quiet")
        caught_down = caught_down or _kill_when(
            proc, lambda: downloads.is_dir() and any(downloads.iterdir())
        )
        # Whatever is under a real name is complete: the partial bytes live in tmp/ only.
        for path, data in local_tree(b).items():
            assert len(data) == BIG, f"partial {path}"
        proc = _start(tmp_path, ds, str(b), "/K", "--quiet")
        assert proc.wait(120) == 0
        if caught_up and caught_down:
            break
    assert caught_up and caught_down, "the kill never landed inside a transfer"
    assert local_tree(a) == local_tree(b) == remote_tree(ds, "/K")
    assert not any(downloads.iterdir())  # the restart dropped the partial download


def test_watch_follows_local_and_remote_changes(sync_server: ServerProcess, tmp_path: Path) -> None:
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    proc = _start(tmp_path, ds, str(a), "/W", "--watch", "--quiet")
    try:
        api = same_user(ds)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (a / STATE_DIR / "state.db").exists():
            time.sleep(0.1)
        (a / "local.txt").write_bytes(b"typed here")
        folder = api.makedirs("/W")
        api.upload_bytes("remote.txt", b"from the web", folder_id=folder.id)
        want = {"local.txt": b"typed here", "remote.txt": b"from the web"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if local_tree(a) == want and remote_tree(api, "/W") == want:
                break
            time.sleep(0.2)
        assert local_tree(a) == want and remote_tree(api, "/W") == want
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert sync(ds, a, "/W").ok


MOVED = 120  # files in the renamed folder: enough server moves for the kill to land among them


def test_killed_during_a_rename_round_moves_everything_on_the_next_run(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """kill -9 while a renamed folder's files are being moved on the server (one client),
    and while a folder moved on the server is being moved locally (the other): the next
    run finishes the moves. Every document keeps its id (moved, not uploaded again) and
    every byte is still in place on both sides and the server."""
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "src").mkdir(parents=True)
    b.mkdir()
    files = {f"src/f{i:03}.txt": os.urandom(64) for i in range(MOVED)}
    for rel, data in files.items():
        (a / rel).write_bytes(data)
    assert sync(ds, a, "/R").ok and sync(ds, b, "/R").ok
    root = ds.resolve("/R").id
    ids = remote_files(ds, root)
    assert set(ids) == set(files)

    # 1. A local rename: the process is killed once some, not all, moves reached the server.
    os.rename(a / "src", a / "dst")

    def some_moved() -> bool:
        moved = {rel for rel in remote_files(ds, root) if rel.startswith("dst/")}
        return 0 < len(moved) < MOVED

    caught_local = _kill_when(_start(tmp_path, ds, str(a), "/R", "--quiet"), some_moved)
    assert _start(tmp_path, ds, str(a), "/R", "--quiet").wait(120) == 0
    after = remote_files(ds, root)
    assert after == {rel.replace("src/", "dst/"): i for rel, i in ids.items()}

    # 2. A server-side move: the other client is killed while it moves its files locally.
    ds.update_folder(ds.resolve("/R/dst").id, name="moved")
    journal = b / STATE_DIR / "moving" / "journal.json"
    caught_remote = _kill_when(_start(tmp_path, ds, str(b), "/R", "--quiet"), journal.exists)
    assert _start(tmp_path, ds, str(b), "/R", "--quiet").wait(120) == 0
    expected = {rel.replace("src/", "moved/"): data for rel, data in files.items()}
    assert local_tree(b) == expected
    assert _start(tmp_path, ds, str(a), "/R", "--quiet").wait(120) == 0
    here, there = local_tree(a), remote_tree(ds, "/R")
    assert here == expected, sorted(set(here) ^ set(expected))
    assert there == expected, sorted(set(there) ^ set(expected))
    assert remote_files(ds, root) == {rel.replace("src/", "moved/"): i for rel, i in ids.items()}
    # Where the kill could not be placed (the round was quicker than the watcher), the
    # test still proves the moves; it says so rather than passing as if it had killed.
    print(f"killed during the local moves: {caught_local}; the remote ones: {caught_remote}")


def test_killed_between_a_server_move_and_its_record_the_next_runs_keep_the_document(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """The kill -9 placed exactly: the server has moved the document, the state still names
    its old path. The next run records the move (no second move, no upload), and the runs
    after it — here across a server-side move of the folder — neither trash the document
    on the server nor leave it behind locally (the bug: the recorded move kept its old
    row, which the next round read as "deleted locally")."""
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "src").mkdir(parents=True)
    b.mkdir()
    files = {f"src/f{i}.txt": os.urandom(64) for i in range(3)}
    for rel, data in files.items():
        (a / rel).write_bytes(data)
    assert sync(ds, a, "/X").ok and sync(ds, b, "/X").ok
    root = ds.resolve("/X").id
    ids = remote_files(ds, root)
    os.rename(a / "src", a / "dst")

    killed = _start(tmp_path, ds, str(a), "/X", "--quiet", crash_at="remote_move:2")
    assert killed.wait(120) == -signal.SIGKILL
    moved = {rel for rel in remote_files(ds, root) if rel.startswith("dst/")}
    assert len(moved) == 2  # the second move reached the server, its record did not
    assert _start(tmp_path, ds, str(a), "/X", "--quiet").wait(120) == 0
    assert remote_files(ds, root) == {rel.replace("src/", "dst/"): i for rel, i in ids.items()}
    assert sync(ds, a, "/X").ok  # a round more: nothing to do, nothing trashed
    assert remote_files(ds, root) == {rel.replace("src/", "dst/"): i for rel, i in ids.items()}

    ds.update_folder(ds.resolve("/X/dst").id, name="moved")
    killed = _start(tmp_path, ds, str(b), "/X", "--quiet", crash_at="local_move:1")
    assert killed.wait(120) == -signal.SIGKILL
    assert (b / STATE_DIR / "moving" / "journal.json").exists()  # parked, not in place
    expected = {rel.replace("src/", "moved/"): data for rel, data in files.items()}
    for local in (b, a, b):
        assert _start(tmp_path, ds, str(local), "/X", "--quiet").wait(120) == 0
    assert local_tree(a) == local_tree(b) == remote_tree(ds, "/X") == expected
    assert remote_files(ds, root) == {rel.replace("src/", "moved/"): i for rel, i in ids.items()}
    # Nothing was trashed on the way but the emptied folder.
    assert [(t.kind, t.name) for t in ds.list_trash()] == [("folder", "src")]
