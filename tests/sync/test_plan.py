"""The three-way planner alone (a pure function): the table in its docstring, moves found
by identity, and names kept apart. No server, no disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from docstore.client.sync.ignore import Ignore
from docstore.client.sync.plan import RemoteFile, RemoteTree, conflict_name, kind_clashes, plan
from docstore.client.sync.scan import LocalFile, LocalTree, scan
from docstore.client.sync.state import Entry


def entry(path: str, doc: str, version: str = "v1", inode: int = 1, sha: str = "s1") -> Entry:
    return Entry(path, doc, version, 10, 100, inode, sha)


def lf(path: str, inode: int = 1, sha: str = "s1", mtime: int = 100) -> LocalFile:
    return LocalFile(path, 10, mtime, inode, sha)


def rf(path: str, doc: str, version: str = "v1") -> RemoteFile:
    return RemoteFile(path, doc, version, 10)


def kinds(actions: list) -> list[tuple[str, str, str | None]]:  # type: ignore[type-arg]
    return [(a.kind, a.path, a.dest) for a in actions]


def test_the_three_way_table() -> None:
    base = {p: entry(p, p, inode=i) for i, p in enumerate("abcdefgh")}
    local = LocalTree(
        files={
            "a": lf("a", 0),  # unchanged / unchanged
            "b": lf("b", 1, "new"),  # edited here
            "c": lf("c", 2),  # edited there
            "d": lf("d", 3, "new"),  # edited on both sides
            "e": lf("e", 4),  # deleted there
            "f": lf("f", 5, "new"),  # edited here, deleted there
        }  # g: deleted here; h: deleted on both sides
    )
    remote = RemoteTree(
        files={
            "a": rf("a", "a"),
            "b": rf("b", "b"),
            "c": rf("c", "c", "v2"),
            "d": rf("d", "d", "v2"),
            "g": rf("g", "g"),
        }
    )
    assert sorted(kinds(plan(base, local, remote))) == [
        ("both_changed", "d", None),
        ("download", "c", None),
        ("forget", "h", None),
        ("local_trash", "e", None),
        ("remote_delete", "g", None),
        ("upload", "b", None),
        ("upload", "f", None),
    ]


def test_moves_are_found_by_inode_and_document_id_and_the_remote_place_wins() -> None:
    base = {"a": entry("a", "A", inode=7), "b": entry("b", "B", inode=8)}
    local = LocalTree(files={"x/a2": lf("x/a2", 7), "b2": lf("b2", 8)})
    remote = RemoteTree(files={"a": rf("a", "A"), "y/b3": rf("y/b3", "B")})
    assert sorted(kinds(plan(base, local, remote))) == [
        ("local_move", "b2", "y/b3"),  # both moved: the remote place wins
        ("record", "x/a2", None),  # the state follows (no transfer)
        ("record", "y/b3", None),
        ("remote_move", "a", "x/a2"),
    ]


def test_a_new_file_under_a_taken_name_steps_aside_and_case_folds_are_kept_apart() -> None:
    local = LocalTree(files={"Report.txt": lf("Report.txt", 1, "mine"), "n": lf("n", 2)})
    remote = RemoteTree(files={"report.txt": rf("report.txt", "R"), "n": rf("n", "N")})
    got = kinds(plan({}, local, remote, label="conflict copy h"))
    assert ("create_create", "n", None) in got  # same name: compared by content when run
    assert ("remote_rename", "report.txt", "report (case conflict).txt") in got
    assert ("download", "report (case conflict).txt", None) in got
    assert ("upload", "Report.txt", None) in got


def test_an_unchanged_file_plans_nothing_and_a_touched_one_only_a_record() -> None:
    base = {"a": entry("a", "A")}
    remote = RemoteTree(files={"a": rf("a", "A")})
    assert plan(base, LocalTree(files={"a": lf("a")}), remote) == []
    touched = plan(base, LocalTree(files={"a": lf("a", mtime=200)}), remote)
    assert kinds(touched) == [("record", "a", None)]


def test_conflict_names_and_ignore_rules() -> None:
    assert conflict_name("d/a.txt", ["d/a (c).txt"], "c") == "d/a (c 2).txt"
    assert conflict_name(".env", [], "c") == ".env (c)"
    ignore = Ignore(["build/", "*.log", "!keep.log"])
    assert ignore.file("~$budget.xlsx") and ignore.file("x/.~lock.a#") and ignore.file("a.swp")
    assert ignore.file("a.tmp") and ignore.file("x/.DS_Store") and ignore.file("x/run.log")
    assert ignore.dir("build") and ignore.dir(".docstore-sync") and not ignore.dir("x")
    assert not ignore.file("keep.log") and not ignore.file("notes.txt")


def test_a_file_and_a_folder_under_one_name_the_newer_steps_aside() -> None:
    local = LocalTree(
        files={"new-file": lf("new-file", 1), "kept": lf("kept", 2), "edited": lf("edited", 3)},
        dirs={"new-dir", "known-dir"},
    )
    remote = RemoteTree(
        files={"new-dir": rf("new-dir", "d1"), "known-dir": rf("known-dir", "d2")},
        folders={"new-file": "f1", "kept": "f2", "edited": "f3"},
    )
    base = {"kept": entry("kept", "k", inode=2), "edited": entry("edited", "e", inode=3)}
    local.files["edited"] = lf("edited", 3, sha="changed")
    got = kind_clashes(base, {"known-dir": "f9"}, local, remote)
    assert [(c.path, c.rename, c.remote_id, c.remote_is_folder) for c in got] == [
        ("edited", "remote", "f3", True),  # kept here and edited: the new folder steps aside
        ("known-dir", "remote", "d2", False),  # a synced folder: the new document steps aside
        ("new-dir", "local", "d1", False),  # both new: ours steps aside
        ("new-file", "local", "f1", True),
    ]  # "kept": synced and unchanged here, its document left: no clash, the plan trashes it


def test_the_scan_reads_only_files_whose_size_or_mtime_moved(tmp_path: Path) -> None:
    """An unchanged file (size and mtime as recorded) is not read: the state's SHA-256 is
    taken as is — a row with a made-up hash shows it. A touched one is hashed again."""
    for name in ("same.txt", "touched.txt"):
        (tmp_path / name).write_bytes(b"content")
    base: dict[str, Entry] = {}
    for name in ("same.txt", "touched.txt"):
        st = (tmp_path / name).stat()
        base[name] = Entry(name, "d", "v", st.st_size, st.st_mtime_ns, st.st_ino, "not-read")
    os.utime(tmp_path / "touched.txt", ns=(1, 1))
    tree = scan(tmp_path, base, Ignore([]))
    assert tree.files["same.txt"].sha256 == "not-read"
    assert tree.files["touched.txt"].sha256 == hashlib.sha256(b"content").hexdigest()
