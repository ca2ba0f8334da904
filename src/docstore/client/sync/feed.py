"""Reading the change feed against the sync state: does a change tell us anything new?

Our own uploads, moves and deletes come back through the feed. When every change after the
cursor is one the state already holds, the remote tree is the state's and nothing needs
listing: a no-op round is one feed call. When unsure, a change is news (a listing follows).
"""

from __future__ import annotations

from docstore.client.client import split_path
from docstore.client.models import Change
from docstore.client.sync.state import Entry


class Known:
    """What the state holds, indexed for checking feed changes against it."""

    def __init__(
        self, base: dict[str, Entry], base_folders: dict[str, str], remote_path: str
    ) -> None:
        self.base = base
        self.folders = base_folders
        self.doc_ids = {e.doc_id for e in base.values()}
        self.folder_ids = set(base_folders.values())
        self.prefix = remote_path.strip("/") + "/"

    def _rels(self, path: object) -> list[str]:
        """Where an entry's `path` may sit in the synced folder: a scoped cursor's entries
        name paths from the scope, the caller's whole view from the root; both are tried."""
        if not isinstance(path, str):
            return []
        full = "/".join(split_path(path))
        return [full, full[len(self.prefix) :]] if full.startswith(self.prefix) else [full]

    def explains(self, change: Change) -> bool:
        """Whether the state already holds what this change says."""
        ident = str(change.id)
        known = ident in (self.doc_ids if change.kind == "document" else self.folder_ids)
        entry = change.entry
        if change.op in ("deleted", "purged", "access_lost") or entry is None:
            return not known
        if entry.get("is_deleted"):
            return not known
        if not known:
            return False
        rels = self._rels(entry.get("path"))
        if change.kind == "folder":
            return any(self.folders.get(rel) == ident for rel in rels)
        current = entry.get("current_version") or {}
        version = str(current.get("id", entry.get("current_version_id")))
        return any(
            (row := self.base.get(rel)) is not None
            and row.doc_id == ident
            and row.version_id == version
            for rel in rels
        )
