"""The three-way reconcile, as a pure function: (state, local tree, remote tree) → actions.

For every synced file the state says what both sides held at the last sync; comparing each
side with it tells who changed what:

| local \\ remote | unchanged        | edited              | deleted             |
|----------------|------------------|---------------------|---------------------|
| unchanged      | -                | download            | to the local trash  |
| edited         | upload (base)    | keep both (copy)    | upload as new       |
| deleted        | to the server trash | download         | forget              |

Moves are found by identity, not by name: a document id at another remote path, a local
inode (with the same SHA-256) at another local path. When both sides moved a file, the
remote place wins; when two items claim one path, the later one gets a conflict name. New
items whose names fold to the same (`A.txt` / `a.txt`) are kept apart the same way, so a
tree synced here also fits a case-insensitive disk. Nothing in here touches disk or network.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from docstore.client.sync.scan import LocalFile, LocalTree
from docstore.client.sync.state import Entry

ActionKind = Literal[
    "local_rename",  # a new local file moves out of the way: path → dest
    "remote_rename",  # a new remote document moves out of the way: doc_id → dest
    "local_move",  # a synced file moves locally: path → dest
    "remote_move",  # a synced document moves on the server: doc_id (at path) → dest
    "upload",  # path: a new document (doc_id None) or a new version on base_version_id
    "download",  # doc_id's version_id to path
    "both_changed",  # path edited here and doc_id there: keep both unless the bytes agree
    "create_create",  # a new local file and a new remote document at the same path
    "remote_delete",  # doc_id to the server's trash
    "local_trash",  # path to .docstore-sync/trash/
    "forget",  # deleted on both sides: drop the state row
    "record",  # nothing to transfer: the state row takes the local file's new stat/path
]


@dataclass(frozen=True)
class RemoteFile:
    path: str
    doc_id: str
    version_id: str
    size: int


@dataclass
class RemoteTree:
    files: dict[str, RemoteFile] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # path → folder id


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    path: str
    dest: str | None = None
    doc_id: str | None = None
    version_id: str | None = None
    base: Entry | None = None  # the state row the action starts from
    local: LocalFile | None = None  # the local file as scanned


def fold(path: str) -> str:
    return path.casefold()


def conflict_name(path: str, taken: Iterable[str], label: str) -> str:
    """'a/b.txt' → 'a/b (label).txt', or 'a/b (label 2).txt' … whichever is free."""
    folded = {fold(p) for p in taken}
    head, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    if not stem:  # '.env' has no extension for us
        stem, ext = name, ""
    for n in range(1, 10_000):
        tag = label if n == 1 else f"{label} {n}"
        candidate = posixpath.join(head, f"{stem} ({tag}){ext}")
        if fold(candidate) not in folded:
            return candidate
    raise ValueError(f"no free conflict name for {path}")  # pragma: no cover


@dataclass(frozen=True)
class KindClash:
    """A path that is a file on one side and a folder on the other. Both are kept: the one
    that arrived second (`rename`: 'local' or 'remote') steps aside under a conflict name."""

    path: str
    rename: Literal["local", "remote"]
    remote_id: str  # the remote item at `path`: a folder id or a document id
    remote_is_folder: bool


def kind_clashes(
    base: dict[str, Entry], base_folders: dict[str, str], local: LocalTree, remote: RemoteTree
) -> list[KindClash]:
    """Every path that is a file here and a folder there (or the other way round), parents
    first. Which one arrived second: the one that is new since the last sync; when both
    are, the local one (the server had the other first) — as for two new files. Not a
    clash: a synced file the other side has replaced by a folder while it stayed
    unchanged on this side; the plan moves or trashes it and the folder comes over."""
    out: list[KindClash] = []
    for p in set(local.files) & set(remote.folders):
        e, lf, folder_id = base.get(p), local.files[p], remote.folders[p]
        if e is not None and lf.sha256 == e.sha256:
            continue  # synced and unchanged here: its document left `p` there
        folder_new = base_folders.get(p) != folder_id
        side: Literal["local", "remote"] = "remote" if e is not None and folder_new else "local"
        out.append(KindClash(p, side, folder_id, True))
    for p in local.dirs & set(remote.files):
        r, e = remote.files[p], base.get(p)
        if e is not None and (e.doc_id, e.version_id) == (r.doc_id, r.version_id):
            continue  # replaced here by a folder, unchanged there: the plan trashes it
        side = "remote" if p in base_folders else "local"
        out.append(KindClash(p, side, r.doc_id, False))
    return sorted(out, key=lambda c: (c.path.count("/"), c.path))


class _Names:
    """The paths the outcome will hold, exactly and case-folded."""

    def __init__(self, others: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.folded: dict[str, str] = {}
        self.others = set(others)  # names to avoid when inventing one

    def free(self, path: str) -> bool:
        return path not in self.exact and fold(path) not in self.folded

    def take(self, path: str) -> None:
        self.exact.add(path)
        self.folded[fold(path)] = path

    def invent(self, path: str, label: str) -> str:
        return conflict_name(path, self.exact | self.others, label)


def plan(
    base: dict[str, Entry],
    local: LocalTree,
    remote: RemoteTree,
    *,
    label: str = "conflict copy",
    case_label: str = "case conflict",
) -> list[Action]:
    """What to do so that both sides hold the same tree again, in the order to do it."""
    renames: list[Action] = []
    moves: list[Action] = []
    deletes: list[Action] = []
    transfers: list[Action] = []
    remote_by_id = {r.doc_id: r for r in remote.files.values()}
    base_ids = {e.doc_id for e in base.values()}
    names = _Names([*local.files, *remote.files, *base])
    new_local = {p: f for p, f in local.files.items() if p not in base}
    by_inode: dict[int, list[LocalFile]] = {}
    for f in new_local.values():
        by_inode.setdefault(f.inode, []).append(f)
    moved_to: set[str] = set()

    for p in sorted(base):
        e = base[p]
        r = remote_by_id.get(e.doc_id)
        lf = local.files.get(p)
        if lf is None:
            found = [
                f
                for f in by_inode.get(e.inode, [])
                if f.sha256 == e.sha256 and f.path not in moved_to
            ]
            if len(found) == 1:
                lf = found[0]
                moved_to.add(lf.path)
        if p in local.errors:
            continue  # unreadable now: leave it for a later run
        if lf is None and r is None:
            deletes.append(Action("forget", p, base=e))
            continue
        if lf is None:
            assert r is not None
            if r.version_id != e.version_id:  # deleted here, edited there: the edit wins
                names.take(r.path)
                transfers.append(Action("download", r.path, doc_id=r.doc_id, base=e))
            else:
                deletes.append(Action("remote_delete", r.path, doc_id=r.doc_id, base=e))
            continue
        if r is None:
            if lf.sha256 != e.sha256 or lf.path != p:  # kept and changed here: re-upload
                names.take(lf.path)
                transfers.append(Action("upload", lf.path, base=e, local=lf))
            else:
                deletes.append(Action("local_trash", lf.path, base=e, local=lf))
            continue
        target = r.path if r.path != p else lf.path  # both moved: the remote place wins
        if not names.free(target):
            target = names.invent(target, label)
        names.take(target)
        if lf.path != target:
            moves.append(Action("local_move", lf.path, dest=target, base=e, local=lf))
        if r.path != target:
            moves.append(Action("remote_move", r.path, dest=target, doc_id=e.doc_id, base=e))
        l_changed = lf.sha256 != e.sha256
        r_changed = r.version_id != e.version_id
        common = {"doc_id": e.doc_id, "version_id": r.version_id, "base": e, "local": lf}
        if l_changed and r_changed:
            transfers.append(Action("both_changed", target, **common))  # type: ignore[arg-type]
        elif l_changed:
            transfers.append(Action("upload", target, **common))  # type: ignore[arg-type]
        elif r_changed:
            transfers.append(Action("download", target, **common))  # type: ignore[arg-type]
        elif target != p or (lf.size, lf.mtime_ns, lf.inode) != (e.size, e.mtime_ns, e.inode):
            transfers.append(Action("record", target, **common))  # type: ignore[arg-type]

    paired: set[str] = set()
    for q in sorted(new_local):
        if q in moved_to or q in local.errors:
            continue
        lf = new_local[q]
        r = remote.files.get(q)
        if r is not None and r.doc_id not in base_ids and names.free(q):
            names.take(q)
            paired.add(r.doc_id)
            transfers.append(
                Action("create_create", q, doc_id=r.doc_id, version_id=r.version_id, local=lf)
            )
            continue
        target = q
        if not names.free(q) or (r is not None and r.doc_id not in base_ids):
            exact_clash = q in names.exact or r is not None
            target = names.invent(q, label if exact_clash else case_label)
            renames.append(Action("local_rename", q, dest=target, local=lf))
        names.take(target)
        transfers.append(Action("upload", target, local=lf))

    for q in sorted(remote.files):
        r = remote.files[q]
        if r.doc_id in base_ids or r.doc_id in paired:
            continue
        target = q
        if not names.free(q):
            target = names.invent(q, label if q in names.exact else case_label)
            renames.append(Action("remote_rename", q, dest=target, doc_id=r.doc_id))
        names.take(target)
        transfers.append(Action("download", target, doc_id=r.doc_id, version_id=r.version_id))

    return renames + moves + deletes + transfers
