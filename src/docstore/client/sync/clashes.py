"""A file on one side and a folder on the other under one name (`plan.kind_clashes`): before
the round is planned, the one that came second steps aside under a conflict name, on its own
side, worded as the server words its conflict copies; the rest of the round carries it over.
"""

from __future__ import annotations

import posixpath
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from docstore.client.errors import DocstoreError
from docstore.client.sync.plan import KindClash, RemoteTree, conflict_name
from docstore.client.sync.report import Report, Skip

if TYPE_CHECKING:
    from docstore.client.sync.engine import Syncer


def split_clashes(
    syncer: Syncer, report: Report, clashes: list[KindClash], remote: RemoteTree
) -> bool:
    """Rename the second of each clashing pair (in a dry run, only report it). Whether
    anything was renamed: then the round looks at both trees again."""
    renamed: list[str] = []
    for c in clashes:
        if any(c.path.startswith(r + "/") for r in renamed):
            continue  # under a folder that already stepped aside
        parent = posixpath.dirname(c.path)
        there = [p for p in (*remote.files, *remote.folders) if posixpath.dirname(p) == parent]
        taken = [*syncer._siblings(c.path), *there]
        dest = conflict_name(c.path, taken, copy_label(syncer))
        if syncer.dry_run:
            syncer._emit(report, "conflict", c.path, dest=dest, side=c.rename)
            continue
        try:
            if c.rename == "local":
                syncer._move_local(c.path, dest)
            elif c.remote_is_folder:
                syncer.client.update_folder(c.remote_id, name=posixpath.basename(dest))
            else:
                syncer.client.update_document(c.remote_id, name=posixpath.basename(dest))
        except Skip as exc:
            syncer._fail(report, c.path, f"a file and a folder under one name: {exc}")
            continue
        except DocstoreError as exc:
            syncer._fail(report, c.path, f"a file and a folder under one name: {exc}")
            continue
        except OSError as exc:
            syncer._fail(report, c.path, f"a file and a folder under one name: {exc.strerror}")
            continue
        renamed.append(c.path)
        syncer._emit(report, "conflict", c.path, dest=dest, side=c.rename)
    return bool(renamed)


def copy_label(syncer: Syncer) -> str:
    """The server's conflict-copy wording, '<name> (conflict copy by <user> <date>)'; asked
    of the server once per Syncer."""
    if syncer._server_label is None:
        try:
            who = syncer.client.me().name
        except DocstoreError:
            who = socket.gethostname()
        # A name the server takes: no '/' or control characters, the user part short.
        who = "".join(c for c in who if c.isprintable() and c != "/").strip()
        who = who.encode()[:64].decode(errors="ignore").strip() or "sync"
        syncer._server_label = f"conflict copy by {who} {datetime.now(UTC):%Y-%m-%d}"
    return syncer._server_label
