"""The folder pass, after the files of a round: empty folders are synced too.

A folder is created on the side that lacks it and removed where the other side removed it,
but never with anything in it: a local folder goes only when empty (`rmdir`), a server
folder only when no document is left anywhere below it (else it comes back here).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from docstore.client.client import DocstoreClient
from docstore.client.errors import DocstoreError, NotFound
from docstore.client.sync.ignore import Ignore
from docstore.client.sync.report import Report

if TYPE_CHECKING:
    from docstore.client.sync.engine import Syncer


def _depth(rel: str) -> int:
    return rel.count("/")


def local_dirs(root: Path, ignore: Ignore) -> tuple[set[str], set[str]]:
    """(every folder, the folders holding at least one file somewhere below)."""
    dirs: set[str] = set()
    full: set[str] = set()
    for top, subdirs, files in os.walk(root):
        rel_top = Path(top).relative_to(root).as_posix()
        rel_top = "" if rel_top == "." else rel_top
        keep = []
        for d in subdirs:
            rel = f"{rel_top}/{d}" if rel_top else d
            if not ignore.dir(rel):
                keep.append(d)
                dirs.add(rel)
        subdirs[:] = keep
        if files and rel_top:
            parts = rel_top.split("/")
            full.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs, full


def remote_has_documents(client: DocstoreClient, folder_id: str) -> bool:
    """Whether a document is left anywhere below the server folder (too deep to tell: yes)."""
    stack = [folder_id]
    for _ in range(100_000):
        if not stack:
            return False
        for child in client.iter_children(stack.pop()):
            if child.kind == "document":
                return True
            stack.append(str(child.id))
    return True  # pragma: no cover - too deep to tell: keep it


def sync_folders(
    syncer: Syncer, report: Report, base_folders: dict[str, str], ignore: Ignore
) -> None:
    """Empty folders too: created on the other side, deleted where the other side did."""
    local, holding = local_dirs(syncer.root, ignore)
    remote_dirs = set(syncer.rfolders)
    everything = sorted(local | remote_dirs | set(base_folders), key=_depth)
    removed_local: list[str] = []
    removed_remote: list[str] = []
    for d in everything:
        here, there, was = d in local, d in remote_dirs, d in base_folders
        try:
            if here and there:
                syncer.state.put_folder(d, syncer.rfolders[d])
            elif here and was and d not in holding:  # deleted there, empty here
                removed_local.append(d)
            elif here:
                syncer.state.put_folder(d, syncer._remote_folder(d))
                if not was:
                    syncer._emit(report, "remote_mkdir", d)
            elif there and was:  # deleted here
                removed_remote.append(d)
            elif there:
                syncer._abs(d).mkdir(parents=True, exist_ok=True)
                syncer.state.put_folder(d, syncer.rfolders[d])
                syncer._emit(report, "local_mkdir", d)
            else:
                syncer.state.forget_folders([d])
        except (DocstoreError, OSError) as exc:
            syncer._fail(report, d, f"folder: {exc}")
    for d in sorted(removed_local, key=lambda d: -d.count("/")):
        with contextlib.suppress(OSError):
            syncer._abs(d).rmdir()
            syncer.state.forget_folders([d])
            syncer._emit(report, "local_rmdir", d)
    gone: set[str] = set()
    for d in sorted(removed_remote, key=lambda d: d.count("/")):
        if any(d.startswith(g + "/") for g in gone):
            syncer.state.forget_folders([d])
            continue
        try:
            if remote_has_documents(syncer.client, syncer.rfolders[d]):
                syncer._abs(d).mkdir(parents=True, exist_ok=True)  # kept: it has files there
                continue
            with contextlib.suppress(NotFound):
                syncer.client.delete_folder(syncer.rfolders[d])
            gone.add(d)
            syncer.state.forget_folders([d])
            syncer._emit(report, "remote_rmdir", d)
        except DocstoreError as exc:
            syncer._fail(report, d, f"folder: {exc} ({exc.code})")
