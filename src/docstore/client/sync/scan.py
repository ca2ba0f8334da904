"""The local side: walk the sync folder, hashing only what changed since the last sync.

An unchanged file (same size and mtime as the state recorded) takes one `stat` and no read:
that is what keeps a no-op re-sync of a large tree fast.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from docstore.client.sync.ignore import Ignore
from docstore.client.sync.state import Entry
from docstore.client.transfer import file_sha256


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative, POSIX separators
    size: int
    mtime_ns: int
    inode: int
    sha256: str


@dataclass
class LocalTree:
    files: dict[str, LocalFile] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # path → why it was skipped


def scan(root: Path, base: dict[str, Entry], ignore: Ignore) -> LocalTree:
    """Every regular file and folder under `root` that sync handles."""
    tree = LocalTree()
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = list(it)
        except OSError as exc:
            tree.errors[rel_dir or "."] = f"cannot list: {exc.strerror or exc}"
            continue
        for item in entries:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if unicodedata.normalize("NFC", item.name) != item.name:
                tree.errors[rel] = "name is not in Unicode NFC form (rename it to sync it)"
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                tree.errors[rel] = f"cannot stat: {exc.strerror or exc}"
                continue
            if stat.S_ISDIR(st.st_mode):
                if not ignore.dir(rel):
                    tree.dirs.add(rel)
                    stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                if ignore.file(rel):
                    continue
                entry = base.get(rel)
                if entry and entry.size == st.st_size and entry.mtime_ns == st.st_mtime_ns:
                    sha = entry.sha256  # unchanged: no read
                else:
                    try:
                        sha = file_sha256(Path(item.path))
                        after = os.stat(item.path)
                    except OSError as exc:
                        tree.errors[rel] = f"cannot read: {exc.strerror or exc}"
                        continue
                    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                        tree.errors[rel] = "changed while it was read; synced once it is still"
                        continue
                tree.files[rel] = LocalFile(rel, st.st_size, st.st_mtime_ns, st.st_ino, sha)
            elif not ignore.file(rel):
                tree.errors[rel] = "not a regular file (symbolic link or special file): skipped"
    return tree
