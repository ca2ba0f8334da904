"""The change feed as the caller sees it: cursors, pages with entries, the long-poll check.

A cursor is opaque: the last `seq` the caller has seen, the folder it is scoped to (if
any) and when it was handed out. A cursor older than the retention (`change_retention_days`)
answers 410 `cursor_expired`, since rows after it may have been pruned; every page hands
out a fresh one, so a client that keeps polling never expires.

Entries are computed at read time, with the same rule as every other read
(`permissions.readable`): an item the caller cannot see now has `entry: null`, as has every
`purged` and `access_lost` (a client drops the item, and for a folder what it holds below).
A client applies the changes in order; a folder that appears (`access_gained`, `restored`,
or moved into a scoped cursor's subtree) is listed to learn what it holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.changes import service as changes
from docstore.changes.models import Change
from docstore.changes.schemas import ChangeOut, ChangesPage, DocumentEntry, FolderEntry
from docstore.config import Settings
from docstore.context import Actor
from docstore.documents.models import Document, DocumentVersion
from docstore.documents.service import document_out
from docstore.errors import BadRequest, CursorExpired, Unauthenticated
from docstore.folders.models import Folder
from docstore.folders.service import folder_out
from docstore.pagination import decode_cursor, encode_cursor
from docstore.sharing.permissions import (
    Level,
    document_level,
    folder_level,
    get_folder_for,
    path_ids,
    readable,
)

_NO_ENTRY = {changes.Op.PURGED.value, changes.Op.ACCESS_LOST.value}


@dataclass(frozen=True)
class Position:
    """Where a cursor stands."""

    seq: int
    folder_id: int | None
    issued: int  # unix seconds


def _encode(pos: Position) -> str:
    return encode_cursor({"s": pos.seq, "f": pos.folder_id, "t": pos.issued})


def decode(raw: str, settings: Settings) -> Position:
    """A cursor's position: 400 for one we did not make, 410 once past the retention."""
    data = decode_cursor(raw)
    if data is None:
        raise BadRequest("A cursor is required.")
    seq, folder_id, issued = data.get("s"), data.get("f"), data.get("t")
    if not isinstance(seq, int) or not isinstance(issued, int) or seq < 0:
        raise BadRequest("The cursor is not valid.")
    if folder_id is not None and not isinstance(folder_id, int):
        raise BadRequest("The cursor is not valid.")
    if time.time() - issued > settings.change_retention_days * 86400:
        raise CursorExpired()
    return Position(seq, folder_id, issued)


def _user(actor: Actor) -> int:
    if actor.user_id is None:  # links are not accounts: they have no feed
        raise Unauthenticated()
    return actor.user_id


def _scope(db: Session, actor: Actor, folder_id: int | None) -> Folder | None:
    """The cursor's folder, which the caller must still see (404 otherwise)."""
    return None if folder_id is None else get_folder_for(db, actor, folder_id)[0]


def start(db: Session, actor: Actor, folder_id: int | None) -> str:
    """The current position, for the caller's whole view or one folder's subtree."""
    _user(actor)
    scope = _scope(db, actor, folder_id)
    return _encode(Position(changes.last_seq(db), scope.id if scope else None, int(time.time())))


def has_changes(db: Session, actor: Actor, pos: Position) -> bool:
    """Whether the caller has a change after the cursor (the long-poll's check)."""
    scope = _scope(db, actor, pos.folder_id)
    return changes.any_after(db, _user(actor), pos.seq, scope.path if scope else None)


