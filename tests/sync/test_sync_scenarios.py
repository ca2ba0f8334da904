"""`docstore sync` rounds against a real server: the cases the issue names, one by one."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from docstore.client.sync import Syncer
from docstore.client.sync.state import STATE_DIR
from tests.fixtures.server import ServerProcess
from tests.sync.helpers import local_tree, new_client, remote_tree, same_user, settle, sync


def test_two_folders_converge_and_a_no_op_round_does_nothing(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "docs" / "deep").mkdir(parents=True)
    (a / "docs" / "deep" / "x.txt").write_bytes(b"x")
    (a / "top.md").write_bytes(b"# top\n")
    (a / "empty").mkdir()
    first = sync(ds, a, "/Sync")
    assert first.ok, first.errors
    ds.upload_bytes("remote.txt", b"from the web", folder_id=ds.resolve("/Sync").id)
    settle([(ds, a), (same_user(ds), b)], "/Sync")
    assert local_tree(a) == local_tree(b) == remote_tree(ds, "/Sync")
    assert (b / "empty").is_dir() and (b / "docs/deep/x.txt").read_bytes() == b"x"
    again = sync(ds, a, "/Sync")
    assert again.ok and not again.changed
    # Our own writes come back through the feed and are recognised: one feed call, no listing.
    assert not again.listed and again.feed_calls == 1


def test_edits_on_both_sides_keep_both_under_the_servers_copy_name(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server, "Ann")
    a = tmp_path / "a"
    a.mkdir()
    (a / "plan.txt").write_bytes(b"v1")
    assert sync(ds, a, "/S").ok
    doc = ds.resolve("/S/plan.txt")
    versions_before = len(list(ds.iter_versions(doc.id)))
    ds.save_version(doc.id, b"remote edit")
    (a / "plan.txt").write_bytes(b"local edit")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    files = local_tree(a)
    assert files.pop("plan.txt") == b"remote edit"
    [(copy_name, copy_bytes)] = files.items()
    assert copy_name.startswith("plan (conflict copy by Ann") and copy_bytes == b"local edit"
    assert local_tree(a) == remote_tree(ds, "/S")
    # The remote edit is the only new version of the original: nothing was overwritten.
    assert len(list(ds.iter_versions(doc.id))) == versions_before + 1


def test_deletes_go_to_trash_on_both_sides_and_a_local_edit_survives_a_remote_delete(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    for name in ("gone-here.txt", "gone-there.txt", "edited.txt"):
        (a / name).write_bytes(name.encode())
    assert sync(ds, a, "/S").ok
    (a / "gone-here.txt").unlink()
    ds.delete_document(ds.resolve("/S/gone-there.txt").id)
    ds.delete_document(ds.resolve("/S/edited.txt").id)
    (a / "edited.txt").write_bytes(b"kept: edited after the remote delete")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    assert (
        local_tree(a)
        == remote_tree(ds, "/S")
        == {"edited.txt": b"kept: edited after the remote delete"}
    )
    trashed = {t.name for t in ds.list_trash()}
    assert {"gone-here.txt", "gone-there.txt"} <= trashed
    in_local_trash = [p.name for p in (a / STATE_DIR / "trash").rglob("*") if p.is_file()]
    assert in_local_trash == ["gone-there.txt"]


def test_a_local_rename_is_a_server_move_of_the_same_document(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "old.txt").write_bytes(b"content")
    settle([(ds, a), (same_user(ds), b)], "/S")
    before = ds.resolve("/S/old.txt")
    (a / "sub").mkdir()
    os.rename(a / "old.txt", a / "sub" / "new.txt")
    report = sync(ds, a, "/S")
    assert [e["action"] for e in report.actions if e["action"] != "remote_mkdir"] == ["remote_move"]
    after = ds.resolve("/S/sub/new.txt")
    assert after.id == before.id
    assert len(list(ds.iter_versions(after.id))) == 1
    inode = (b / "old.txt").stat().st_ino
    report_b = sync(same_user(ds), b, "/S")
    assert [e["action"] for e in report_b.actions if "mkdir" not in e["action"]] == ["local_move"]
    assert (b / "sub" / "new.txt").stat().st_ino == inode  # moved, not downloaded again


def test_ignored_files_stay_local_and_bad_paths_fail_alone(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    (a / ".docstoreignore").write_text("build/\n*.log\n")
    for name in ("~$doc.docx", ".~lock.x#", "x.swp", "y.tmp", ".DS_Store", "run.log"):
        (a / name).write_bytes(b"temp")
    (a / "build").mkdir()
    (a / "build" / "out.bin").write_bytes(b"o")
    (a / "fine.txt").write_bytes(b"ok")
    (a / "bell\x07.txt").write_bytes(b"a name the server refuses")
    report = sync(ds, a, "/S")
    assert not report.ok
    assert list(report.errors) == ["bell\x07.txt"]
    assert set(remote_tree(ds, "/S")) == {"fine.txt", ".docstoreignore"}


def test_names_that_fold_to_the_same_are_kept_apart(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    (a / "Report.txt").write_bytes(b"upper")
    assert sync(ds, a, "/S").ok
    ds.upload_bytes("report.txt", b"lower", folder_id=ds.resolve("/S").id)
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    files = local_tree(a)
    assert files == remote_tree(ds, "/S")
    assert files["Report.txt"] == b"upper"
    assert files["report (case conflict).txt"] == b"lower"


def test_a_round_killed_while_moving_files_finishes_the_moves_next_time(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """What a kill -9 between parking a moved file and putting it in place leaves behind
    (the journal and the parked file) is completed by the next round: a move, not a loss."""
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    (a / "a.txt").write_bytes(b"moving")
    assert sync(ds, a, "/S").ok
    before = ds.resolve("/S/a.txt").id
    park = a / STATE_DIR / "moving"
    park.mkdir()
    (park / "journal.json").write_text(json.dumps([["p1", "a.txt", "sub/b.txt"]]))
    os.rename(a / "a.txt", park / "p1")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    assert local_tree(a) == remote_tree(ds, "/S") == {"sub/b.txt": b"moving"}
    assert ds.resolve("/S/sub/b.txt").id == before
    assert not any(park.iterdir())


def test_a_local_edit_made_during_the_round_is_not_overwritten_by_the_download(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server, "Ann")
    a = tmp_path / "a"
    a.mkdir()
    (a / "f1.txt").write_bytes(b"v1")
    (a / "f2.txt").write_bytes(b"goes")
    assert sync(ds, a, "/S").ok
    ds.save_version(ds.resolve("/S/f1.txt").id, b"remote v2")
    ds.delete_document(ds.resolve("/S/f2.txt").id)

    def edit_meanwhile(event: dict[str, object]) -> None:
        # Runs after the scan and before the download of f1 (trash comes first).
        if event["action"] == "local_trash":
            (a / "f1.txt").write_bytes(b"typed during the sync")

    with Syncer(ds, a, "/S", on_event=edit_meanwhile) as s:
        report = s.run_once()
    assert list(report.errors) == ["f1.txt"] and "changed locally" in report.errors["f1.txt"]
    assert (a / "f1.txt").read_bytes() == b"typed during the sync"
    assert sync(ds, a, "/S").ok  # next round: both changed, both kept
    files = local_tree(a)
    assert files.pop("f1.txt") == b"remote v2"
    assert list(files.values()) == [b"typed during the sync"]
    assert local_tree(a) == remote_tree(ds, "/S")


def _one_copy(files: dict[str, bytes], prefix: str) -> tuple[str, bytes]:
    [(name, data)] = [(p, d) for p, d in files.items() if p.startswith(prefix)]
    return name, data


def test_a_new_file_here_and_a_new_folder_there_under_one_name_are_both_kept(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """Both new: the local file (second: the server had the folder) takes the server's
    conflict-copy name on both sides; the folder and its contents come down as they are."""
    ds = new_client(sync_server, "Ann")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert sync(ds, a, "/S").ok and sync(same_user(ds), b, "/S").ok
    folder = ds.makedirs("/S/notes")
    ds.upload_bytes("in.txt", b"in the folder", folder_id=folder.id)
    (a / "notes").write_bytes(b"a file called notes")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    [clash] = [e for e in report.actions if e["action"] == "conflict"]
    assert clash["path"] == "notes" and clash["side"] == "local"
    assert clash["dest"].startswith("notes (conflict copy by Ann ")
    settle([(ds, a), (same_user(ds), b)], "/S")
    files = local_tree(a)
    assert files == local_tree(b) == remote_tree(ds, "/S")
    assert files.pop("notes/in.txt") == b"in the folder"
    assert _one_copy(files, "notes (conflict copy by Ann ")[1] == b"a file called notes"
    assert ds.resolve("/S/notes").id == folder.id  # the folder kept its name and id


def test_a_new_folder_here_and_a_new_file_there_under_one_name_are_both_kept(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    ds = new_client(sync_server, "Ann")
    a = tmp_path / "a"
    a.mkdir()
    assert sync(ds, a, "/S").ok
    doc = ds.upload_bytes("plans", b"a document called plans", folder_id=ds.resolve("/S").id)
    (a / "plans" / "deep").mkdir(parents=True)
    (a / "plans" / "deep" / "x.txt").write_bytes(b"x")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    files = local_tree(a)
    assert files == remote_tree(ds, "/S")
    assert files.pop("plans") == b"a document called plans"
    [(moved, data)] = files.items()
    assert moved.startswith("plans (conflict copy by Ann ") and moved.endswith("/deep/x.txt")
    assert data == b"x"
    assert ds.resolve("/S/plans").id == doc.id
    assert sync(ds, a, "/S").ok and not sync(ds, a, "/S").changed


def test_a_folder_made_there_where_a_synced_file_was_edited_here_steps_aside(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """The other way round: the local file is the older one (synced, then edited) and the
    server's folder is new, so the server's folder takes the conflict name; the document,
    moved on the server meanwhile, gets the local edit at its new place."""
    ds = new_client(sync_server, "Ann")
    a = tmp_path / "a"
    a.mkdir()
    (a / "n.txt").write_bytes(b"v1")
    assert sync(ds, a, "/S").ok
    doc = ds.resolve("/S/n.txt")
    ds.update_document(doc.id, parent_folder_id=ds.makedirs("/S/sub").id)
    made = ds.makedirs("/S/n.txt")
    ds.upload_bytes("inside.txt", b"inside", folder_id=made.id)
    (a / "n.txt").write_bytes(b"v2, edited here")
    report = sync(ds, a, "/S")
    assert report.ok, report.errors
    [clash] = [e for e in report.actions if e["action"] == "conflict"]
    assert clash["side"] == "remote"
    files = local_tree(a)
    assert files == remote_tree(ds, "/S")
    assert files.pop("sub/n.txt") == b"v2, edited here"
    [(inside, data)] = files.items()
    assert inside.startswith("n (conflict copy by Ann ") and inside.endswith(").txt/inside.txt")
    assert data == b"inside" and ds.resolve("/S/sub/n.txt").id == doc.id


def test_a_download_is_two_requests_the_link_naming_its_version_and_the_bytes(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """The link names the version (size, SHA-256) the bytes are checked against: no request
    for the document first."""
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i in range(5):
        (a / f"f{i}.txt").write_bytes(os.urandom(100))
    assert sync(ds, a, "/S").ok
    down = same_user(ds)
    seen: list[str] = []
    down.http.event_hooks["request"].append(lambda request: seen.append(request.url.path))
    report = sync(down, b, "/S")
    assert report.ok, report.errors
    assert [e["action"] for e in report.actions] == ["download"] * 5
    assert local_tree(b) == local_tree(a)
    links = [p for p in seen if p.endswith("/download")]
    per_document = [p for p in seen if "/documents/" in p]
    assert len(links) == 5 and per_document == links  # no GET /documents/{id}
    not_api = [p for p in seen if not p.startswith("/api/")]
    assert len(not_api) == 5  # the bytes: one GET each (local storage's signed URLs)


def test_the_local_trash_keeps_30_days(sync_server: ServerProcess, tmp_path: Path) -> None:
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    trash = a / STATE_DIR / "trash"
    old, recent = trash / "20000101T000000Z", trash / "20000102T000000Z"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "f.txt").write_bytes(b"trashed")
    day = 86400
    os.utime(old, (time.time() - 31 * day,) * 2)
    os.utime(recent, (time.time() - 29 * day,) * 2)
    assert sync(ds, a, "/S").ok
    assert not old.exists() and (recent / "f.txt").read_bytes() == b"trashed"


def test_a_case_only_rename_is_a_move_both_ways(sync_server: ServerProcess, tmp_path: Path) -> None:
    """`Report.txt` → `report.txt` here goes to the server as a move of the same document,
    and the other client follows with a local move (the bytes are not sent again)."""
    ds = new_client(sync_server)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "Report.txt").write_bytes(b"r")
    settle([(ds, a), (same_user(ds), b)], "/S")
    doc = ds.resolve("/S/Report.txt")
    os.rename(a / "Report.txt", a / "report.txt")
    report = sync(ds, a, "/S")
    assert [e["action"] for e in report.actions] == ["remote_move"]
    report_b = sync(same_user(ds), b, "/S")
    assert [e["action"] for e in report_b.actions] == ["local_move"]
    assert local_tree(a) == local_tree(b) == remote_tree(ds, "/S") == {"report.txt": b"r"}
    assert ds.resolve("/S/report.txt").id == doc.id
    ds.update_document(doc.id, name="REPORT.txt")  # and back, from the server
    assert [e["action"] for e in sync(ds, a, "/S").actions] == ["local_move"]
    assert local_tree(a) == {"REPORT.txt": b"r"}


def test_a_path_too_long_for_this_disk_fails_alone(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """A remote tree deeper than the local PATH_MAX (4,096 bytes on Linux): the paths that
    cannot exist here are reported, one by one, and everything else syncs."""
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    folder = ds.makedirs("/S")
    ds.upload_bytes("fine.txt", b"fine", folder_id=folder.id)
    for i in range(18):  # 18 folders of 231 bytes: past 4,096 with the sync folder's own path
        folder = ds.ensure_folder(f"{i:02}" + "x" * 229, folder.id)
    ds.upload_bytes("deep.txt", b"deep", folder_id=folder.id)
    report = sync(ds, a, "/S")
    assert not report.ok
    assert any(path.endswith("/deep.txt") for path in report.errors), report.errors
    assert all(len(path.encode()) > 3000 for path in report.errors), report.errors
    assert (a / "fine.txt").read_bytes() == b"fine"


def test_a_state_naming_one_document_at_two_paths_heals_without_trashing_it(
    sync_server: ServerProcess, tmp_path: Path
) -> None:
    """What the kill -9 bug left in a state (a recorded move that kept its old row): the
    older row is dropped at the start of the next round, not read as "deleted locally"."""
    ds = new_client(sync_server)
    a = tmp_path / "a"
    a.mkdir()
    (a / "new.txt").write_bytes(b"kept")
    assert sync(ds, a, "/S").ok
    db = sqlite3.connect(a / STATE_DIR / "state.db")
    with db:
        [row] = db.execute("SELECT * FROM files").fetchall()
        db.execute("DELETE FROM files")
        db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", ("old.txt", *row[1:]))
        db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    db.close()
    report = sync(ds, a, "/S")
    assert report.ok and not report.changed, report.actions
    assert local_tree(a) == remote_tree(ds, "/S") == {"new.txt": b"kept"}
    assert not ds.list_trash()