def page(db: Session, actor: Actor, pos: Position, limit: int) -> ChangesPage:
    """The caller's changes after the cursor, oldest first, with their entries."""
    user_id = _user(actor)
    scope = _scope(db, actor, pos.folder_id)
    rows = changes.read(db, user_id, pos.seq, scope.path if scope else None, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    entries = _Entries(db, actor, rows, scope)
    out = [
        ChangeOut.model_construct(
            seq=r.seq,
            kind=cast(Any, r.kind),
            id=r.item_id,
            op=cast(Any, r.op),
            entry=None if r.op in _NO_ENTRY else entries.get(r.kind, r.item_id),
        )
        for r in rows
    ]
    last = rows[-1].seq if rows else pos.seq
    cursor = _encode(Position(last, pos.folder_id, int(time.time())))
    return ChangesPage.model_construct(changes=out, cursor=cursor, has_more=has_more)


class _Entries:
    """The entries of a page's items, read in a few statements (not one per row)."""

    def __init__(self, db: Session, actor: Actor, rows: list[Change], scope: Folder | None):
        self.db, self.actor, self.scope = db, actor, scope
        want = {(r.kind, r.item_id) for r in rows if r.op not in _NO_ENTRY}
        doc_ids = [i for k, i in want if k == "document"]
        folder_ids = [i for k, i in want if k == "folder"]
        self.docs: dict[int, tuple[Document, Folder]] = {}
        if doc_ids:
            found = db.execute(
                select(Document, Folder, DocumentVersion)
                .join(Folder, Folder.id == Document.folder_id)
                .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
                .where(Document.id.in_(doc_ids), readable(actor, Document))
            ).all()
            self.docs = {d.id: (d, f) for d, f, _ in found}
            # Held here: the identity map keeps them weakly, and document_out finds them there.
            self.versions = [v for _, _, v in found if v is not None]
        self.folders: dict[int, Folder] = {}
        if folder_ids:
            found_f = db.scalars(
                select(Folder).where(Folder.id.in_(folder_ids), readable(actor, Folder))
            )
            self.folders = {f.id: f for f in found_f}
        chain: set[int] = set()
        for _, f in self.docs.values():
            chain.update(path_ids(f.path))
        for f in self.folders.values():
            chain.update(path_ids(f.path))
        self.names: dict[int, tuple[str, int | None]] = {}
        self.visible: set[int] = set()
        if chain:
            self.names = {
                i: (n, p)
                for i, n, p in db.execute(
                    select(Folder.id, Folder.name, Folder.parent_id).where(Folder.id.in_(chain))
                )
            }
            self.visible = set(
                db.scalars(select(Folder.id).where(Folder.id.in_(chain), readable(actor, Folder)))
            )
        self.cache: dict[tuple[str, int], Any] = {}

    def _names(self, folder_path: str) -> list[str] | None:
        """The names of a folder chain below the caller's root (or the shared folder, or
        the scope); None when the item is outside the scope."""
        ids = path_ids(folder_path)
        if self.scope is not None:
            if self.scope.id not in ids:
                return None
            start = ids.index(self.scope.id) + 1
        else:
            start = next((i for i, fid in enumerate(ids) if fid in self.visible), len(ids))
            if start < len(ids) and self.names.get(ids[start], ("", 0))[1] is None:
                start += 1  # the owner's root folder has no name
        return [self.names[fid][0] for fid in ids[start:] if fid in self.names]

    def get(self, kind: str, item_id: int) -> DocumentEntry | FolderEntry | None:
        key = (kind, item_id)
        if key not in self.cache:
            self.cache[key] = self._build(kind, item_id)
        entry: DocumentEntry | FolderEntry | None = self.cache[key]
        return entry

    def _level(self, owner_id: int, level: Level | None = None) -> Level | None:
        return Level.OWNER if owner_id == self.actor.user_id else level

    def _build(self, kind: str, item_id: int) -> DocumentEntry | FolderEntry | None:
        if kind == "document":
            found = self.docs.get(item_id)
            if found is None:
                return None
            doc, folder = found
            names = self._names(folder.path)
            if names is None:
                return None
            level = self._level(doc.owner_id) or document_level(
                self.db, self.actor, doc, folder.path
            )
            out = document_out(self.db, doc, level)
            path = "/" + "/".join([*names, doc.name])
            return DocumentEntry.model_construct(**dict(out), path=path)
        f = self.folders.get(item_id)
        if f is None:
            return None
        names = self._names(f.path)
        if names is None:
            return None
        level = self._level(f.owner_id) or folder_level(self.db, self.actor, f)
        fields = {**dict(folder_out(f, level)), "path": "/" + "/".join(names)}
        return FolderEntry.model_construct(**fields)
